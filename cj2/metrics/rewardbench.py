"""RewardBench: subset accuracies -> section scores -> final (arXiv 2507.09104, Table 8)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, as_float_list, check_lengths

# RewardBench's subsets and the section each belongs to (the benchmark's own grouping)
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "chat_hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
REWARDBENCH_SUBSETS: tuple[str, ...] = tuple(s for subsets in REWARDBENCH_SECTIONS.values() for s in subsets)
WEIGHTINGS = ("official", "opencompass")
_CODE_SUBSETS = tuple(s for s in REWARDBENCH_SECTIONS["reasoning"] if s.startswith("hep-"))


class RewardBenchScore(JudgeMetric):
    """RewardBench section scores and final score, on a 0-100 scale.

    ``update(subset, correct)``: each item's RewardBench subset name and whether the judge preferred the
    chosen response (a float in [0, 1] is accepted, e.g. 0.5 credit for a tie). ``compute()`` returns
    ``accuracy/<subset>`` for every subset seen, the sections ``chat``, ``chat_hard``, ``safety``,
    ``reasoning``, and ``final`` = the unweighted mean of the four sections (Table 8). A section without
    items is NaN, and then so is ``final``.

    Section weighting (the counts are the items actually scored):

    * ``"official"`` (RewardBench's leaderboard): within Chat, Chat Hard and Safety subsets are weighted by
      their example counts; in Reasoning, ``math-prm`` weighs as much as all code subsets together:
      ``reasoning = (acc(math-prm) + acc(code)) / 2`` with ``acc(code)`` count-weighted over ``hep-*``.
    * ``"opencompass"`` (OpenCompass's summarizer, the paper's numbers): every section count-weighted,
      Reasoning included, so math-prm gets only its share of the examples (about 0.31 on the full set).

    All states are per-subset sums over a fixed subset list, so the metric reduces exactly under DDP; an
    unknown subset name is an error.
    """

    higher_is_better = True

    def __init__(self, weighting: str = "official", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self._index = {s: i for i, s in enumerate(REWARDBENCH_SUBSETS)}
        zeros = torch.zeros(len(REWARDBENCH_SUBSETS), dtype=torch.float64)
        self.add_state("subset_correct", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("subset_n", default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, subset: Sequence[str], correct: Sequence[float] | Tensor) -> None:
        check_lengths(subset=subset, correct=correct)
        unknown = sorted({s for s in subset if s not in self._index})
        if unknown:
            raise ValueError(f"unknown RewardBench subset(s) {unknown}; known: {list(REWARDBENCH_SUBSETS)}")
        values = as_float_list(correct, "correct")
        if ((values < 0) | (values > 1)).any():
            raise ValueError("correct must lie in [0, 1]")
        index = torch.tensor([self._index[s] for s in subset], dtype=torch.int64, device=self.device)
        self.subset_n.index_add_(0, index, torch.ones_like(values).to(self.device, self.subset_n.dtype))
        self.subset_correct.index_add_(0, index, values.to(self.device, self.subset_correct.dtype))

    def _weighted(self, subsets: Sequence[str]) -> float:
        """Count-weighted accuracy over ``subsets`` (0-100), NaN without items."""
        idx = [self._index[s] for s in subsets]
        n = float(self.subset_n[idx].sum())
        return 100 * float(self.subset_correct[idx].sum()) / n if n else math.nan

    def compute(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for s, i in self._index.items():
            if float(self.subset_n[i]):
                out[f"accuracy/{s}"] = torch.tensor(self._weighted([s]), dtype=torch.float64)
        sections = {name: self._weighted(subsets) for name, subsets in REWARDBENCH_SECTIONS.items()}
        if self.weighting == "official":
            sections["reasoning"] = (self._weighted(["math-prm"]) + self._weighted(_CODE_SUBSETS)) / 2
        for name, value in sections.items():
            out[name] = torch.tensor(value, dtype=torch.float64)
        out["final"] = torch.tensor(sum(sections.values()) / len(sections), dtype=torch.float64)
        out["n"] = self.subset_n.sum().long()
        return out
