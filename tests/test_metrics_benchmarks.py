"""RMBScore and RewardBenchScore against hand-computed values (arXiv 2507.09104, Tables 7 and 8)."""

from __future__ import annotations

import math

import pytest

from cj2.metrics import REWARDBENCH_SECTIONS, REWARDBENCH_SUBSETS, RewardBenchScore, RMBScore, category_split

HELP, HARM = "Helpfulness/Chat/Brainstorming", "Harmlessness/Violence"

# pair rows: help T F F, harm T T -> pair 3/5, pair_help 1/3, pair_harm 2/2
# bon groups: g1 help (T T T) ok, g2 help (T F) wrong, g3 harm (T) ok, g4 harm (F T T) wrong
RMB_ROWS = [
    ("pair", "p1", True, HELP),
    ("pair", "p2", False, HELP),
    ("pair", "p3", False, HELP),
    ("pair", "p4", True, HARM),
    ("pair", "p5", True, HARM),
    ("bon", "g1", True, HELP),
    ("bon", "g1", True, HELP),
    ("bon", "g1", True, HELP),
    ("bon", "g2", True, HELP),
    ("bon", "g2", False, HELP),
    ("bon", "g3", True, HARM),
    ("bon", "g4", False, HARM),
    ("bon", "g4", True, HARM),
    ("bon", "g4", True, HARM),
]


def rmb(rows, with_category=True) -> dict[str, float]:
    metric = RMBScore()
    kind, group, correct, category = (list(c) for c in zip(*rows))
    metric.update(kind, group, correct, category if with_category else None)
    return {k: float(v) for k, v in metric.compute().items()}


def test_rmb_pair_and_best_of_n():
    out = rmb(RMB_ROWS)
    assert out["pair_accuracy"] == pytest.approx(60.0)
    assert out["bon_accuracy"] == pytest.approx(50.0)  # a group is right only if every loser is beaten
    assert out["final"] == pytest.approx(55.0)
    assert out["n_pair"] == 5 and out["n_bon_groups"] == 4


def test_rmb_help_harm_split_as_opencompass():
    out = rmb(RMB_ROWS)
    assert out["pair_help"] == pytest.approx(100 / 3) and out["pair_harm"] == pytest.approx(100.0)
    assert out["bon_help"] == pytest.approx(50.0) and out["bon_harm"] == pytest.approx(50.0)
    assert out["pair_average"] == pytest.approx((100 / 3 + 100) / 2)
    assert out["bon_average"] == pytest.approx(50.0)
    assert out["total_accuracy"] == pytest.approx((100 / 3 + 100 + 50 + 50) / 4)
    assert out["n_uncategorised"] == 0


def test_rmb_without_categories_and_with_an_empty_split():
    out = rmb(RMB_ROWS, with_category=False)
    assert "total_accuracy" not in out and out["final"] == pytest.approx(55.0)
    help_only = rmb([r for r in RMB_ROWS if r[3] == HELP])
    assert math.isnan(help_only["pair_harm"]) and math.isnan(help_only["total_accuracy"])
    other = rmb(RMB_ROWS + [("pair", "p6", True, "Other/x")])
    assert other["n_uncategorised"] == 1 and other["pair_accuracy"] == pytest.approx(400 / 6)
    assert other["pair_help"] == pytest.approx(100 / 3)


def test_rmb_errors():
    with pytest.raises(ValueError, match=r"kind\[0\]"):
        RMBScore().update(["triple"], ["g"], [True])
    mixed = RMBScore()
    mixed.update(["bon", "bon"], ["g", "g"], [True, True], [HELP, HARM])
    with pytest.raises(ValueError, match="different categories"):
        mixed.compute()


def test_category_split():
    assert [category_split(c) for c in (HELP, HARM, "helpfulness", "Other")] == [1, 2, 1, 3]


# -- RewardBench -------------------------------------------------------------------------------------------
RB_ROWS = (
    [("alpacaeval-easy", 1.0)] * 3
    + [("mt-bench-med", 0.0)]  # chat 3/4 (subset mean would be 1/2)
    + [("llmbar-natural", 1.0), ("llmbar-natural", 0.0)]  # chat hard 1/2
    + [("donotanswer", 1.0)] * 3
    + [("donotanswer", 0.0)]  # safety 3/4
    + [("math-prm", 0.0)] * 2  # math 0
    + [("hep-python", 1.0)] * 2
    + [("hep-go", 1.0), ("hep-go", 0.0)]  # code 3/4
)


def rewardbench(rows, weighting="official") -> dict[str, float]:
    metric = RewardBenchScore(weighting)
    subset, correct = (list(c) for c in zip(*rows))
    metric.update(subset, correct)
    return {k: float(v) for k, v in metric.compute().items()}


def test_rewardbench_official_weighting():
    out = rewardbench(RB_ROWS)
    assert out["chat"] == pytest.approx(75.0)
    assert out["chat_hard"] == pytest.approx(50.0)
    assert out["safety"] == pytest.approx(75.0)
    assert out["reasoning"] == pytest.approx((0 + 75.0) / 2)  # math-prm weighs as much as all code
    assert out["final"] == pytest.approx((75 + 50 + 75 + 37.5) / 4)
    assert out["accuracy/hep-go"] == pytest.approx(50.0) and "accuracy/hep-rust" not in out
    assert out["n"] == len(RB_ROWS)


def test_rewardbench_opencompass_weighting():
    out = rewardbench(RB_ROWS, "opencompass")
    assert out["reasoning"] == pytest.approx(100 * 3 / 6)  # count-weighted, math-prm included
    assert out["final"] == pytest.approx((75 + 50 + 75 + 50) / 4)


def test_rewardbench_partial_credit_missing_section_and_errors():
    out = rewardbench([("alpacaeval-easy", 0.5), ("mt-bench-hard", 1.0), ("xstest-should-respond", 1.0)])
    assert out["chat"] == pytest.approx(50.0)
    assert math.isnan(out["reasoning"]) and math.isnan(out["final"])
    with pytest.raises(ValueError, match="unknown RewardBench subset"):
        RewardBenchScore().update(["alpacaeval"], [1.0])
    with pytest.raises(ValueError, match="official"):
        RewardBenchScore("weighted")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RewardBenchScore().update(["hep-go"], [2.0])


def test_rewardbench_subset_map():
    assert len(REWARDBENCH_SUBSETS) == len(set(REWARDBENCH_SUBSETS)) == 23
    assert REWARDBENCH_SECTIONS["chat_hard"][0] == "mt-bench-hard"
    assert REWARDBENCH_SECTIONS["reasoning"] == (
        "math-prm",
        "hep-cpp",
        "hep-go",
        "hep-java",
        "hep-js",
        "hep-python",
        "hep-rust",
    )
