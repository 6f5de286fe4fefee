"""Mix-of-Judgers ground truth and inter-judge agreement (arXiv 2507.09104, Sec. 4.2).

JudgerBenchV2's ground truth is the majority verdict of three strong judges (DeepSeek-R1,
DeepSeek-V3-0324, Qwen3-235B-A22B), since any single judge carries its own bias. Pure functions:

* :func:`majority_vote`: one item's label from its judges' votes under a tie policy;
* :func:`cohen_kappa`: agreement of two judges beyond chance, ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` from
  each judge's own label frequencies, over the items both judged;
* :func:`fleiss_kappa`: agreement of N judges, ``(P_bar - P_e) / (1 - P_e)`` with
  ``P_i = (sum_k n_ik^2 - n) / (n (n - 1))`` and ``P_e = sum_k p_k^2``, over the items every judge judged.

A vote of ``None`` is an abstention (an unparsed verdict, or an item missing from a judge's file).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

TIE_POLICIES = ("drop", "tie", "first", "error")


class NoMajority(ValueError):
    """Raised by :func:`majority_vote` with ``tie_policy="error"``."""


def majority_vote(
    votes: Sequence[str | None], *, tie_policy: str = "drop", min_votes: int | None = None
) -> str | None:
    """The majority label of ``votes`` (one per judge, in the judges' order; ``None`` abstains).

    A label wins when it has strictly more votes than any other and at least ``min_votes`` (default: a
    strict majority of all judges, ``len(votes) // 2 + 1``, so with three judges two must agree). Otherwise
    ``tie_policy`` decides: ``"drop"`` returns ``None`` (the caller leaves the item out and counts it),
    ``"tie"`` returns ``"tie"``, ``"first"`` the vote of the first judge that voted for a most-voted label
    (a designated lead judge; ``None`` if nobody voted), ``"error"`` raises :class:`NoMajority`.
    """
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy={tie_policy!r}; expected one of {TIE_POLICIES}")
    need = len(votes) // 2 + 1 if min_votes is None else int(min_votes)
    counts = Counter(v for v in votes if v is not None)
    if counts:
        ranked = counts.most_common()
        top_label, top = ranked[0]
        if top >= need and (len(ranked) == 1 or ranked[1][1] < top):
            return top_label
    if tie_policy == "drop":
        return None
    if tie_policy == "tie":
        return "tie"
    if tie_policy == "first":
        best = max(counts.values(), default=0)
        return next((v for v in votes if v is not None and counts[v] == best), None)
    raise NoMajority(f"no majority among the votes {list(votes)} (need {need} agreeing)")


def cohen_kappa(a: Sequence[str | None], b: Sequence[str | None]) -> tuple[float, int]:
    """Cohen's kappa of two judges over the items both judged, and that number of items.

    NaN when no item was judged by both, or when chance agreement is 1 (both judges always gave the same
    single label: agreement beyond chance is undefined).
    """
    if len(a) != len(b):
        raise ValueError(f"the two judges have {len(a)} and {len(b)} votes; one per item each is needed")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if not n:
        return math.nan, 0
    p_o = sum(x == y for x, y in pairs) / n
    fa, fb = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    p_e = sum(fa[k] * fb[k] for k in fa) / (n * n)
    if p_e == 1.0:
        return math.nan, n
    return (p_o - p_e) / (1 - p_e), n


def fleiss_kappa(table: Sequence[Sequence[str | None]]) -> tuple[float, int]:
    """Fleiss' kappa over items (rows of ``table``, one vote per judge) that every judge judged, and that
    number of items. NaN with fewer than two judges, no complete item, or chance agreement of 1."""
    rows = [list(r) for r in table if r and all(v is not None for v in r)]
    if not rows:
        return math.nan, 0
    n = len(rows[0])
    if n < 2 or any(len(r) != n for r in rows):
        return math.nan, len(rows)
    totals: Counter[str] = Counter()
    p_bar = 0.0
    for r in rows:
        counts = Counter(r)
        totals.update(counts)
        p_bar += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
    p_bar /= len(rows)
    p_e = sum((c / (n * len(rows))) ** 2 for c in totals.values())
    if p_e == 1.0:
        return math.nan, len(rows)
    return (p_bar - p_e) / (1 - p_e), len(rows)


def agreement_report(votes: Mapping[str, Sequence[str | None]]) -> dict[str, float]:
    """Pairwise Cohen's kappa (``cohen/<a>|<b>`` and ``_n``) and Fleiss' kappa of judges' votes aligned by
    item (``votes[judge][i]`` is the judge's vote on item i)."""
    names = list(votes)
    out: dict[str, float] = {}
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            kappa, n = cohen_kappa(votes[x], votes[y])
            out[f"cohen/{x}|{y}"] = kappa
            out[f"cohen/{x}|{y}_n"] = float(n)
    kappa, n = fleiss_kappa(list(zip(*[votes[name] for name in names])))
    out["fleiss"] = kappa
    out["fleiss_n"] = float(n)
    return out
