"""The in-training evaluation by generated judgments on held-out pairwise items, in both orders.

The judge writes its critique and verdict greedily for every item twice: responses as given (A/B) and
swapped (B/A). Verdicts are parsed with :mod:`cj2.verdict`; an unparsable output counts as wrong (strict
accuracy). The training loop runs it through :class:`cj2.callbacks.GeneratedJudgments` (``val/judge_acc``
and its untrained baseline). The cheaper verdict-logit metrics are :mod:`cj2.evaluation.validation`;
``python -m cj2.evaluate`` is the full evaluation and :class:`cj2.judge.Judge` the user-facing API.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cj2.data.io import write_jsonl
from cj2.data.schema import PairwiseItem
from cj2.evaluation.baselines import cache_key, cached_metrics, family_groups, item_fingerprint
from cj2.evaluation.faithfulness import rows_metrics
from cj2.progress import progress_bar
from cj2.verdict import parse_verdict, unswap

log = logging.getLogger(__name__)


TABLE_COLUMNS = (
    "id",
    "domain",
    "order",
    "question",
    "response A",
    "response B",
    "judgment",
    "verdict",
    "gold",
    "correct",
)
"""The columns of :meth:`GeneratedEval.table` (one row per generated judgment)."""


class GeneratedEval:
    def __init__(
        self,
        items: Sequence[PairwiseItem],
        *,
        template: str = "cj2_short",
        max_new_tokens: int = 256,
        batch_size: int = 8,
        prefix: str = "val",
        out_dir: str | Path | None = None,
        autocast_dtype: torch.dtype | None = None,
        heldout_families: Sequence[str] = (),
        progress: bool = False,
    ):
        from cj2.data.templates import get_template

        self.items = list(items)
        # items of these families are scored apart (``{prefix}/judge_acc_unseen_family``, ...): the headline
        # ``{prefix}/judge_acc`` is over the families the judge trained on, in questions it never saw
        self.heldout_families = frozenset(heldout_families)
        self.template = get_template(template)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.prefix = prefix
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.autocast_dtype = autocast_dtype  # e.g. bfloat16 when training runs bf16-mixed
        # a bar over the prompts on stderr, advanced per decoded batch (off when stderr is not a TTY)
        self.progress = progress
        self.last_rows: list[dict[str, Any]] = []  # the rows of the last run(), for the judgment table

    def key(self, model_id: str) -> str:
        return cache_key(
            model_id,
            self.template.name,
            self.max_new_tokens,
            str(self.autocast_dtype),
            self.batch_size,
            item_fingerprint(self.items),
            sorted(self.heldout_families),
        )

    @torch.no_grad()
    def generate(self, model, tokenizer, *, desc: str = "generated judgments") -> list[dict[str, Any]]:
        from cj2.generation.base import SamplingParams
        from cj2.generation.hf import HFSampler

        prompts = []
        for item in self.items:
            prompts.append(self.template.render(item))
            prompts.append(self.template.render(item.swapped()))
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=0.0, stop_on_verdict=self.template.format
        )
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        autocast = contextlib.nullcontext()
        bar = None
        try:
            decoder = model
            if self.autocast_dtype == torch.bfloat16 and device.type == "cpu":
                # CPU autocast re-casts every weight at every decoding step (a few tokens each): a bf16 copy
                # of the weights decodes about twice as fast (measured on SmolLM2-135M). Not for fp16, whose
                # norms and softmax need the fp32 that autocast keeps.
                decoder = copy.deepcopy(model).to(torch.bfloat16).eval()
            elif self.autocast_dtype is not None:
                autocast = torch.autocast(device.type, dtype=self.autocast_dtype)
            sampler = HFSampler(decoder, tokenizer, batch_size=self.batch_size)
            bar = progress_bar(total=len(prompts), desc=desc, unit="prompt", enabled=self.progress)
            with autocast:
                samples = sampler.generate(prompts, 1, params, on_batch=bar.update)
        finally:
            if bar is not None:
                bar.close()
            model.train(was_training)
        rows = []
        for i, item in enumerate(self.items):
            for order, s in (("AB", samples[2 * i][0]), ("BA", samples[2 * i + 1][0])):
                raw = parse_verdict(s.text, self.template.format)
                verdict = raw if order == "AB" else unswap(raw)
                rows.append(
                    {
                        "id": item.id,
                        "order": order,
                        "domain": item.domain,
                        "output": s.text,
                        "finish_reason": s.finish_reason,
                        "parsed": raw,
                        "verdict": verdict,
                        "gold": item.label,
                        "correct": verdict == item.label,
                        "heldout_family": item.domain in self.heldout_families,
                    }
                )
        return rows

    def score(self, rows: Sequence[dict[str, Any]]) -> dict[str, float]:
        """The headline metrics over the trained families' items and, when there are any, the same metrics
        over the held-out families' items with the suffix ``_unseen_family``."""
        out: dict[str, float] = {}
        for group, suffix in family_groups(rows, self.heldout_families, lambda r: r["domain"]):
            out.update(self._score(group, suffix))
        return out

    def _score(self, rows: Sequence[dict[str, Any]], suffix: str) -> dict[str, float]:
        from cj2.metrics import JudgeAccuracy, SwapConsistency, binomial_ci

        # rank zero scores its own generations: no cross-rank sync (the other ranks are not computing)
        acc = JudgeAccuracy(sync_on_compute=False)
        acc.update([r["verdict"] for r in rows], [r["gold"] for r in rows], [r["domain"] for r in rows])
        a = {k: float(v) for k, v in acc.compute().items()}
        ab = {r["id"]: r for r in rows if r["order"] == "AB"}
        ba = {r["id"]: r for r in rows if r["order"] == "BA"}
        ids = [i for i in ab if i in ba]
        swap = SwapConsistency(sync_on_compute=False)
        swap.update(
            [ab[i]["parsed"] for i in ids], [ba[i]["parsed"] for i in ids], [ab[i]["gold"] for i in ids]
        )
        s = {k: float(v) for k, v in swap.compute().items()}
        n_parsed = int(a["n_parsed"])
        k = round(a["accuracy_parsed"] * n_parsed) if n_parsed else 0
        low, high = binomial_ci(k, n_parsed) if n_parsed else (float("nan"), float("nan"))
        n_correct = sum(bool(r["correct"]) for r in rows)
        s_low, _ = binomial_ci(n_correct, len(rows)) if rows else (float("nan"), float("nan"))
        p, x = self.prefix, suffix
        out = {
            f"{p}/judge_acc{x}": a["accuracy"],
            f"{p}/judge_acc{x}_ci_low": float(s_low),  # Wilson lower bound of the strict accuracy
            f"{p}/judge_acc_parsed{x}": a["accuracy_parsed"] if n_parsed else float("nan"),
            f"{p}/judge_acc_parsed{x}_ci_low": float(low),
            f"{p}/judge_acc_parsed{x}_ci_high": float(high),
            f"{p}/parse_rate{x}": a["parse_rate"],
            f"{p}/n_judgments{x}": float(len(rows)),
            f"{p}/swap_consistency{x}": s["consistency"],
            f"{p}/position_bias{x}": s["position_bias"],
        }
        # strict accuracy per gold label as the judge saw it: a letter preference shows as a gap
        for g in ("A", "B"):
            shown = [r for r in rows if (r["gold"] if r["order"] == "AB" else unswap(r["gold"])) == g]
            if shown:
                out[f"{p}/judge_acc{x}_gold_{g}"] = sum(bool(r["correct"]) for r in shown) / len(shown)
        # is the verdict right for the right reasons: {p}/truth_acc, spurious_rate, unfaithful_rate (overall
        # and /<family>); absent where the items carry no computed truth
        out.update(rows_metrics(rows, self.items, prefix=p, suffix=x))
        return out

    def run(self, model, tokenizer, *, tag: str = "final", is_global_zero: bool = True) -> dict[str, float]:
        if not is_global_zero:
            return {}
        rows = self.generate(model, tokenizer, desc=f"{self.prefix}: generated judgments")
        self.last_rows = rows
        if self.out_dir is not None:
            write_jsonl(self.out_dir / f"generations_{tag}.jsonl", rows)
            write_jsonl(
                self.out_dir / "generations_latest.jsonl", rows
            )  # what a sweep's paired comparison reads
        return self.score(rows)

    def table(self, rows: Sequence[dict[str, Any]], max_rows: int) -> tuple[list[str], list[list[Any]]]:
        """``(columns, data)``: the first ``max_rows`` judgments of ``rows`` as the judge saw them (responses,
        verdict and gold in the order it was shown: ``order`` BA has the responses swapped), for a table in
        the run's logger (a ``wandb.Table``)."""
        items = {item.id: item for item in self.items}
        data = []
        for r in list(rows)[: max(0, int(max_rows))]:
            item = items[r["id"]]
            shown = item if r["order"] == "AB" else item.swapped()
            data.append(
                [
                    r["id"],
                    r["domain"],
                    r["order"],
                    shown.question,
                    shown.response_a,
                    shown.response_b,
                    r["output"],
                    r["parsed"],
                    shown.label,
                    bool(r["correct"]),
                ]
            )
        return list(TABLE_COLUMNS), data

    def baseline(
        self, model, tokenizer, *, model_id: str, cache_dir: str | Path | None, lookup_only: bool = False
    ) -> dict[str, float]:
        """The untrained model's scores on the same items, computed once and cached by model and items
        (``lookup_only``: the cached scores or nothing, never a computation)."""

        def compute() -> dict[str, float]:
            saved_prefix, self.prefix = self.prefix, f"{self.prefix}_untrained"
            try:
                rows = self.generate(model, tokenizer, desc=f"{self.prefix}: generated judgments")
                metrics = self.score(rows)
            finally:
                self.prefix = saved_prefix
            if self.out_dir is not None:
                write_jsonl(self.out_dir / "generations_untrained.jsonl", rows)
            return metrics

        return cached_metrics(cache_dir, self.key(model_id), model_id, None if lookup_only else compute)
