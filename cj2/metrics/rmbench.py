"""RM-Bench: the 3x3 style matrix, its hard/normal/easy triangles, per domain and overall.

RM-Bench (Liu et al., 2024) gives every prompt three chosen and three rejected responses in three styles,
in this order: concise, detailed plain text, detailed markdown. Comparison (i, j) asks whether chosen
response i beats rejected response j. Averaged over the items of a domain this gives a 3x3 matrix ``M``
(rows: the chosen style, columns: the rejected style), read as

* **hard** = the mean of the upper triangle (``i < j``: the chosen answer is plainer than the rejected one,
  so a judge swayed by style loses),
* **normal** = the mean of the diagonal (same style on both sides),
* **easy** = the mean of the lower triangle (``i > j``: style and substance agree);

a domain's score is the mean of its three, and the overall numbers are plain means over the domains
(chat, math, code, safety; RM-Bench's two safety files, ``safety-refuse`` and ``safety-response``, form one
domain). Scale 0-100.

How a comparison earns its credit (1 = chosen wins) is the caller's business: cj2's default is the
double-order net vote, ``compat="rm_r1"`` one order with 0.5 for a tie (:mod:`cj2.evaluation.scoring`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, as_float_list, check_lengths

RMBENCH_DOMAINS: tuple[str, ...] = ("chat", "math", "code", "safety")
RMBENCH_STYLES: tuple[str, ...] = ("concise", "detailed_plain", "detailed_markdown")


def rmbench_domain(name: str) -> str:
    """The RM-Bench domain of a file's or row's domain name: ``safety-refuse`` and ``safety-response``
    (any ``safety*``) are ``safety``; ``chat``, ``math``, ``code`` are themselves (case-insensitive). Any
    other name is a ``ValueError``."""
    low = str(name).strip().lower()
    if low.startswith("safety"):
        return "safety"
    if low in RMBENCH_DOMAINS:
        return low
    raise ValueError(f"{name!r} is not an RM-Bench domain; expected one of {RMBENCH_DOMAINS} (or safety-*)")


def triangles(matrix: Sequence[Sequence[float]]) -> dict[str, float]:
    """``hard`` (upper triangle mean), ``normal`` (diagonal mean), ``easy`` (lower triangle mean) of a
    square matrix of chosen-beats-rejected rates, and ``score`` = their mean. NaN cells (no comparison)
    are left out of their triangle's mean; an empty triangle is NaN."""
    n = len(matrix)

    def mean(cells: list[float]) -> float:
        cells = [c for c in cells if not math.isnan(c)]
        return sum(cells) / len(cells) if cells else math.nan

    hard = mean([matrix[i][j] for i in range(n) for j in range(n) if i < j])
    normal = mean([matrix[i][i] for i in range(n)])
    easy = mean([matrix[i][j] for i in range(n) for j in range(n) if i > j])
    return {"hard": hard, "normal": normal, "easy": easy, "score": (hard + normal + easy) / 3}


class RMBenchScore(JudgeMetric):
    """RM-Bench's triangles per domain and overall (0-100).

    ``update(domain, chosen_style, rejected_style, credit)``: one row per comparison; ``domain`` an
    RM-Bench domain name (:func:`rmbench_domain` maps ``safety-*``), the two style indices in 0..2 and the
    credit in [0, 1]. ``compute()``: ``<domain>/hard|normal|easy|score`` for every domain seen, ``hard``,
    ``normal``, ``easy`` = the mean of that triangle over the domains seen, ``score`` = the mean of the
    domains' scores, ``matrix/<i><j>`` (the overall cell means over domains), ``n`` comparisons and
    ``n_domains``. Sum states over a fixed domain x style grid: exact under DDP.
    """

    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shape = (len(RMBENCH_DOMAINS), 3, 3)
        self.add_state("credit", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        domain: Sequence[str],
        chosen_style: Sequence[int],
        rejected_style: Sequence[int],
        credit: Sequence[float] | Tensor,
    ) -> None:
        check_lengths(domain=domain, chosen_style=chosen_style, rejected_style=rejected_style, credit=credit)
        values = as_float_list(credit, "credit")
        if ((values < 0) | (values > 1)).any():
            raise ValueError("credit must lie in [0, 1]")
        for name, styles in (("chosen_style", chosen_style), ("rejected_style", rejected_style)):
            bad = [s for s in styles if int(s) not in (0, 1, 2)]
            if bad:
                raise ValueError(
                    f"{name} must be 0, 1 or 2 (concise, detailed plain, markdown), got {bad[0]}"
                )
        d = [RMBENCH_DOMAINS.index(rmbench_domain(x)) for x in domain]
        for k, i, j, v in zip(d, chosen_style, rejected_style, values.tolist()):
            self.credit[k, int(i), int(j)] += v
            self.count[k, int(i), int(j)] += 1

    def compute(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        per_domain: dict[str, dict[str, float]] = {}
        cells = torch.where(self.count > 0, self.credit / self.count.clamp(min=1), torch.nan)
        for k, name in enumerate(RMBENCH_DOMAINS):
            if not float(self.count[k].sum()):
                continue
            per_domain[name] = triangles((100 * cells[k]).tolist())
            for key, value in per_domain[name].items():
                out[f"{name}/{key}"] = torch.tensor(value, dtype=torch.float64)
        for key in ("hard", "normal", "easy", "score"):
            vals = [t[key] for t in per_domain.values()]
            out[key] = torch.tensor(sum(vals) / len(vals) if vals else math.nan, dtype=torch.float64)
        seen = [k for k, name in enumerate(RMBENCH_DOMAINS) if name in per_domain]
        if seen:
            overall = torch.nanmean(100 * cells[seen], dim=0)
            for i in range(3):
                for j in range(3):
                    out[f"matrix/{i}{j}"] = overall[i, j].clone()
        out["n"] = self.count.sum().long()
        out["n_domains"] = torch.tensor(len(per_domain))
        return out
