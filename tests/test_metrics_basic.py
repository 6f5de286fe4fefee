"""JudgeAccuracy, SwapConsistency, Calibration and the confidence intervals, against hand-computed values."""

from __future__ import annotations

import math
import random

import pytest
import torch

from cj2.metrics import (
    BootstrapCI,
    Calibration,
    JudgeAccuracy,
    SwapConsistency,
    binomial_ci,
    bootstrap_ci,
    bootstrap_ci_fn,
    unswap,
)


def floats(out: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in out.items()}


PRED = ["A", "B", None, "tie", "A", None]
TARGET = ["A", "A", "B", "tie", "B", "A"]
DOMAIN = ["chat", "chat", "code", "code", "math", "math"]


def test_accuracy_strict_lenient_and_parse_rate():
    metric = JudgeAccuracy()
    metric.update(PRED, TARGET, DOMAIN)
    out = floats(metric.compute())
    assert out["accuracy"] == pytest.approx(2 / 6)  # unparsed counted wrong
    assert out["accuracy_parsed"] == pytest.approx(2 / 4)  # unparsed excluded
    assert out["parse_rate"] == pytest.approx(4 / 6)
    assert (out["n"], out["n_parsed"]) == (6, 4)
    assert out["accuracy/chat"] == pytest.approx(0.5)
    assert out["accuracy/code"] == pytest.approx(0.5)
    assert out["accuracy/math"] == 0.0
    assert out["n/math"] == 2


def test_accuracy_fixed_domains_report_every_domain_and_reject_others():
    metric = JudgeAccuracy(domains=["chat", "code", "math", "safety"])
    metric.update(PRED[:3], TARGET[:3], DOMAIN[:3])
    metric.update(PRED[3:], TARGET[3:], DOMAIN[3:])
    out = floats(metric.compute())
    assert out["accuracy/chat"] == pytest.approx(0.5) and out["accuracy/math"] == 0.0
    assert math.isnan(out["accuracy/safety"]) and out["n/safety"] == 0
    with pytest.raises(ValueError, match=r"\['poetry'\]"):
        metric.update(["A"], ["A"], ["poetry"])


def test_accuracy_without_domains_and_bad_input():
    metric = JudgeAccuracy()
    metric.update(["A", None], ["A", "B"])
    out = metric.compute()
    assert not any("/" in k for k in out)
    assert math.isnan(float(JudgeAccuracy().compute()["accuracy_parsed"]))
    with pytest.raises(ValueError, match=r"target\[0\]"):
        JudgeAccuracy().update(["A"], [None])
    with pytest.raises(ValueError, match="one length"):
        JudgeAccuracy().update(["A"], ["A", "B"])


def test_swap_consistency_rates_and_double_order_score():
    ab = ["A", "A", "B", None, "tie", "B", "A"]
    ba = ["B", "A", "B", "A", "tie", "A", "A"]  # in the swapped frame
    target = ["A", "A", "B", "A", "tie", "B", "B"]
    metric = SwapConsistency()
    metric.update(ab, ba, target)
    out = floats(metric.compute())
    # consistent: pairs 1 (A/A), 5 (tie/tie), 6 (B/B) once verdict_ba is mapped back
    assert out["consistency"] == pytest.approx(3 / 7)
    assert out["prefer_first_rate"] == pytest.approx(2 / 7)  # pairs 2 and 7 pick position A twice
    assert out["prefer_second_rate"] == pytest.approx(1 / 7)  # pair 3
    assert out["position_bias"] == pytest.approx(1 / 7)
    # net toward A: +2, 0, 0, -1, 0, -2, 0 -> correct for pairs 1 (A), 5 (tie), 6 (B)
    assert out["double_order_accuracy"] == pytest.approx(3 / 7)


def test_double_order_one_unparsed_order_still_decides():
    metric = SwapConsistency()
    metric.update(["A", "A"], [None, None], ["A", "B"])  # net +1 toward A in both pairs
    out = floats(metric.compute())
    assert out["double_order_accuracy"] == pytest.approx(0.5)
    assert out["consistency"] == 0.0  # unparsed is never consistent
    without = SwapConsistency()
    without.update(["A"], ["B"])
    assert "double_order_accuracy" not in without.compute()
    with pytest.raises(ValueError, match=r"target\[0\]"):
        without.update(["A"], ["B"], ["C"])


def test_unswap():
    assert [unswap(v) for v in ("A", "B", "tie", None)] == ["B", "A", "tie", None]


# -- calibration -------------------------------------------------------------------------------------------
def test_ece_mce_and_brier_by_hand():
    metric = Calibration(n_bins=4)  # bins [0, .25], (.25, .5], (.5, .75], (.75, 1]
    metric.update(torch.tensor([0.9, 0.8, 0.5, 0.6]), torch.tensor([True, False, True, True]))
    metric.update([1.0, 0.2, 0.0], [True, False, False])
    out = floats(metric.compute())
    # bin 0 {.2 x, 0 x}: gap .1; bin 1 {.5 ok}: .5; bin 2 {.6 ok}: .4; bin 3 {.9 ok, .8 x, 1 ok}: |2/3 - .9|
    assert out["ece"] == pytest.approx((2 * 0.1 + 0.5 + 0.4 + 3 * (0.9 - 2 / 3)) / 7)
    assert out["mce"] == pytest.approx(0.5)
    assert out["brier"] == pytest.approx((0.01 + 0.64 + 0.25 + 0.16 + 0 + 0.04 + 0) / 7)
    assert out["accuracy"] == pytest.approx(4 / 7)
    assert out["mean_confidence"] == pytest.approx(4.0 / 7)
    assert math.isnan(out["brier_gold"])


