"""From per-item judgment rows to a benchmark's metrics (arXiv 2507.09104, Sec. 4-5).

A *row* is one judgment of one item in one pass (:mod:`cj2.evaluation.runner`): ``parsed`` is the
verdict as the judge saw the pair, ``verdict`` the same in the frame of the item as read (``A`` = its
first response), ``order`` where the first response was shown (``AB``/``BA``), and for verdict-logit rows
``probs``. Passes: ``headline`` (the benchmark's placement, which the headline numbers use, as the paper
does), ``swap`` (the other order: swap consistency, position bias, JudgeBench's double-order score) and
``style`` (the headline order with the style-preference sentence added: the style probe, Fig. 5).

Every metric is computed by the :mod:`cj2.metrics` classes; this module only routes rows into them. Rates
are fractions in [0, 1]; benchmark scores (``jbv2/*``, ``rewardbench/*``, ``rmb/*``) are on the paper's
0-100 scale. Intervals: Wilson for accuracies, percentile bootstrap (``bootstrap`` resamples, seeded) for
the strict accuracy and the JudgerBenchV2 final score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from cj2.data.schema import PairwiseItem
from cj2.evaluation.faithfulness import rows_metrics
from cj2.evaluation.placement import to_original
from cj2.metrics import (
    Calibration,
    JudgeAccuracy,
    JudgerBenchV2Score,
    RewardBenchScore,
    RMBenchScore,
    RMBScore,
    SwapConsistency,
    binomial_ci,
    bootstrap_ci,
    rmbench_domain,
)
from cj2.verdict import parse_opencompass, render_verdict

if TYPE_CHECKING:  # the registry imports this module, never the other way round
    from cj2.evaluation.benchmarks import Benchmark

Rows = Mapping[tuple[str, str], Mapping[str, Any]]


def _local() -> bool:
    return False


LOCAL: dict[str, Any] = {"sync_on_compute": False, "distributed_available_fn": _local}
"""Metric options for the scoring functions here: they receive every row to score, so their metrics never
sync across ranks (under data parallelism every rank scores the same rows: a sync would count them once per
rank, and a rank scoring alone would wait for the others)."""


def _f(value: Any) -> float:
    if torch.is_tensor(value):
        return float(value.item())
    return float(value)


def _rows(items: Sequence[PairwiseItem], rows: Rows, pass_name: str) -> list[tuple[PairwiseItem, Mapping]]:
    return [(it, rows[(it.id, pass_name)]) for it in items if (it.id, pass_name) in rows]


def accuracy_metrics(
    pairs: Sequence[tuple[PairwiseItem, Mapping]], *, bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Strict and lenient accuracy, parse rate, per-domain accuracy and their intervals."""
    acc = JudgeAccuracy(**LOCAL)
    acc.update(
        [r["verdict"] for _, r in pairs], [it.label for it, _ in pairs], [it.domain for it, _ in pairs]
    )
    raw = {k: _f(v) for k, v in acc.compute().items()}
    n, n_parsed = int(raw["n"]), int(raw["n_parsed"])
    correct = [float(r["verdict"] is not None and r["verdict"] == it.label) for it, r in pairs]
    k = int(sum(correct))
    out = {
        "n": float(n),
        "accuracy": raw["accuracy"],
        "accuracy_parsed": raw["accuracy_parsed"],
        "parse_rate": raw["parse_rate"],
        "n_parsed": float(n_parsed),
    }
    out["accuracy_ci_low"], out["accuracy_ci_high"] = binomial_ci(k, n) if n else (math.nan, math.nan)
    lo, hi = binomial_ci(k, n_parsed) if n_parsed else (math.nan, math.nan)
    out["accuracy_parsed_ci_low"], out["accuracy_parsed_ci_high"] = lo, hi
    if bootstrap and n:
        out["accuracy_boot_low"], out["accuracy_boot_high"] = bootstrap_ci(
            correct, n_resamples=bootstrap, seed=seed
        )
    for key, value in raw.items():
        if key.startswith(("accuracy/", "n/")):
            out[key] = value
    return out


