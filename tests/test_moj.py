"""Mix-of-Judgers ground truth (arXiv 2507.09104, Sec. 4.2): majority, Cohen's and Fleiss' kappa,
the entry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from cj2.data.io import DataError
from cj2.evaluation.agreement import NoMajority, agreement_report, cohen_kappa, fleiss_kappa, majority_vote
from cj2.moj import mix_of_judgers, moj, read_votes


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("votes", "policy", "expected"),
    [
        (["A", "A", "B"], "drop", "A"),
        (["B", None, "B"], "drop", "B"),  # two of three agree: a strict majority of the judges
        (["A", "B", None], "drop", None),  # one each: no majority
        (["A", "B", None], "tie", "tie"),
        (["A", "B", None], "first", "A"),
        ([None, "B", "A"], "first", "B"),
        (["A", None, None], "drop", None),  # one vote out of three is not a majority
        (["A", None, None], "first", "A"),
        ([None, None, None], "first", None),
        (["A", "B", "tie"], "tie", "tie"),
    ],
)
def test_majority_vote(votes, policy, expected):
    assert majority_vote(votes, tie_policy=policy) == expected


def test_majority_vote_options():
    assert majority_vote(["A", None, None], min_votes=1) == "A"
    with pytest.raises(NoMajority, match="no majority"):
        majority_vote(["A", "B", None], tie_policy="error")
    with pytest.raises(ValueError, match="tie_policy"):
        majority_vote(["A"], tie_policy="coin")


def test_cohen_kappa_by_hand():
    # a = A A B B, b = A B B B: p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2;
    # kappa = (3/4 - 1/2) / (1/2) = 1/2
    assert cohen_kappa(["A", "A", "B", "B"], ["A", "B", "B", "B"]) == (pytest.approx(0.5), 4)
    # abstentions drop the item: a = A A B, c = A B A over items 1, 2, 4
    # p_o = 1/3; p_e = (2/3)(2/3) + (1/3)(1/3) = 5/9; kappa = (1/3 - 5/9) / (4/9) = -1/2
    kappa, n = cohen_kappa(["A", "A", "B", "B"], ["A", "B", None, "A"])
    assert n == 3 and kappa == pytest.approx(-0.5)
    assert cohen_kappa(["A", "A"], ["A", "A"])[0] != cohen_kappa(["A", "A"], ["A", "A"])[0]  # NaN: p_e = 1
    assert math.isnan(cohen_kappa([None], ["A"])[0])
    with pytest.raises(ValueError, match="one per item"):
        cohen_kappa(["A"], ["A", "B"])


def test_fleiss_kappa_by_hand():
    # counts (A, B) per item: (3,0) (2,1) (0,3) (1,2); P_i = 1, 1/3, 1, 1/3 -> P_bar = 2/3
    # p_A = 6/12 = p_B -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3
    table = [["A", "A", "A"], ["A", "A", "B"], ["B", "B", "B"], ["A", "B", "B"], ["A", None, "B"]]
    kappa, n = fleiss_kappa(table)
    assert n == 4 and kappa == pytest.approx(1 / 3)
    assert math.isnan(fleiss_kappa([["A", "A"], ["A", "A"]])[0])
    assert fleiss_kappa([["A", "B"], ["B", "A"]]) == (pytest.approx(-1.0), 2)  # P_bar 0, P_e 1/2


def test_agreement_report_keys():
    report = agreement_report({"x": ["A", "B"], "y": ["A", "B"], "z": ["B", "B"]})
    assert report["cohen/x|y"] == 1.0 and report["cohen/x|y_n"] == 2.0
    assert set(report) == {
        "cohen/x|y",
        "cohen/x|y_n",
        "cohen/x|z",
        "cohen/x|z_n",
        "cohen/y|z",
        "cohen/y|z_n",
        "fleiss",
        "fleiss_n",
    }


def test_read_votes_formats_and_errors(tmp_path):
    evaluate_rows = write_jsonl(
        tmp_path / "judgments.jsonl",
        [
            {"id": "1", "pass": "headline", "verdict": "B"},
            {"id": "1", "pass": "swap", "verdict": "A"},
            {"id": "2", "pass": "headline", "verdict": None},
        ],
    )
    assert read_votes(evaluate_rows) == {"1": "B", "2": None}
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"id": 7, "output": '"Choice": "Model A"', "order": "BA"}])
    assert read_votes(raw, format="cj2_choice") == {"7": "B"}  # shown in order BA: A there is B as read
    with pytest.raises(DataError, match="pass format="):
        read_votes(raw)
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "1", "verdict": "A"}, {"id": "1", "verdict": "B"}])
    with pytest.raises(DataError, match=r"dup.jsonl:2: field 'id'"):
        read_votes(dup)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "verdict": "Model A"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'verdict'"):
        read_votes(bad)


def test_mix_of_judgers_and_its_ground_truth_feeds_a_benchmark(tmp_path):
    from cj2.evaluation.benchmarks import load_benchmark

    a = write_jsonl(tmp_path / "r1.jsonl", [{"id": f"p{i}", "verdict": v} for i, v in enumerate("AABB")])
    b = write_jsonl(tmp_path / "v3.jsonl", [{"id": f"p{i}", "verdict": v} for i, v in enumerate("ABBB")])
    c = write_jsonl(
        tmp_path / "qwen3.jsonl",
        [{"id": "p0", "verdict": "A"}, {"id": "p1", "verdict": None}, {"id": "p3", "verdict": "A"}],
    )
    out = tmp_path / "gt.jsonl"
    summary = moj({"judges": [str(a), str(b), str(c)], "out": str(out), "tie_policy": "drop"})
    # p0 AAA -> A; p1 A B - -> no majority (dropped); p2 B B (missing) -> B; p3 B B A -> B
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [("p0", "A"), ("p2", "B"), ("p3", "B")]
    assert rows[1]["votes"] == {"r1": "B", "v3": "B", "qwen3": None} and rows[1]["n_votes"] == 2
    assert summary["n_items"] == 4 and summary["n_no_majority"] == 1
    assert summary["agreement"]["cohen/r1|v3"] == pytest.approx(0.5)
    saved = json.loads((tmp_path / "gt.jsonl.agreement.json").read_text())
    assert saved["n_labelled"] == 3 and saved["files"]["qwen3"] == str(c)

    data = write_jsonl(
        tmp_path / "jb.jsonl",
        [
            {
                "pair_id": f"p{i}",
                "source": "s",
                "question": "q",
                "response_A": "a",
                "response_B": "b",
                "label": "A>B",
            }
            for i in range(4)
        ],
    )
    bench = load_benchmark({"name": "judgebench", "path": str(data), "gt_path": str(out)})
    assert [(it.id, it.label) for it in bench.items] == [("p0", "A"), ("p2", "B"), ("p3", "B")]
    assert bench.stats["no_gt"] == 1

    rows2, _ = mix_of_judgers({"x": {"1": "A"}, "y": {"1": "B"}}, tie_policy="tie")
    assert rows2 == [{"id": "1", "label": "tie", "votes": {"x": "A", "y": "B"}, "n_votes": 2}]


def test_moj_command_line(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "verdict": "A"}, {"id": "2", "verdict": "B"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "1", "verdict": "A"}, {"id": "2", "verdict": "A"}])
    done = subprocess.run(
        [sys.executable, "-m", "cj2.moj", f"judges=[{a},{b}]", "out=gt.jsonl", "tie_policy=first"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["label"] for x in (tmp_path / "gt.jsonl").read_text().splitlines()] == ["A", "B"]
    assert "cohen/a|b" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.jsonl",
        "b.jsonl",
        "gt.jsonl",
        "gt.jsonl.agreement.json",
    ]
