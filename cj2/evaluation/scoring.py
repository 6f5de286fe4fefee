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
from typing import Any

import torch

from cj2.data.schema import PairwiseItem
from cj2.evaluation.benchmarks import Benchmark, benchmark_spec
from cj2.evaluation.faithfulness import rows_metrics
from cj2.evaluation.placement import to_original
from cj2.metrics import (
    Calibration,
    JudgeAccuracy,
    JudgerBenchV2Score,
    RewardBenchScore,
    RMBScore,
    SwapConsistency,
    binomial_ci,
    bootstrap_ci,
)
from cj2.verdict import parse_opencompass

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


def rewardbench_metrics(pairs: Sequence[tuple[PairwiseItem, Mapping]], weighting: str) -> dict[str, float]:
    m = RewardBenchScore(weighting=weighting, **LOCAL)
    m.update([it.domain for it, _ in pairs], [float(r["verdict"] == it.label) for it, r in pairs])
    return {f"rewardbench/{k}": _f(v) for k, v in m.compute().items()}


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
    own numbers come from its registered scorer (:data:`cj2.evaluation.benchmarks.BENCHMARKS`)."""
    spec = benchmark_spec(benchmark.name)
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
        own, more = spec.score(benchmark, pairs, out, bootstrap=bootstrap, seed=seed)
        out.update(own)
        extras.update(more)
    return out, extras