def swap_metrics(items: Sequence[PairwiseItem], rows: Rows) -> dict[str, float]:
    """Swap consistency, prefer-first/second rates, position bias and the double-order score over the
    items judged in both passes (``headline`` and ``swap``)."""
    ab, ba, target = [], [], []
    for it in items:
        h, s = rows.get((it.id, "headline")), rows.get((it.id, "swap"))
        if h is None or s is None:
            continue
        first, second = (h, s) if h["order"] == "AB" else (s, h)
        ab.append(first["parsed"])
        ba.append(second["parsed"])
        target.append(it.label)
    if not ab:
        return {}
    m = SwapConsistency(**LOCAL)
    m.update(ab, ba, target)
    res = {k: _f(v) for k, v in m.compute().items()}
    return {
        "swap/consistency": res["consistency"],
        "swap/prefer_first_rate": res["prefer_first_rate"],
        "swap/prefer_second_rate": res["prefer_second_rate"],
        "swap/position_bias": res["position_bias"],
        "swap/double_order_accuracy": res.get("double_order_accuracy", math.nan),
        "swap/n": res["n"],
    }


def calibration_metrics(pairs: Sequence[tuple[PairwiseItem, Mapping]]) -> dict[str, float]:
    """ECE, Brier score and mean P(gold) of the verdict probabilities (items that have them)."""
    conf, right, p_gold = [], [], []
    for it, r in pairs:
        probs = r.get("probs")
        if not probs or r.get("parsed") is None:
            continue
        gold_shown = it.label if r["order"] == "AB" else to_original(it.label, True)
        conf.append(float(probs[r["parsed"]]))
        right.append(r["parsed"] == gold_shown)
        p_gold.append(float(probs.get(gold_shown, 0.0)))
    if not conf:
        return {}
    cal = Calibration(**LOCAL)
    cal.update(conf, right, p_gold)
    res = {k: _f(v) for k, v in cal.compute().items()}
    return {
        "calibration/ece": res["ece"],
        "calibration/brier": res["brier"],
        "calibration/mean_confidence": res["mean_confidence"],
        "calibration/p_gold": sum(p_gold) / len(p_gold),
        "calibration/n": res["n"],
    }


def judgerbench_metrics(
    pairs: Sequence[tuple[PairwiseItem, Mapping]],
    reference_model: str,
    compat: str | None = None,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, dict[str, tuple[int, int]]]]:
    """JudgerBenchV2 scores (``jbv2/...``, 0-100, scenario means and ``/<scenario>``) and the win tables.

    In ``compat="opencompass"`` mode, generated outputs are re-read with OpenCompass's own parser (the last
    ``"winner"`` match); verdict-logit rows have no text and keep their verdict.
    """
    metric = JudgerBenchV2Score(reference_model, compat=compat, **LOCAL)
    verdicts = []
    for _, r in pairs:
        v = r["verdict"]
        if compat == "opencompass" and r.get("output") is not None:
            shown = parse_opencompass(r["output"], "winner")
            v = to_original(shown, r["order"] == "BA")
        verdicts.append(v)
    metric.update(
        [it.domain for it, _ in pairs],
        [it.meta["model_a"] for it, _ in pairs],
        [it.meta["model_b"] for it, _ in pairs],
        verdicts,
        [it.label for it, _ in pairs],
    )
    out = {f"jbv2/{k}": _f(v) for k, v in metric.compute().items()}
    if bootstrap:
        for key, (lo, hi) in metric.bootstrap(n_resamples=bootstrap, seed=seed, keys=("final",)).items():
            out[f"jbv2/{key}_boot_low"], out[f"jbv2/{key}_boot_high"] = lo, hi
    return out, metric.win_tables()


# The verdict markers of the pairwise formats, A's and B's, for RewardBench's A-first substring reading.
_A_MARKERS = tuple(render_verdict("A", f) for f in ("brackets", "cj2_choice", "winner_json", "arena"))
_B_MARKERS = tuple(render_verdict("B", f) for f in ("brackets", "cj2_choice", "winner_json", "arena"))


def generative_reading(row: Mapping[str, Any]) -> str | None:
    """RewardBench's generative-judge reading of one row, in the item's frame: a text holding an A verdict
    marker (``[[A]]``, or the A marker of any cj2 pairwise format) reads A even when it also holds a B one;
    else a B marker reads B; else ``None`` (unparsable). Rows without text (verdict logits) keep their
    verdict. Written from RewardBench's rule (a substring test, A first), not from cj2's parser."""
    text = row.get("output")
    if text is None:
        return row.get("verdict")
    shown = "A" if any(m in text for m in _A_MARKERS) else "B" if any(m in text for m in _B_MARKERS) else None
    return to_original(shown, row.get("order") == "BA")


