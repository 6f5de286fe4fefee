"""JudgerBenchV2Score and rank agreement: hand-computed fixtures in both modes, Table 6 arithmetic, and a
per-item oracle of the paper's / OpenCompass's definitions (arXiv 2507.09104, Sec. 4, Eq. 5)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.functional.regression import kendall_rank_corrcoef, spearman_corrcoef

from cj2.metrics import (
    JudgerBenchV2Score,
    RankAgreement,
    average_ranks,
    final_score,
    kendall_tau_b,
    rank_models,
    spearman_rho,
)

REF = "ref"


def pairs(scenario: str, model: str, outcomes: list[str]) -> list[tuple[str, str, str, str | None, str]]:
    """Items of ``model`` vs the reference from outcome codes, two characters each, seen from ``model``:
    ground truth W/L, then the judge W/L/? (``?`` = unparsed). Placement alternates (model is A on even
    items, B on odd ones), so the letters differ from the outcomes and the metric must map them back."""
    rows = []
    for i, code in enumerate(outcomes):
        model_is_a = i % 2 == 0
        a, b = (model, REF) if model_is_a else (REF, model)
        letter = {"W": "A" if model_is_a else "B", "L": "B" if model_is_a else "A", "?": None}
        rows.append((scenario, a, b, letter[code[1]], letter[code[0]]))
    return rows


def run(rows, **kwargs) -> dict[str, float]:
    metric = JudgerBenchV2Score(REF, **kwargs)
    metric.update(*(list(col) for col in zip(*rows)))
    return {k: float(v) for k, v in metric.compute().items()}


# Scenario "S": four candidates.             GT wins  judge wins  parsed  correct
#   apple  LL LL L? WL                        1        0           3       2   (judge never picks apple)
#   banana WW WL LW LL                        2        2           4       2
#   cherry WW LW LW W?                        2        3           3       1
#   date   WW WW WW LW                        3        4           4       3
# N=16, parsed=14, correct=8.
# GT ranks: date 1, banana 2, cherry 3 (tie with banana at 2 wins: name order), apple 4.
# Judge ranks: date 1, cherry 2, banana 3, apple 4.
FOUR = (
    pairs("S", "apple", ["LL", "LL", "L?", "WL"])
    + pairs("S", "banana", ["WW", "WL", "LW", "LL"])
    + pairs("S", "cherry", ["WW", "LW", "LW", "W?"])
    + pairs("S", "date", ["WW", "WW", "WW", "LW"])
)


def test_strict_four_models_with_rank_tie_and_never_picked_model():
    out = run(FOUR)
    assert out["accuracy/S"] == pytest.approx(100 * 8 / 16)
    # rank diffs: banana |2-3| + cherry |3-2| = 2; score diffs: apple 1, banana 0, cherry 1, date 1
    assert out["rank_diff/S"] == 2
    assert out["score_diff/S"] == 3
    # terms (M-1 = 3, max score diff 1): apple 0+1, banana 1/3+0, cherry 1/3+1, date 0+1 -> mean 11/12
    assert out["normalized_diff/S"] == pytest.approx(100 * 11 / 12)
    assert out["final/S"] == pytest.approx(175 / 6)  # (50 - 275/3 + 100) / 2
    assert out["parse_rate/S"] == pytest.approx(14 / 16)
    # one scenario: the means are that scenario's numbers
    for key in ("accuracy", "rank_diff", "score_diff", "normalized_diff", "final"):
        assert out[key] == out[f"{key}/S"]


def test_opencompass_four_models_reproduces_the_missing_model_quirks():
    out = run(FOUR, compat="opencompass")
    assert out["accuracy/S"] == pytest.approx(100 * 8 / 14)  # unparsed dropped from the count
    # dict1 = {banana 2, cherry 3, date 4} (apple never picked, absent); dict2 = {apple 1, banana 2,
    # cherry 2, date 3}. rank1: date 1, cherry 2, banana 3; rank2: date 1, banana 2, cherry 3, apple 4.
    assert out["rank_diff/S"] == 2
    assert out["score_diff/S"] == 2  # banana 0, cherry 1, date 1 (apple not summed)
    # max_rank_diff = len(dict1) - 1 = 2; max_score_diff zips [2, 3, 4] with [1, 2, 2, 3] -> max 2
    # (aligned by name it would be 1). terms: banana 1/2, cherry 1/2 + 1/2, date 1/2 -> mean 2/3
    assert out["normalized_diff/S"] == pytest.approx(200 / 3)
    assert out["final/S"] == pytest.approx(950 / 21)  # (400/7 - 200/3 + 100) / 2


# Scenario "Z": judge and truth give every model the same wins; accuracy 50 %.
ZERO = pairs("Z", "x", ["WL", "LW"]) + pairs("Z", "y", ["WW", "LL"])


def test_all_score_differences_zero():
    strict = run(ZERO)
    assert strict["score_diff/Z"] == 0 and strict["rank_diff/Z"] == 0
    assert strict["normalized_diff/Z"] == 0  # 0/0 score term defined as 0
    assert strict["final/Z"] == pytest.approx(75.0)
    compat = run(ZERO, compat="opencompass")
    assert compat["accuracy/Z"] == pytest.approx(50.0)
    assert compat["score_diff/Z"] == 0
    # OpenCompass divides by max_score_diff = 0: NaN instead of a crash
    assert math.isnan(compat["normalized_diff/Z"]) and math.isnan(compat["final/Z"])


def test_single_candidate_model():
    rows = pairs("one", "solo", ["WW", "WL", "L?"])  # GT 2 wins, judge 1
    strict = run(rows)
    assert strict["accuracy/one"] == pytest.approx(100 / 3)
    assert strict["rank_diff/one"] == 0
    assert strict["normalized_diff/one"] == pytest.approx(100.0)  # rank term 0 (M=1), score term 1/1
    assert strict["final/one"] == pytest.approx(50 / 3)
    compat = run(rows, compat="opencompass")
    assert compat["accuracy/one"] == pytest.approx(50.0)
    assert compat["score_diff/one"] == 1
    assert math.isnan(compat["normalized_diff/one"])  # max_rank_diff = len(dict1) - 1 = 0


def test_all_outputs_unparsable():
    rows = pairs("U", "p", ["W?", "L?"]) + pairs("U", "q", ["W?", "L?"])
    strict = run(rows)
    assert strict["accuracy/U"] == 0
    assert strict["parse_rate/U"] == 0
    # judge wins 0/0 vs GT 1/1: ranks agree by name, both score terms 1/1
    assert strict["normalized_diff/U"] == pytest.approx(100.0)
    assert strict["final/U"] == pytest.approx(0.0)
    compat = run(rows, compat="opencompass")
    assert math.isnan(compat["accuracy/U"]) and math.isnan(compat["final/U"])
    assert compat["rank_diff/U"] == 0 and compat["score_diff/U"] == 0


def test_means_over_scenarios_are_plain_means():
    out = run(FOUR + ZERO)
    assert out["accuracy"] == pytest.approx((50 + 50) / 2)
    assert out["normalized_diff"] == pytest.approx((1100 / 12 + 0) / 2)
    assert out["final"] == pytest.approx((175 / 6 + 75) / 2)
    assert out["rank_diff"] == pytest.approx(1.0)
    assert out["score_diff"] == pytest.approx(1.5)
    assert out["final"] == pytest.approx(final_score(out["accuracy"], out["normalized_diff"]))
    compat = run(FOUR + ZERO, compat="opencompass")
    assert math.isnan(compat["final"])  # Z is NaN in compat mode and the mean does not hide it
    assert compat["accuracy"] == pytest.approx((400 / 7 + 50) / 2)


def test_published_gt_win_table():
    table = {"Z": {"x": 3, "y": 1, "w": 2}}  # "w" has no items: present with 0 judge wins
    strict = run(ZERO, gt_win_counts=table)
    # GT ranks x 1, w 2, y 3; judge (x 1, y 1, w 0) ranks x 1, y 2, w 3; score diffs x 2, y 0, w 2
    assert strict["rank_diff/Z"] == 2 and strict["score_diff/Z"] == 4
    # terms: x 0 + 2/2, y 1/2 + 0, w 1/2 + 2/2 -> mean 1
    assert strict["normalized_diff/Z"] == pytest.approx(100.0)
    assert strict["accuracy/Z"] == pytest.approx(50.0)  # accuracy still from the per-item ground truth
    assert strict["final/Z"] == pytest.approx(25.0)
    compat = run(ZERO, compat="opencompass", gt_win_counts=table)
    # dict1 {x 1, y 1}, dict2 {w 2, x 3, y 1}: rank diffs x 0, y |2-3|; zip max(|1-2|, |1-3|) = 2
    assert compat["rank_diff/Z"] == 1 and compat["score_diff/Z"] == 2
    assert compat["normalized_diff/Z"] == pytest.approx(100 * (1 + 1) / 2)


def test_gt_table_errors_name_the_problem():
    with pytest.raises(ValueError, match="no scenario 'Z'"):
        run(ZERO, gt_win_counts={"other": {"x": 1}})
    with pytest.raises(ValueError, match=r"model\(s\) \['y'\]"):
        run(ZERO, gt_win_counts={"Z": {"x": 1}})


def test_update_validates_input():
    metric = JudgerBenchV2Score(REF)
    with pytest.raises(ValueError, match="gt_verdict\\[1\\]"):
        metric.update(["s", "s"], ["a", "b"], [REF, REF], ["A", "A"], ["A", "tie"])
    with pytest.raises(ValueError, match="one length"):
        metric.update(["s"], ["a", "b"], [REF], ["A"], ["A"])
    with pytest.raises(ValueError, match="compat"):
        JudgerBenchV2Score(REF, compat="lmdeploy")


def test_other_letter_counts_as_parsed_but_picks_no_side():
    rows = [("s", "m", REF, "C", "A"), ("s", "n", REF, "A", "A")]
    strict, compat = run(rows), run(rows, compat="opencompass")
    assert strict["accuracy/s"] == 50 and compat["accuracy/s"] == 50  # "C" is in OpenCompass's count


@pytest.mark.parametrize(
    ("accuracy", "normalized_diff", "printed"),
    [
        (77.41, 61.48, 57.96),  # CJ-1-7B
        (71.30, 66.61, 52.35),  # Con-J-Qwen2-7B
        (70.08, 77.85, 46.12),  # RISE-Judge-7B
        (78.04, 57.00, 60.52),  # CJ-2-7B
        (80.99, 60.32, 60.33),  # CJ-1-32B
        (70.27, 65.44, 52.41),  # Skywork-Critic-70B
        (74.00, 61.15, 56.42),  # RISE-Judge-32B: Table 6 prints 54.42, a typo (Table 2 has 56.42)
        (80.90, 56.47, 62.21),  # CJ-2-32B
    ],
)
def test_table6_final_column(accuracy, normalized_diff, printed):
    # the printed inputs are rounded to 0.01, so the final may be off by half a unit in the last place
    assert abs(final_score(accuracy, normalized_diff) - printed) <= 0.005 + 1e-9


def test_final_score_on_tensors_and_as_used_by_the_metric():
    assert final_score(torch.tensor(78.04), torch.tensor(57.0)).item() == pytest.approx(60.52)
    out = run(FOUR)
    assert out["final/S"] == pytest.approx(final_score(out["accuracy/S"], out["normalized_diff/S"]))


def test_rank_models_breaks_ties_by_name():
    assert rank_models({"b": 2, "a": 2, "c": 5, "d": 0}) == {"c": 1, "a": 2, "b": 3, "d": 4}


def test_win_tables_and_rank_agreement_of_the_fixture():
    metric = JudgerBenchV2Score(REF)
    metric.update(*(list(col) for col in zip(*FOUR)))
    assert metric.win_tables() == {"S": {"apple": (1, 0), "banana": (2, 2), "cherry": (2, 3), "date": (3, 4)}}
    out = metric.compute()
    # GT (1, 2, 2, 3) vs judge (0, 2, 3, 4): 5 concordant pairs, banana-cherry tied in GT only
    assert float(out["kendall_tau/S"]) == pytest.approx(5 / math.sqrt(5 * 6))


def test_update_from_outputs_uses_the_mode_parser():
    outputs = ['{"analysis": "..", "winner": "A"} then "winner": "B"', "no verdict", '{"winner": "B"}']
    rows = dict(
        scenario=["s"] * 3, model_a=["m", REF, "n"], model_b=[REF, "m", REF], gt_verdict=["B", "A", "B"]
    )
    compat = JudgerBenchV2Score(REF, compat="opencompass")
    compat.update_from_outputs(outputs=outputs, **rows)
    # OpenCompass's rule takes the last match: B, None, B -> 2 parsed, both right
    assert float(compat.compute()["accuracy/s"]) == pytest.approx(100.0)
    seen = []
    custom = JudgerBenchV2Score(REF)
    custom.update_from_outputs(outputs=outputs, parser=lambda t: seen.append(t) or "B", **rows)
    assert seen == outputs and float(custom.compute()["accuracy/s"]) == pytest.approx(200 / 3)


def test_bootstrap_interval_brackets_the_point_estimate_and_is_deterministic():
    metric = JudgerBenchV2Score(REF)
    metric.update(*(list(col) for col in zip(*(FOUR + ZERO))))
    ci = metric.bootstrap(n_resamples=60, seed=1)
    assert set(ci) == {"final", "accuracy", "normalized_diff"}
    point = {k: float(v) for k, v in metric.compute().items()}
    for key, (low, high) in ci.items():
        assert low <= high
        assert low < point[key] < high
    assert metric.bootstrap(n_resamples=60, seed=1) == ci
    # item order does not matter (a DDP run delivers items rank-major)
    shuffled = list(FOUR + ZERO)
    random.Random(0).shuffle(shuffled)
    other = JudgerBenchV2Score(REF)
    other.update(*(list(col) for col in zip(*shuffled)))
    assert other.bootstrap(n_resamples=60, seed=1) == ci


# -- a per-item oracle, written from the definitions, against the tensor implementation ---------------------
def oracle(rows, compat: bool) -> dict[str, float]:
    scenarios = sorted({r[0] for r in rows})
    out = {}
    for s in scenarios:
        count = correct = 0
        judge, gt = {}, {}
        for _, a, b, j, g in (r for r in rows if r[0] == s):
            for m in (a, b):
                if m != REF:
                    gt.setdefault(m, 0)
                    if not compat:
                        judge.setdefault(m, 0)
            gt_model = a if g == "A" else b
            if gt_model != REF:
                gt[gt_model] += 1
            if j is None and compat:
                continue
            count += 1
            correct += j == g
            winner = {"A": a, "B": b}.get(j)
            if winner is not None and winner != REF:
                judge[winner] = judge.get(winner, 0) + 1
        r1, r2 = rank_models(judge), rank_models(gt)
        rank_d = {m: abs(r1[m] - r2[m]) for m in judge}
        score_d = {m: abs(judge[m] - gt[m]) for m in judge}
        if compat:
            max_rank = len(judge) - 1
            zipped = [
                abs(x - y)
                for x, y in zip(dict(sorted(judge.items())).values(), dict(sorted(gt.items())).values())
            ]
            max_score = max(zipped) if zipped else 0
            if not judge or max_rank == 0 or max_score == 0:
                norm = math.nan
            else:
                norm = 100 * sum(rank_d[m] / max_rank + score_d[m] / max_score for m in judge) / len(judge)
        else:
            max_rank, max_score = len(judge) - 1, max(score_d.values())
            norm = (
                100
                * sum(
                    (rank_d[m] / max_rank if max_rank else 0) + (score_d[m] / max_score if max_score else 0)
                    for m in judge
                )
                / len(judge)
            )
        acc = 100 * correct / count if count else math.nan
        out[f"accuracy/{s}"] = acc
        out[f"rank_diff/{s}"] = sum(rank_d.values())
        out[f"score_diff/{s}"] = sum(score_d.values())
        out[f"normalized_diff/{s}"] = norm
        out[f"final/{s}"] = (acc - norm + 100) / 2
    return out


@pytest.mark.parametrize("compat", [False, True])
def test_random_benchmarks_match_the_per_item_oracle(compat):
    rng = random.Random(7)
    for _ in range(25):
        models = [f"m{i}" for i in range(rng.randint(1, 6))]
        rows = []
        for s in ("s1", "s2"):
            for m in models:
                skill = rng.random()
                for _ in range(rng.randint(1, 6)):
                    a, b = (m, REF) if rng.random() < 0.5 else (REF, m)
                    g = rng.choice("AB")
                    j = (
                        rng.choice([g, g, "A", "B", None])
                        if rng.random() < skill
                        else rng.choice(["A", "B", None])
                    )
                    rows.append((s, a, b, j, g))
        expected, got = oracle(rows, compat), run(rows, compat="opencompass" if compat else None)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, nan_ok=True), key


# -- rank agreement ------------------------------------------------------------------------------------------
def test_kendall_and_spearman_by_hand():
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # one discordant pair of 6
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    # ties: S = 4, n0 = 6, one tied pair on each side -> 4 / sqrt(5 * 5)
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    # average ranks (1.5, 1.5, 3, 4) and (1, 2.5, 2.5, 4): covariance 3.75, variances 4.5
    assert spearman_rho([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(3.75 / 4.5)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([2, 2], [1, 2]))
    assert math.isnan(kendall_tau_b([1], [1]))
    assert average_ranks([10, 20, 10]).tolist() == [1.5, 3.0, 1.5]


@st.composite
def tied_scores(draw) -> tuple[list[float], list[float]]:
    """Two equally long score lists with many ties: small integers, sometimes scaled to non-integers."""
    n = draw(st.integers(2, 12))
    values = st.integers(0, 4)
    x, y = draw(st.lists(values, min_size=n, max_size=n)), draw(st.lists(values, min_size=n, max_size=n))
    scale = draw(st.sampled_from([1.0, 0.1, -2.5]))
    return [v * scale for v in x], [float(v) for v in y]


@settings(max_examples=300, deadline=None)
@given(tied_scores())
def test_kendall_and_spearman_match_torchmetrics(scores):
    """Kendall tau-b and Spearman rho (average ranks for ties) against torchmetrics' implementations."""
    x, y = scores
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    tau, rho = kendall_tau_b(x, y), spearman_rho(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        # a constant side: undefined, NaN here (torchmetrics: NaN for tau, 0 with a warning for rho)
        assert math.isnan(tau) and math.isnan(rho)
        assert math.isnan(float(kendall_rank_corrcoef(tx, ty, variant="b")))
        return
    # torchmetrics answers in float32 and adds an epsilon (~1e-6) to the Spearman denominator
    assert tau == pytest.approx(float(kendall_rank_corrcoef(tx, ty, variant="b")), abs=1e-5)
    assert rho == pytest.approx(float(spearman_corrcoef(tx, ty)), abs=1e-5)


def test_rank_agreement_sums_rows_per_model():
    metric = RankAgreement()
    # scenario s, rows summed: m1 (2, 2), m2 (0, 1), m3 (3, 3) -> same order on both sides
    metric.update(["s", "s", "s"], ["m1", "m1", "m2"], [1, 1, 0], [0, 2, 1])
    metric.update(
        ["s", "t", "t", "t", "u", "u"],
        ["m3", "a", "b", "c", "a", "b"],
        [3, 3, 2, 1, 5, 5],
        [3, 1, 2, 3, 1, 2],
    )
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["kendall_tau/s"] == pytest.approx(1.0) and out["spearman_rho/s"] == pytest.approx(1.0)
    assert out["kendall_tau/t"] == pytest.approx(-1.0)
    assert math.isnan(out["kendall_tau/u"])  # the judge's scores are constant
    assert out["kendall_tau"] == pytest.approx(0.0) and out["n_undefined"] == 1
    assert metric.tables()["s"] == {"m1": (2.0, 2.0), "m2": (0.0, 1.0), "m3": (3.0, 3.0)}