def test_ece_bin_edges_are_right_closed():
    metric = Calibration(n_bins=10)
    metric.update([0.3, 0.35], [True, False])
    # 0.3 is in (0.2, 0.3] and 0.35 in (0.3, 0.4]: gaps .7 and .35 (pooled they would give .175)
    assert float(metric.compute()["ece"]) == pytest.approx((0.7 + 0.35) / 2)


def test_brier_gold_and_update_from_logits():
    metric = Calibration()
    metric.update_from_logits(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    p1, p2 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1))
    out = floats(metric.compute())
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["brier"] == pytest.approx(((1 - p1) ** 2 + p2**2) / 2)
    assert out["brier_gold"] == pytest.approx(out["brier"])  # two candidates: the same number
    three = Calibration()
    three.update_from_logits(torch.tensor([[math.log(2.0), 0.0, 0.0]]), torch.tensor([1]))
    out = floats(three.compute())
    assert out["brier"] == pytest.approx(0.5**2)  # confident .5 in the wrong verdict
    assert out["brier_gold"] == pytest.approx(0.75**2)  # P(gold) = .25


def test_calibration_rejects_non_probabilities():
    with pytest.raises(ValueError, match=r"confidence\[1\]"):
        Calibration().update([0.5, 1.5], [True, True])
    with pytest.raises(ValueError, match="NaN"):
        Calibration().update([float("nan")], [True])


# -- intervals ---------------------------------------------------------------------------------------------
def test_wilson_interval_by_hand():
    z = 1.959963984540054
    low, high = binomial_ci(8, 10)
    center = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (low, high) == pytest.approx((center - half, center + half))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert binomial_ci(0, 10) == pytest.approx((0.0, z * z / (10 + z * z)))
    assert binomial_ci(10, 10) == pytest.approx((10 / (10 + z * z), 1.0))
    assert binomial_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        binomial_ci(3, 2)


def test_bootstrap_ci_quantiles_of_a_known_distribution():
    # two items 0 and 1: a resample's mean is 0, .5 or 1 with probability 1/4, 1/2, 1/4
    values = torch.tensor([0.0, 1.0])
    assert bootstrap_ci(values, n_resamples=4000, alpha=0.2) == (0.0, 1.0)  # 10 % and 90 % quantiles
    assert bootstrap_ci(values, n_resamples=4000, alpha=0.6) == (0.5, 0.5)  # 30 % and 70 % quantiles
    assert bootstrap_ci(torch.full((5,), 0.25)) == (0.25, 0.25)
    assert bootstrap_ci([1.0, 2.0, 3.0], seed=3) == bootstrap_ci([1.0, 2.0, 3.0], seed=3)


def test_bootstrap_ci_custom_statistic_and_errors():
    values = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # rows are items
    low, high = bootstrap_ci(values, statistic=lambda r: r[:, :, 1].max(dim=1).values, n_resamples=500)
    assert 10.0 <= low <= high == 30.0
    with pytest.raises(ValueError, match="reduce"):
        bootstrap_ci(torch.ones(4), statistic=torch.mean)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci(torch.zeros(0))


def test_bootstrap_ci_fn_keeps_strata_sizes():
    strata = torch.tensor([0, 0, 0, 1])
    # item 3 is alone in its stratum: every resample contains it exactly once
    assert bootstrap_ci_fn(lambda idx: float((idx == 3).sum()), 4, n_resamples=50, strata=strata) == (
        1.0,
        1.0,
    )
    both = bootstrap_ci_fn(
        lambda idx: {"n": float(len(idx)), "three": float((idx == 3).sum())}, 4, n_resamples=50, strata=strata
    )
    assert both == {"n": (4.0, 4.0), "three": (1.0, 1.0)}
    unstratified = bootstrap_ci_fn(lambda idx: float((idx == 3).sum()), 4, n_resamples=200)
    assert unstratified[0] == 0.0 and unstratified[1] >= 2.0


def test_bootstrap_metric_is_order_invariant():
    values = [1.0] * 30 + [0.0] * 10
    metric = BootstrapCI(n_resamples=300)
    metric.update(values)
    shuffled = list(values)
    random.Random(1).shuffle(shuffled)
    other = BootstrapCI(n_resamples=300)
    other.update(torch.tensor(shuffled[:17]))
    other.update(torch.tensor(shuffled[17:]))
    a, b = floats(metric.compute()), floats(other.compute())
    assert a == b
    assert a["mean"] == pytest.approx(0.75) and a["n"] == 40
    assert a["low"] < 0.75 < a["high"]
    assert math.isnan(float(BootstrapCI().compute()["mean"]))


def test_metrics_package_is_pure():
    """No Lightning, no Hydra, no file I/O in cj2/metrics (the parser is imported lazily, inside a method)."""
    import ast
    import pathlib

    import cj2.metrics

    package = pathlib.Path(cj2.metrics.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    assert not name.startswith(("lightning", "pytorch_lightning", "hydra", "omegaconf")), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", path