def rewardbench_metrics(
    pairs: Sequence[tuple[PairwiseItem, Mapping]], weighting: str, compat: str | None = None
) -> dict[str, float]:
    """RewardBench's subsets, sections and final (0-100). ``compat=None``: cj2's verdicts, unparsed = wrong;
    ``compat="generative"``: :func:`generative_reading`, an unparsable answer earns 0.5."""
    m = RewardBenchScore(weighting=weighting, **LOCAL)
    if compat == "generative":
        verdicts = [generative_reading(r) for _, r in pairs]
        credit = [0.5 if v is None else float(v == it.label) for (it, _), v in zip(pairs, verdicts)]
    elif compat is None:
        credit = [float(r["verdict"] == it.label) for it, r in pairs]
    else:
        raise ValueError(f"RewardBench compat={compat!r}; expected None or 'generative'")
    m.update([it.domain for it, _ in pairs], credit)
    return {f"rewardbench/{k}": _f(v) for k, v in m.compute().items()}


def _toward_a(verdict: str | None) -> int:
    return 1 if verdict == "A" else -1 if verdict == "B" else 0


def net_vote(item: PairwiseItem, rows: Rows) -> bool | None:
    """The double-order net vote of one pair (JudgeBench's rule), in the item's frame: each order's
    verdict adds +1 toward the side it picks and -1 against the other (tie or unparsed: 0); right when the
    net favours the gold side (for a gold tie: when it is 0). ``None`` unless both passes are there."""
    h, s = rows.get((item.id, "headline")), rows.get((item.id, "swap"))
    if h is None or s is None:
        return None
    net = _toward_a(h["verdict"]) + _toward_a(s["verdict"])
    return net > 0 if item.label == "A" else net < 0 if item.label == "B" else net == 0


JUDGEBENCH_SOURCES = ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")


def judgebench_source(source: str) -> str:
    """JudgeBench's reporting group of a ``source`` (``mmlu-pro-math`` -> ``mmlu-pro``); others as given."""
    return next((p for p in JUDGEBENCH_SOURCES if source == p or source.startswith(p + "-")), source)


def judgebench_metrics(items: Sequence[PairwiseItem], rows: Rows) -> dict[str, float]:
    """JudgeBench's numbers (fractions): ``judgebench/score``, the double-order net vote micro-averaged
    over the pairs judged in both orders, the same per source group (``judgebench/<source>/score`` and
    ``/n``), and ``judgebench/single_order/accuracy``: the first order only (response_A shown as A, from
    whichever pass showed it so), strict, as OpenCompass scores JudgeBench."""
    out: dict[str, float] = {}
    groups: dict[str, list[bool]] = {}
    single: list[bool] = []
    for it in items:
        vote = net_vote(it, rows)
        if vote is not None:
            groups.setdefault(judgebench_source(str(it.meta.get("source", it.domain))), []).append(vote)
        first = next(
            (rows[(it.id, p)] for p in ("headline", "swap") if rows.get((it.id, p), {}).get("order") == "AB"),
            None,
        )
        if first is not None:
            single.append(first["verdict"] is not None and first["verdict"] == it.label)
    votes = [v for g in groups.values() for v in g]
    if votes:
        out["judgebench/score"] = sum(votes) / len(votes)
        out["judgebench/n"] = float(len(votes))
        for name, g in sorted(groups.items()):
            out[f"judgebench/{name}/score"] = sum(g) / len(g)
            out[f"judgebench/{name}/n"] = float(len(g))
    if single:
        out["judgebench/single_order/accuracy"] = sum(single) / len(single)
        out["judgebench/single_order/n"] = float(len(single))
    return out


def _rmbench_scores(
    items: Sequence[PairwiseItem], credit: Sequence[float], prefix: str, *, per_domain: bool
) -> dict[str, float]:
    m = RMBenchScore(**LOCAL)
    m.update(
        [str(it.meta.get("rmbench_domain", it.domain)) for it in items],
        [int(it.meta["chosen_style"]) for it in items],
        [int(it.meta["rejected_style"]) for it in items],
        credit,
    )
    res = {k: _f(v) for k, v in m.compute().items()}
    keep = ("hard", "normal", "easy", "score", "n")
    return {
        f"{prefix}/{k}": v
        for k, v in res.items()
        if k in keep or (per_domain and (k.startswith("matrix/") or k == "n_domains" or "/" in k))
    }


