"""Swap consistency, position bias and the JudgeBench double-order score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, check_lengths, ratio
from cj2.verdict import SWAP as _SWAP
from cj2.verdict import unswap


def _toward(verdict: str | None, side: str) -> int:
    """+1 when ``verdict`` (original order) picks ``side``, -1 when it picks the other side, else 0."""
    if verdict == side:
        return 1
    if verdict in _SWAP and side in _SWAP:
        return -1
    return 0


class SwapConsistency(JudgeMetric):
    """How a judge's verdict depends on the order of the two responses.

    Each pair is judged twice. ``update(verdict_ab, verdict_ba, target=None)``:

    * ``verdict_ab``: the verdict with the original order (``"A"`` = the original first response);
    * ``verdict_ba``: the verdict with the responses swapped, **in the swapped frame** (``"A"`` there is the
      original *B*); ``None`` where unparsed; ``"tie"`` or any other label is kept as is;
    * ``target``: the gold label in the original order (optional).

    ``compute()`` returns fractions over **all** pairs (an unparsed verdict is never consistent):

    * ``consistency``: both verdicts parsed and equal once ``verdict_ba`` is mapped back;
    * ``prefer_first_rate``: the judge picked position A in both orders (an inconsistency that follows the
      position, not the content); ``prefer_second_rate`` likewise for position B;
    * ``position_bias`` = ``prefer_first_rate - prefer_second_rate``;
    * with targets, ``double_order_accuracy``, the JudgeBench score: each order gives +1 toward the side it
      picks and -1 against the other (tie or unparsed: 0); the pair's decision is the sign of the net toward
      A, and the pair is correct when it matches the target, i.e. for an ``"A"``/``"B"`` target when the net
      toward the target is positive (for a ``"tie"`` target, when the net is 0);
    * ``n`` and ``n_with_target``.

    All states are sums, so the metric reduces exactly under DDP.
    """

    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("n", "n_consistent", "n_first", "n_second", "n_with_target", "n_double_correct"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        verdict_ab: Sequence[str | None],
        verdict_ba: Sequence[str | None],
        target: Sequence[str] | None = None,
    ) -> None:
        check_lengths(verdict_ab=verdict_ab, verdict_ba=verdict_ba, target=target)
        consistent = first = second = 0
        for ab, ba in zip(verdict_ab, verdict_ba):
            consistent += ab is not None and ab == unswap(ba)
            first += ab == "A" and ba == "A"
            second += ab == "B" and ba == "B"
        self.n += len(verdict_ab)
        self.n_consistent += consistent
        self.n_first += first
        self.n_second += second
        if target is None:
            return
        correct = 0
        for i, (ab, ba, t) in enumerate(zip(verdict_ab, verdict_ba, target)):
            if t not in ("A", "B", "tie"):
                raise ValueError(f"target[{i}] must be 'A', 'B' or 'tie', got {t!r}")
            net_a = _toward(ab, "A") + _toward(unswap(ba), "A")
            correct += net_a > 0 if t == "A" else net_a < 0 if t == "B" else net_a == 0
        self.n_with_target += len(target)
        self.n_double_correct += correct

    def compute(self) -> dict[str, Tensor]:
        n = int(self.n)
        first, second = ratio(int(self.n_first), n), ratio(int(self.n_second), n)
        out = {
            "consistency": ratio(int(self.n_consistent), n),
            "prefer_first_rate": first,
            "prefer_second_rate": second,
            "position_bias": first - second,
            "n": torch.tensor(n),
        }
        if int(self.n_with_target):
            out["double_order_accuracy"] = ratio(int(self.n_double_correct), int(self.n_with_target))
            out["n_with_target"] = self.n_with_target.clone()
        return out
