"""Calibration of a judge's verdict probability: expected calibration error and Brier score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, as_float_list, check_lengths


class Calibration(JudgeMetric):
    """Expected calibration error (ECE) and Brier score of the probability a judge gives its verdict.

    ``update(confidence, correct, prob_gold=None)``:

    * ``confidence`` ``[N]``: the probability the judge puts on the verdict it outputs (for verdict-logit
      scoring, the softmax over the candidate verdict tokens at the verdict slot, at its argmax);
    * ``correct`` ``[N]``: whether that verdict is the gold one;
    * ``prob_gold`` ``[N]`` (optional): the probability on the gold verdict.

    :meth:`update_from_logits` derives all three from candidate-verdict logits ``[N, K]`` and gold indices.

    ``compute()`` returns

    * ``ece`` = sum_b (n_b / N) |acc_b - conf_b| over ``n_bins`` equal-width confidence bins
      ``[0, 1/B], (1/B, 2/B], ...``; ``mce``, the largest per-bin gap over non-empty bins;
    * ``brier`` = mean (confidence - correct)^2, the Brier score of the confidence as a forecast of being
      right. For two candidate verdicts (A/B) this equals the usual binary Brier score of P(gold), since
      then P(gold) is ``confidence`` when right and ``1 - confidence`` when wrong;
    * ``brier_gold`` = mean (1 - prob_gold)^2 over the items given ``prob_gold`` (NaN if none): the binary
      Brier score of the gold verdict, which differs from ``brier`` only with more than two candidates;
    * ``mean_confidence``, ``accuracy`` and ``n``.

    States are per-bin sums and totals, so the metric reduces exactly under DDP.
    """

    higher_is_better = False

    def __init__(self, n_bins: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = n_bins
        zeros = torch.zeros(n_bins, dtype=torch.float64)
        for name in ("bin_n", "bin_confidence", "bin_correct"):
            self.add_state(name, default=zeros.clone(), dist_reduce_fx="sum")
        for name in ("brier_sum", "gold_brier_sum", "gold_n"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        confidence: Tensor | Sequence[float],
        correct: Tensor | Sequence[bool],
        prob_gold: Tensor | Sequence[float] | None = None,
    ) -> None:
        check_lengths(confidence=confidence, correct=correct, prob_gold=prob_gold)
        conf = _probabilities(confidence, "confidence")
        right = torch.as_tensor(correct).reshape(-1).to(torch.float64).cpu()
        # bin b holds (b/B, (b+1)/B], the first bin also 0; edges as i/B so that 0.3 lands in (0.2, 0.3]
        edges = torch.arange(1, self.n_bins, dtype=torch.float64) / self.n_bins
        bins = torch.bucketize(conf, edges, right=False)
        dev = self.bin_n.device
        self.bin_n.index_add_(0, bins.to(dev), torch.ones_like(conf).to(dev, self.bin_n.dtype))
        self.bin_confidence.index_add_(0, bins.to(dev), conf.to(dev, self.bin_confidence.dtype))
        self.bin_correct.index_add_(0, bins.to(dev), right.to(dev, self.bin_correct.dtype))
        self.brier_sum += float(((conf - right) ** 2).sum())
        if prob_gold is not None:
            gold = _probabilities(prob_gold, "prob_gold")
            self.gold_brier_sum += float(((1 - gold) ** 2).sum())
            self.gold_n += len(gold)

    def update_from_logits(self, logits: Tensor, target: Tensor) -> None:
        """Update from candidate-verdict logits ``[N, K]`` and gold candidate indices ``[N]``: the softmax
        over the K candidates gives the confidence (its max), correctness (argmax == target) and P(gold)."""
        if logits.ndim != 2 or target.shape != logits.shape[:1]:
            raise ValueError(
                f"logits must be [N, K] and target [N], got {tuple(logits.shape)} and {tuple(target.shape)}"
            )
        probs = torch.softmax(logits.detach().double(), dim=-1)
        confidence, predicted = probs.max(dim=-1)
        self.update(confidence, predicted == target, probs.gather(1, target.long()[:, None]).squeeze(1))

    def compute(self) -> dict[str, Tensor]:
        n = float(self.bin_n.sum())
        nonempty = self.bin_n > 0
        gaps = (self.bin_correct[nonempty] - self.bin_confidence[nonempty]).abs() / self.bin_n[nonempty]
        f64 = torch.float64
        if not n:
            nan = torch.tensor(math.nan, dtype=f64)
            return {
                "ece": nan,
                "mce": nan.clone(),
                "brier": nan.clone(),
                "brier_gold": nan.clone(),
                "mean_confidence": nan.clone(),
                "accuracy": nan.clone(),
                "n": torch.tensor(0),
            }
        gold_n = float(self.gold_n)
        return {
            "ece": (gaps * self.bin_n[nonempty]).sum() / n,
            "mce": gaps.max(),
            "brier": self.brier_sum / n,
            "brier_gold": self.gold_brier_sum / gold_n if gold_n else torch.tensor(math.nan, dtype=f64),
            "mean_confidence": self.bin_confidence.sum() / n,
            "accuracy": self.bin_correct.sum() / n,
            "n": torch.tensor(int(n)),
        }


def _probabilities(values: Tensor | Sequence[float], field: str) -> Tensor:
    t = as_float_list(values.detach() if isinstance(values, Tensor) else values, field).cpu()
    if ((t < 0) | (t > 1)).any():
        i = int(((t < 0) | (t > 1)).nonzero()[0])
        raise ValueError(f"{field}[{i}] = {float(t[i])} is not a probability in [0, 1]")
    return t