def rmbench_metrics(items: Sequence[PairwiseItem], rows: Rows, compat: str | None = None) -> dict[str, float]:
    """RM-Bench's triangles (0-100) over the comparisons ``{id}/c{i}r{j}`` (:class:`RMBenchScore`).

    ``rmbench/*`` (per domain too, and the overall matrix) follow ``compat``: ``None`` the double-order
    net vote over the comparisons judged in both orders, ``"rm_r1"`` the placement order alone (chosen 1,
    tie 0.5, wrong or unparsed 0). ``rmbench/rm_r1/*`` and (with both orders) ``rmbench/net_vote/*`` give
    the overall numbers of both rules, from the same judgments."""
    if compat not in (None, "rm_r1"):
        raise ValueError(f"RM-Bench compat={compat!r}; expected None or 'rm_r1'")
    for it in items:
        rmbench_domain(it.meta.get("rmbench_domain", it.domain))
    one = [(it, rows[(it.id, "headline")]) for it in items if (it.id, "headline") in rows]
    r1 = [1.0 if r["verdict"] == "A" else 0.5 if r["verdict"] == "tie" else 0.0 for _, r in one]
    both = [(it, net_vote(it, rows)) for it in items]
    both = [(it, v) for it, v in both if v is not None]
    out: dict[str, float] = {}
    if one:
        out.update(_rmbench_scores([it for it, _ in one], r1, "rmbench/rm_r1", per_domain=False))
    if both:
        votes = [float(v) for _, v in both]
        out.update(_rmbench_scores([it for it, _ in both], votes, "rmbench/net_vote", per_domain=False))
    if compat == "rm_r1" and one:
        out.update(_rmbench_scores([it for it, _ in one], r1, "rmbench", per_domain=True))
    elif compat is None and both:
        out.update(_rmbench_scores([it for it, _ in both], votes, "rmbench", per_domain=True))
    return out


def rmb_metrics(pairs: Sequence[tuple[PairwiseItem, Mapping]]) -> dict[str, float]:
    m = RMBScore(**LOCAL)
    kinds = ["bon" if "bon_group" in it.meta else "pair" for it, _ in pairs]
    groups = [str(it.meta.get("bon_group", it.id)) for it, _ in pairs]
    categories = [it.domain for it, _ in pairs]  # RMB's goal: Helpfulness / Harmlessness
    m.update(kinds, groups, [r["verdict"] == it.label for it, r in pairs], categories)
    return {f"rmb/{k}": _f(v) for k, v in m.compute().items()}


def style_metrics(items: Sequence[PairwiseItem], rows: Rows) -> dict[str, float]:
    """The style probe (arXiv 2507.09104, Fig. 5): strict accuracy with the standard prompt and with the
    style sentence, on the items judged both ways, and the drop (standard - style) overall and per domain."""
    both = [
        (it, rows[(it.id, "headline")], rows[(it.id, "style")])
        for it in items
        if (it.id, "headline") in rows and (it.id, "style") in rows
    ]
    if not both:
        return {}

    def acc(triples: list, which: int) -> float:
        return sum(t[which]["verdict"] == t[0].label for t in triples) / len(triples)

    out = {
        "style/n": float(len(both)),
        "style/accuracy_standard": acc(both, 1),
        "style/accuracy_style": acc(both, 2),
    }
    out["style/drop"] = out["style/accuracy_standard"] - out["style/accuracy_style"]
    for domain in sorted({t[0].domain for t in both}):
        sub = [t for t in both if t[0].domain == domain]
        out[f"style/drop/{domain}"] = acc(sub, 1) - acc(sub, 2)
    return out


def score(
    benchmark: Benchmark, items: Sequence[PairwiseItem], rows: Rows, *, bootstrap: int = 1000, seed: int = 0
) -> tuple[dict[str, float], dict[str, Any]]:
    """All metrics of one mode's rows over ``items`` (headline pass for accuracies and benchmark scores),
    and extras for the report (win tables). Items without a headline row are not counted. The benchmark's
    own numbers come from its registered scorer (``benchmark.spec``,
    :data:`cj2.evaluation.benchmarks.BENCHMARKS`)."""
    spec = benchmark.spec
    pairs = _rows(items, rows, "headline")
    if not pairs:
        return {"n": 0.0}, {}
    out = accuracy_metrics(pairs, bootstrap=bootstrap, seed=seed)
    out.update(swap_metrics(items, rows))
    out.update(calibration_metrics(pairs))
    out.update(style_metrics(items, rows))
    # faithfulness of the headline judgments where the items carry a computed truth (else nothing)
    out.update(rows_metrics([r for _, r in pairs], items, prefix=""))
    extras: dict[str, Any] = {}
    if spec.score is not None:
        extra_args = {"items": items, "rows": rows} if spec.needs_rows else {}
        own, more = spec.score(benchmark, pairs, out, bootstrap=bootstrap, seed=seed, **extra_args)
        out.update(own)
        extras.update(more)
    return out, extras
