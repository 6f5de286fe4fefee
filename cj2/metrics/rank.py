"""Rank agreement between a judge's and the ground truth's per-model scores: Kendall tau-b, Spearman rho."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, as_float_list, check_lengths


def _pair(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"x and y must have one length, got {len(x)} and {len(y)}")
    return x, y


def kendall_tau_b(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), n0 = n(n-1)/2.

    Pairs tied in x (or y) count in neither the concordant nor the discordant pairs and are removed from
    that variable's side of the denominator. NaN when fewer than two items or either side is constant.
    """
    x, y = _pair(x, y)
    n = len(x)
    if n < 2:
        return math.nan
    i, j = torch.triu_indices(n, n, offset=1)
    dx, dy = torch.sign(x[i] - x[j]), torch.sign(y[i] - y[j])
    n0 = n * (n - 1) / 2
    denom = math.sqrt((n0 - int((dx == 0).sum())) * (n0 - int((dy == 0).sum())))
    return float((dx * dy).sum()) / denom if denom else math.nan


def average_ranks(x: Sequence[float] | Tensor) -> Tensor:
    """Ranks 1..n of ``x`` ascending, tied values sharing the mean of their ranks (float64)."""
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    less = (x[None, :] < x[:, None]).sum(1)
    equal = (x[None, :] == x[:, None]).sum(1)
    return less.double() + (equal.double() + 1) / 2


def spearman_rho(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks. NaN when either side is constant."""
    x, y = _pair(x, y)
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    return float((rx * ry).sum()) / denom if denom else math.nan


def nanmean(values: Sequence[float]) -> float:
    """Mean of the values that are not NaN; NaN when none is."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


class RankAgreement(JudgeMetric):
    """Kendall tau-b and Spearman rho between judge and ground-truth per-model scores, per scenario.

    ``update(scenario, model, judge_score, gt_score)`` takes rows; rows with the same (scenario, model) are
    **summed**, so a caller may feed finished win tables, per-rank partial tables, or one row per judged
    item (+1 to the winner). Rows are ``cat`` states of name ids and float64 scores, so tables split over
    ranks add up exactly under DDP.

    ``compute()`` returns ``kendall_tau/<scenario>``, ``spearman_rho/<scenario>`` and their means over
    scenarios, ``kendall_tau`` and ``spearman_rho``. A coefficient is undefined (NaN) in a scenario where a
    side is constant (e.g. the judge gave every model the same score); such scenarios are left out of the
    means and counted in ``n_undefined``.
    """

    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._add_cat_state("scenario_id", torch.int64)
        self._add_cat_state("model_id", torch.int64)
        self._add_cat_state("judge_score", torch.float64)
        self._add_cat_state("gt_score", torch.float64)
        self._add_name_state()

    def update(
        self,
        scenario: Sequence[str],
        model: Sequence[str],
        judge_score: Sequence[float] | Tensor,
        gt_score: Sequence[float] | Tensor,
    ) -> None:
        check_lengths(scenario=scenario, model=model, judge_score=judge_score, gt_score=gt_score)
        self._append("scenario_id", self._ids(scenario, "scenario"))
        self._append("model_id", self._ids(model, "model"))
        self._append("judge_score", as_float_list(judge_score, "judge_score"))
        self._append("gt_score", as_float_list(gt_score, "gt_score"))

    def tables(self) -> dict[str, dict[str, tuple[float, float]]]:
        """scenario -> model -> (judge score, ground-truth score), rows summed over every rank (under DDP a
        collective: call it on every rank, like ``compute``)."""
        with self._synced():
            return self._tables()

    def _tables(self) -> dict[str, dict[str, tuple[float, float]]]:
        names = self._names()
        keys = torch.stack([self._cat("scenario_id"), self._cat("model_id")], dim=1)
        tables: dict[str, dict[str, tuple[float, float]]] = {}
        if not len(keys):
            return tables
        uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
        judge = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, self._cat("judge_score"))
        gt = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, self._cat("gt_score"))
        for (s, m), j, g in zip(uniq.tolist(), judge.tolist(), gt.tolist()):
            tables.setdefault(names[s], {})[names[m]] = (j, g)
        return tables

    def compute(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        taus, rhos = [], []
        for scenario, table in sorted(self._tables().items()):
            models = sorted(table)
            judge = [table[m][0] for m in models]
            gt = [table[m][1] for m in models]
            taus.append(kendall_tau_b(gt, judge))
            rhos.append(spearman_rho(gt, judge))
            out[f"kendall_tau/{scenario}"] = torch.tensor(taus[-1], dtype=torch.float64)
            out[f"spearman_rho/{scenario}"] = torch.tensor(rhos[-1], dtype=torch.float64)
        out["kendall_tau"] = torch.tensor(nanmean(taus), dtype=torch.float64)
        out["spearman_rho"] = torch.tensor(nanmean(rhos), dtype=torch.float64)
        out["n_undefined"] = torch.tensor(sum(math.isnan(t) for t in taus))
        return out
