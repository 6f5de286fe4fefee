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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cj2.data.io import write_jsonl
from cj2.data.schema import PairwiseItem
from cj2.evaluation.baselines import cache_key, cached_metrics, family_groups, item_fingerprint
from cj2.evaluation.faithfulness import rows_metrics
from cj2.evaluation.placement import present, to_original
from cj2.judge import JudgeProtocol
from cj2.progress import progress_bar
from cj2.verdict import unswap

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
        """The rows of ``model`` judging every item in both orders, greedily (:meth:`judge_rows` over a
        :class:`cj2.Judge` on the model in training)."""
        from cj2.generation.hf import HFSampler
        from cj2.judge import Judge

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
            judge = Judge.from_sampler(
                HFSampler(decoder, tokenizer, batch_size=self.batch_size),
                template=self.template,
                batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens,
            )
            bar = progress_bar(total=2 * len(self.items), desc=desc, unit="prompt", enabled=self.progress)
            with autocast:
                rows = self.judge_rows(judge, on_batch=bar.update)
        finally:
            if bar is not None:
                bar.close()
            model.train(was_training)
        return rows

    def judge_rows(
        self, judge: JudgeProtocol, *, on_batch: Callable[[int], Any] | None = None
    ) -> list[dict[str, Any]]:
        """The rows of any judge (:class:`cj2.judge.JudgeProtocol`) judging every item as given (``AB``)
        and swapped (``BA``), all in one call: verdicts in the item's frame, unparsed ones wrong."""
        shown = [present(item, swapped) for item in self.items for swapped in (False, True)]
        results = judge.judge_items(shown, on_batch=on_batch)
        rows = []
        for i, item in enumerate(self.items):
            for k, order in enumerate(("AB", "BA")):
                r = results[2 * i + k]
                verdict = to_original(r.verdict, order == "BA")
                rows.append(
                    {
                        "id": item.id,
                        "order": order,
                        "domain": item.domain,
                        "output": r.output,
                        "finish_reason": r.finish_reason,
                        "parsed": r.verdict,
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
        """One group's metrics, by the definitions ``cj2.evaluate`` scores with
        (:func:`cj2.evaluation.scoring.accuracy_metrics`, :func:`~cj2.evaluation.scoring.swap_metrics`):
        every judgment counts once in the accuracies, the items judged in both orders in the swap metrics."""
        from cj2.evaluation.scoring import accuracy_metrics, swap_metrics

        items = {item.id: item for item in self.items}
        acc = accuracy_metrics([(items[r["id"]], r) for r in rows], bootstrap=0)
        by_pass = {(r["id"], "headline" if r["order"] == "AB" else "swap"): r for r in rows}
        sw = swap_metrics([items[i] for i in dict.fromkeys(r["id"] for r in rows)], by_pass)
        n_parsed = int(acc["n_parsed"])
        nan = float("nan")
        p, x = self.prefix, suffix
        out = {
            f"{p}/judge_acc{x}": acc["accuracy"],
            f"{p}/judge_acc{x}_ci_low": acc["accuracy_ci_low"],  # Wilson lower bound of the strict accuracy
            f"{p}/judge_acc_parsed{x}": acc["accuracy_parsed"] if n_parsed else nan,
            f"{p}/judge_acc_parsed{x}_ci_low": acc["accuracy_parsed_ci_low"],
            f"{p}/judge_acc_parsed{x}_ci_high": acc["accuracy_parsed_ci_high"],
            f"{p}/parse_rate{x}": acc["parse_rate"],
            f"{p}/n_judgments{x}": float(len(rows)),
            f"{p}/swap_consistency{x}": sw.get("swap/consistency", nan),
            f"{p}/position_bias{x}": sw.get("swap/position_bias", nan),
        }
        # strict accuracy per gold label as the judge saw it: a letter preference shows as a gap
        for g in ("A", "B"):
            shown = [r for r in rows if (r["gold"] if r["order"] == "AB" else unswap(r["gold"])) == g]
            if shown:
                out[f"{p}/judge_acc{x}_gold_{g}"] = sum(bool(r["correct"]) for r in shown) / len(shown)
        # is the verdict right for the right reasons: {p}/truth_acc, spurious_rate, unfaithful_rate (overall
        # and /<family>); absent where the items carry no computed truth
        out.update(rows_metrics(rows, self.items, prefix=p, suffix=x))
        return {k: float(v) for k, v in out.items()}

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
