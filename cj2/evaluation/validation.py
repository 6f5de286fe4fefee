"""Verdict-logit metrics for the training loop's validation: cheap, JudgerBenchV2-style, every validation.

:func:`verdict_logit_metrics` scores a model in training on a benchmark (by default the embedded one,
:func:`cj2.evaluation.build_embedded`) from the probability of each candidate verdict token at the verdict
slot (:mod:`cj2.evaluation.logits`; arXiv 2507.09104, Sec. 3.2): one forward pass per pair, no
generation. It reports the strict accuracy of the argmax verdict (``<prefix>/verdict_logit_acc``),
JudgerBenchV2's accuracy, rank and score differences and final score (Sec. 4, Eq. 5) when the items name
their models, and the calibration of P(verdict).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cj2.data.schema import PairwiseItem
from cj2.data.templates import JudgeTemplate, get_template
from cj2.evaluation.backends import LogitJudge
from cj2.evaluation.baselines import cache_key, cached_metrics, family_groups, item_fingerprint
from cj2.evaluation.logits import VerdictLogitScorer
from cj2.evaluation.placement import balanced_placement
from cj2.verdict import unswap


def verdict_logit_metrics(
    model: Any,
    tokenizer: Any,
    benchmark_items: Sequence[PairwiseItem] | Any,
    template: str | JudgeTemplate,
    prefix: str = "val",
    *,
    batch_size: int = 8,
    both_orders: bool = False,
    seed: int = 0,
    reference_model: str | None = None,
) -> dict[str, float]:
    """Verdict-logit metrics of ``model`` on ``benchmark_items`` (a list of pairwise items, or an object
    with ``.items`` such as :class:`~cj2.evaluation.embedded.EmbeddedBenchmark`).

    Items are placed by the balanced placement of ``seed`` (:mod:`cj2.evaluation.placement`);
    ``both_orders`` adds the swapped pass for swap consistency and position bias (twice the cost). The
    model is put in eval mode under ``torch.no_grad`` and restored. Keys (all floats; NaN where undefined):

    * ``<prefix>/verdict_logit_acc`` (strict accuracy of the argmax verdict), ``<prefix>/verdict_logit_n``;
    * ``<prefix>/verdict_logit_p_gold``, ``<prefix>/verdict_logit_ece``, ``<prefix>/verdict_logit_brier``;
    * with model names in ``meta`` (``model_a``/``model_b``): ``<prefix>/jbv2_final``, ``jbv2_accuracy``,
      ``jbv2_normalized_diff``, ``jbv2_rank_diff``, ``jbv2_score_diff``, ``jbv2_kendall_tau``,
      ``jbv2_spearman_rho`` (0-100 scale except the correlations);
    * with ``both_orders``: ``<prefix>/verdict_logit_swap_consistency``,
      ``<prefix>/verdict_logit_position_bias``.
    """
    from cj2.evaluation.runner import judge_batch
    from cj2.evaluation.scoring import (
        accuracy_metrics,
        calibration_metrics,
        judgerbench_metrics,
        swap_metrics,
    )

    items = list(getattr(benchmark_items, "items", benchmark_items))
    if not items:
        raise ValueError("verdict_logit_metrics needs at least one item")
    reference = reference_model or getattr(benchmark_items, "reference_model", None)
    tpl = template if isinstance(template, JudgeTemplate) else get_template(template)
    scorer = VerdictLogitScorer(model, tokenizer, tpl, batch_size=batch_size)
    judge = LogitJudge(scorer.score_items, on_cpu=next(model.parameters()).device.type == "cpu")
    placement = balanced_placement([it.id for it in items], seed)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for pass_name in ("headline", "swap") if both_orders else ("headline",):
        for start in range(0, len(items), batch_size):
            for row in judge_batch(judge, "logits", items[start : start + batch_size], pass_name, placement):
                rows[(row["id"], row["pass"])] = row
    pairs = [(it, rows[(it.id, "headline")]) for it in items]
    p = prefix
    acc = accuracy_metrics(pairs, bootstrap=0)
    cal = calibration_metrics(pairs)
    out = {
        f"{p}/verdict_logit_acc": acc["accuracy"],
        f"{p}/verdict_logit_n": acc["n"],
        f"{p}/verdict_logit_p_gold": cal.get("calibration/p_gold", math.nan),
        f"{p}/verdict_logit_ece": cal.get("calibration/ece", math.nan),
        f"{p}/verdict_logit_brier": cal.get("calibration/brier", math.nan),
    }
    if all({"model_a", "model_b"} <= set(it.meta) for it in items):
        if reference is None:
            # JudgerBenchV2's layout puts the reference model in position A of every item as read
            firsts = {it.meta["model_a"] for it in items}
            if len(firsts) != 1:
                raise ValueError(
                    "verdict_logit_metrics: pass reference_model= (the model every pair is judged against)"
                )
            reference = firsts.pop()
        jb, _ = judgerbench_metrics(pairs, reference, bootstrap=0)
        for key in (
            "final",
            "accuracy",
            "normalized_diff",
            "rank_diff",
            "score_diff",
            "kendall_tau",
            "spearman_rho",
        ):
            out[f"{p}/jbv2_{key}"] = jb.get(f"jbv2/{key}", math.nan)
    out.update(letter_diagnostics(list(rows.values()), p))
    if both_orders:
        sw = swap_metrics(items, rows)
        out[f"{p}/verdict_logit_swap_consistency"] = sw.get("swap/consistency", math.nan)
        out[f"{p}/verdict_logit_position_bias"] = sw.get("swap/position_bias", math.nan)
    return {k: float(v) for k, v in out.items()}


def letter_diagnostics(rows: Sequence[dict[str, Any]], prefix: str) -> dict[str, float]:
    """Accuracy and mean verdict log-odds ``log P(A) - log P(B)`` per gold label *as shown to the judge*
    (``{prefix}/verdict_logit_acc_gold_A`` / ``_B``, ``..._logodds_gold_A`` / ``_B``), and their mean over
    both labels, ``{prefix}/verdict_logit_letter_bias`` (> 0: prefers "A" whatever the pair). A letter
    preference shows here where the mean margin of a balanced set averages it away."""
    by_gold: dict[str, list[tuple[float, bool]]] = {"A": [], "B": []}
    for r in rows:
        probs = r.get("probs")
        if not probs or "A" not in probs or "B" not in probs:
            continue
        shown_gold = r["gold"] if r["order"] == "AB" else unswap(r["gold"])
        if shown_gold not in by_gold:
            continue
        eps = 1e-12
        lo = math.log(max(float(probs["A"]), eps)) - math.log(max(float(probs["B"]), eps))
        by_gold[shown_gold].append((lo, bool(r["correct"])))
    out: dict[str, float] = {}
    means = []
    for g, vals in by_gold.items():
        if vals:
            out[f"{prefix}/verdict_logit_acc_gold_{g}"] = sum(c for _, c in vals) / len(vals)
            mean = sum(v for v, _ in vals) / len(vals)
            out[f"{prefix}/verdict_logit_logodds_gold_{g}"] = mean
            means.append(mean)
    if len(means) == 2:
        out[f"{prefix}/verdict_logit_letter_bias"] = sum(means) / 2
    return out


class VerdictLogitEval:
    """The training loop's verdict-logit validation on the embedded benchmark (``eval.verdict_logits``).

    Built once per run; :meth:`run` is called at every validation (it is one forward pass per pair) on
    every rank: each rank scores the same items, so the logged values agree without a collective. Under a
    strategy that shards the weights (FSDP, DeepSpeed) the module skips it (a forward pass outside the
    wrapped module would see shards). ``autocast_dtype`` matches the training precision (bf16-mixed).
    """

    def __init__(
        self,
        items: Sequence[PairwiseItem] | Any,
        template: str | JudgeTemplate,
        *,
        prefix: str = "val",
        batch_size: int = 8,
        both_orders: bool = False,
        seed: int = 0,
        autocast_dtype: Any | None = None,
        heldout_families: Sequence[str] = (),
    ):
        self.benchmark = items
        # items of these families are scored apart, their metrics suffixed ``_unseen_family``
        self.heldout_families = frozenset(heldout_families)
        self.template = template
        self.prefix = prefix
        self.batch_size = batch_size
        self.both_orders = both_orders
        self.seed = seed
        self.autocast_dtype = autocast_dtype

    @classmethod
    def embedded(
        cls,
        template: str | JudgeTemplate,
        *,
        n_queries: int = 10,
        scenarios: Sequence[str] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> VerdictLogitEval:
        from cj2.evaluation.embedded import build_embedded

        bench = build_embedded(
            n_queries=n_queries, scenarios=list(scenarios) if scenarios else None, seed=seed
        )
        return cls(bench, template, seed=seed, **kwargs)

    def __len__(self) -> int:
        return len(getattr(self.benchmark, "items", self.benchmark))

    def key(self, model_id: str) -> str:
        """Cache key of the untrained baseline: model, template, placement seed, precision, batch size and
        the items' content."""
        items = getattr(self.benchmark, "items", self.benchmark)
        tpl = self.template if isinstance(self.template, str) else self.template.name
        return cache_key(
            "verdict_logits",
            model_id,
            tpl,
            self.seed,
            self.both_orders,
            str(self.autocast_dtype),
            self.batch_size,
            item_fingerprint(items),
            sorted(self.heldout_families),
        )

    def baseline(
        self, model: Any, tokenizer: Any, *, model_id: str, cache_dir: Any, lookup_only: bool = False
    ) -> dict[str, float]:
        """The untrained model's verdict-logit metrics (``val_untrained/...``), computed once and cached
        (``lookup_only``: the cached metrics or nothing)."""
        compute = (
            None if lookup_only else (lambda: self.run(model, tokenizer, prefix=f"{self.prefix}_untrained"))
        )
        return cached_metrics(cache_dir, self.key(model_id), model_id, compute)

    def run(self, model: Any, tokenizer: Any, *, prefix: str | None = None) -> dict[str, float]:
        import contextlib

        import torch

        device = next(model.parameters()).device
        autocast = (
            torch.autocast(device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        prefix = self.prefix if prefix is None else prefix
        items = list(getattr(self.benchmark, "items", self.benchmark))
        if not self.heldout_families:
            groups = [(self.benchmark, "")]
        else:
            groups = family_groups(items, self.heldout_families, lambda it: it.domain)
        out: dict[str, float] = {}
        with autocast:
            for group, suffix in groups:
                metrics = verdict_logit_metrics(
                    model,
                    tokenizer,
                    group,
                    self.template,
                    prefix=prefix,
                    batch_size=self.batch_size,
                    both_orders=self.both_orders,
                    seed=self.seed,
                )
                out.update({k + suffix: v for k, v in metrics.items()})
        return out
