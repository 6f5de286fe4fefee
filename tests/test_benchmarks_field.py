"""RewardBench 2, RM-Bench, JudgeBench per source, RewardBench's generative compat and the pointwise judge:
each benchmark's rules checked on hand-built cases whose numbers are worked out in the comments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cj2.data.io import DataError
from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.templates import get_template
from cj2.evaluation.benchmarks import load_benchmark
from cj2.evaluation.rewardbench2 import LETTERS, chosen_slot, read_fourway, read_rating
from cj2.evaluation.runner import run_evaluation
from cj2.evaluation.scoring import judgebench_source, rewardbench_metrics
from cj2.generation import ScriptedSampler
from cj2.judge import Judge
from cj2.metrics import RMBenchScore, best_of_n_credit, ratings_credit, ties_score, triangles
from cj2.verdict import render_verdict
from tests.test_evaluate import _judgebench_file


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(tmp_path: Path, benchmark: dict, jcfg: dict, *, swap: bool = True, placement: str = "fixed", **kw):
    cfg = {
        "judge": jcfg,
        "benchmark": benchmark,
        "placement": placement,
        "seed": 0,
        "evaluate": {"mode": "generate", "swap": swap, "bootstrap": 0, "progress": False},
    }
    return run_evaluation(cfg, tmp_path / "run", **kw)


# ------------------------------------------------------------------------------------ RewardBench 2 rules
@pytest.mark.parametrize("slot", list("ABCD"))
def test_best_of_four_credit_with_the_chosen_answer_in_each_slot(slot):
    for picked in "ABCD":
        assert best_of_n_credit(picked, slot) == float(picked == slot)
        assert best_of_n_credit(picked, slot, compat="strict") == float(picked == slot)
    assert best_of_n_credit(None, slot) == 0.25  # a uniform guess over four (official)
    assert best_of_n_credit(None, slot, compat="strict") == 0.0


@pytest.mark.parametrize("slot", range(4))
def test_four_way_prompt_shows_the_chosen_answer_in_its_slot(slot):
    from cj2.data.schema import BestOfNItem
    from cj2.evaluation.rewardbench2 import fourway_answers, fourway_prompt

    item = BestOfNItem("x", "Which is prime?", "7", ["8", "9", "10"], domain="Math")
    shown = fourway_answers(item, slot)
    assert shown[slot] == "7" and [a for a in shown if a != "7"] == ["8", "9", "10"]
    system, user = fourway_prompt(item, shown)
    letter = "ABCD"[slot]
    assert f"[The Start of Assistant {letter}'s Answer]\n7\n" in user["content"]
    assert '"[[D]]" if assistant D is best' in system["content"]
    assert best_of_n_credit(read_fourway(f"Assistant {letter}. [[{letter}]]"), letter) == 1.0


def test_four_way_readings_official_a_first_and_strict_last_marker():
    assert read_fourway("Best: [[C]]") == "C" == read_fourway("Best: [[C]]", compat="strict")
    # RewardBench's substring test takes the first letter in slot order that appears anywhere
    assert read_fourway("Not [[A]]... final verdict [[C]]") == "A"
    assert read_fourway("Not [[A]]... final verdict [[C]]", compat="strict") == "C"
    assert read_fourway("[[C]] or [[D]]") == "C" and read_fourway("[[C]] or [[D]]", compat="strict") is None
    assert read_fourway("[[E]]") is None and read_fourway("[[E]]", compat="strict") is None  # no slot E
    assert read_fourway("no verdict") is None and read_fourway("[[ B ]]", compat="strict") == "B"
    assert read_rating("Fine.\nRating: [[7]]") == 7 and read_rating("7/10") == -1 and read_rating(None) == -1


def test_shared_top_ratings_earn_one_over_k():
    assert ratings_credit([8, 8, 5, 8]) == pytest.approx(1 / 3)  # chosen shares the top 8 with two others
    assert ratings_credit([9, 8, 5, 8]) == 1.0 and ratings_credit([7, 9, 1, 2]) == 0.0
    assert ratings_credit([-1, -1, -1, -1]) == 0.25  # all unparsed: the chosen ties the top four ways
    assert ratings_credit([-1, -1, -1, -1], compat="strict") == 0.0
    assert ratings_credit([9, -1, 3, 2]) == 1.0 and ratings_credit([9, -1, 3, 2], compat="strict") == 0.0
    with pytest.raises(ValueError, match="compat"):
        ratings_credit([1], compat="lenient")


def test_ties_composite_by_hand():
    """Prompt 1: ref c=[8] w=[5, 6] -> accurate, margin 2; tied c=[9, 7] w=[6, 4] -> accurate (7 > 6),
    spread 2, margin 1. Prompt 2: ref c=[5] w=[6] -> not accurate, margin -1; tied c=[8, 8] w=[3] ->
    accurate, spread 0, margin 5.
    ref accuracy 1/2, tied accuracy 1; margin > spread: 1 > 2 no, 5 > 0 yes -> 1/2; min(ref, tied) margin
    > spread: min(2, 1) = 1 > 2 no, min(-1, 5) = -1 > 0 no -> 0; tanh terms: tanh(1/2 - 1) = tanh(-0.5),
    -1/0 = -inf -> tanh = -1; mean (tanh(-0.5) - 1) / 2.
    score = 0.3 * 1 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0 + 0.01 * (tanh(-0.5) - 1) / 2."""
    parts = ties_score(
        [
            ("ref", "1", [8, 5, 6], 1),
            ("tied", "1", [9, 7, 6, 4], 2),
            ("ref", "2", [5, 6], 1),
            ("tied", "2", [8, 8, 3], 2),
        ]
    )
    margin = (math.tanh(-0.5) - 1) / 2
    assert parts["ref_accuracy"] == 0.5 and parts["tied_accuracy"] == 1.0
    assert parts["correctness_preferred"] == 0.5 and parts["correctness_preferred_hard"] == 0.0
    assert parts["correctness_margin"] == pytest.approx(margin)
    assert parts["score"] == pytest.approx(0.3 + 0.15 + 0.1 + 0.01 * margin)
    assert parts["n_paired"] == 2.0
    # 0/0 in the tanh term counts 0: equal correct ratings and a zero margin
    assert ties_score([("ref", "1", [5, 5], 1), ("tied", "1", [5, 5, 5], 2)])["correctness_margin"] == 0.0


RB2_ROWS = [
    {"id": "f1", "prompt": "Capital of France?", "chosen": ["Paris"], "rejected": ["Lyon", "Nice", "Rome"]},
    {"id": "f2", "prompt": "2 + 2?", "chosen": ["4"], "rejected": ["5", "3", "22"]},
    {"id": "m1", "prompt": "3 * 3?", "chosen": ["9"], "rejected": ["6", "33", "8"]},
    {"id": "ref:1", "prompt": "Name a prime.", "chosen": ["7"], "rejected": ["8", "9"]},
    {"id": "tied:1", "prompt": "Name a prime.", "chosen": ["7", "5"], "rejected": ["8", "9"]},
]
RB2_SUBSETS = {"f1": "Factuality", "f2": "Factuality", "m1": "Math", "ref:1": "Ties", "tied:1": "Ties"}


def rb2_file(path: Path) -> Path:
    rows = []
    for r in RB2_ROWS:
        rows.append(
            {
                **r,
                "subset": RB2_SUBSETS[r["id"]],
                "num_correct": len(r["chosen"]),
                "num_incorrect": len(r["rejected"]),
                "total_completions": len(r["chosen"]) + len(r["rejected"]),
                "models": ["m"] * (len(r["chosen"]) + len(r["rejected"])),
            }
        )
    return write_jsonl(path, rows)


def test_rewardbench2_recorded_outputs_scored_by_hand(tmp_path):
    """f1: the chosen slot named -> 1 | 1 (official | strict). f2: no verdict -> 0.25 | 0. m1: "[[A]] ...
    [[C]]" with the chosen answer recorded in slot C -> official reads A (0), strict reads C (1).
    Ties: ref:1 rated c=8, w=[5, unparsed -1] -> accurate, margin 3; tied:1 c=[9, 7], w=[6, 2] ->
    accurate, spread 2, margin 1: accuracies 1 and 1, 1 > 2 no, min(3, 1) > 2 no, tanh(1/2 - 1):
    Ties = 0.6 + 0.01 tanh(-0.5).
    official: Factuality (1 + 0.25) / 2 = 62.5, Math 0, Ties; strict: Factuality 50, Math 100, Ties;
    score = mean of the three subsets present. Judgments 3 + 7 = 10, 2 unparsed (f2, one rating)."""
    data = rb2_file(tmp_path / "rb2.jsonl")
    slot_f1 = LETTERS[chosen_slot("f1", 3, 4)]
    r = lambda n: f"Assessment.\nRating: [[{n}]]"  # noqa: E731
    preds = write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"id": "f1", "output": f"The best is [[{slot_f1}]]"},
            {"id": "f2", "output": "I cannot tell."},
            {"id": "m1", "output": "Not [[A]]; final verdict [[C]]", "chosen_slot": "C"},
            {"id": "ref:1/0", "output": r(8)},
            {"id": "ref:1/1", "output": r(5)},
            {"id": "ref:1/2", "output": "no rating"},
            {"id": "tied:1/0", "output": r(9)},
            {"id": "tied:1/1", "output": r(7)},
            {"id": "tied:1/2", "output": r(6)},
            {"id": "tied:1/3", "output": r(2)},
        ],
    )
    metrics = run(
        tmp_path,
        {"name": "rewardbench2", "path": str(data), "slot_seed": 3},
        {"backend": "predictions", "path": str(preds)},
    )
    m = metrics["results"]["generate"]
    ties = 100 * (0.6 + 0.01 * math.tanh(-0.5))
    assert m["rewardbench2/official/factuality"] == 62.5 and m["rewardbench2/official/math"] == 0.0
    assert m["rewardbench2/strict/factuality"] == 50.0 and m["rewardbench2/strict/math"] == 100.0
    assert m["rewardbench2/official/ties"] == pytest.approx(ties) == m["rewardbench2/strict/ties"]
    assert m["rewardbench2/official/score"] == pytest.approx((62.5 + 0 + ties) / 3)
    assert m["rewardbench2/strict/score"] == pytest.approx((50 + 100 + ties) / 3)
    assert m["rewardbench2/score"] == m["rewardbench2/official/score"]  # compat official by default
    assert m["parse_rate"] == pytest.approx(0.8) and m["rewardbench2/n_unparsed"] == 2.0
    assert m["rewardbench2/n/factuality"] == 2.0 and m["n"] == 5.0 and m["rewardbench2/n_subsets"] == 3.0
    placement = json.loads((tmp_path / "run" / "placement.json").read_text())
    assert placement["seed"] == 3 and placement["chosen_slot"]["f1"] == slot_f1
    assert "ref:1" not in placement["chosen_slot"]  # Ties is rated, not placed
    proto = metrics["protocol"]
    assert "1/4" in proto["unparsed"] and proto["placement_seed"] == 3 and "official" in proto["compat"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "RewardBench 2 (0-100)" in report and "**Protocol**" in report and "official/score" in report


def test_rewardbench2_model_judge_four_way_and_ratings(tmp_path):
    """A scripted model judge: in 4-way prompts it names the slot holding the chosen answer; ratings: the
    chosen answer and two others get 8 (a three-way top: 1/3), the Ties' correct answers 9, the rest 3."""
    data = rb2_file(tmp_path / "rb2.jsonl")
    chosen = {r["prompt"]: r["chosen"] for r in RB2_ROWS}

    def script(messages, key, j, seed):
        text = messages[-1]["content"]
        if key[1] == "fourway":
            for x in "ABCD":
                answer = text.split(f"[The Start of Assistant {x}'s Answer]\n", 1)[1].split("\n[The End", 1)[
                    0
                ]
                if answer in chosen[text.split("[User Question]\n", 1)[1].split("\n", 1)[0]]:
                    return f"Assistant {x} is right. [[{x}]]"
        question = text.split("[Query]\n", 1)[1].split("\n", 1)[0]
        answer = text.split("[Response]\n", 1)[1].split("\n[End of Response]", 1)[0]
        if question == "Name a prime.":
            return f"Rating: [[{9 if answer in ('7', '5') else 3}]]"
        return (
            "Rating: [[8]]"
            if answer in chosen[question] or answer in ("Lyon", "5", "6", "33")
            else "Rating: [[2]]"
        )

    judge = Judge(get_template("mtbench_pair"), ScriptedSampler(script))
    four = run(tmp_path, {"name": "rewardbench2", "path": str(data)}, {"backend": "hf"}, judge=judge)
    m = four["results"]["generate"]
    assert m["rewardbench2/official/factuality"] == 100.0 == m["rewardbench2/strict/math"]
    assert m["parse_rate"] == 1.0
    rated = run(
        tmp_path / "r",
        {"name": "rewardbench2", "path": str(data), "mode": "ratings"},
        {"backend": "hf"},
        judge=judge,
    )["results"]["generate"]
    # f1: 8 (Paris), 8 (Lyon), 2, 2 -> 1/2; f2: 8 (4), 8 (5), 2, 2 -> 1/2; m1: 8 (9), 8 (6), 8 (33), 2 -> 1/3
    assert rated["rewardbench2/official/factuality"] == pytest.approx(50.0)
    assert rated["rewardbench2/official/math"] == pytest.approx(100 / 3)
    tie = rated["rewardbench2/ties/ref_accuracy"], rated["rewardbench2/ties/tied_accuracy"]
    assert tie == (100.0, 100.0) and rated["rewardbench2/ties/n_paired"] == 1.0


def test_rewardbench2_bad_rows_name_file_line_and_field(tmp_path):
    good = {"id": "x", "prompt": "p", "chosen": ["a"], "rejected": ["b", "c", "d"], "subset": "Math"}
    for row, field in (
        ({**good, "subset": "Poetry"}, "subset"),
        ({**good, "num_correct": 2}, "num_correct"),
        ({**good, "chosen": ["a", "b"]}, "chosen"),
        ({**good, "subset": "Ties", "id": "7"}, "id"),
    ):
        path = write_jsonl(tmp_path / "bad.jsonl", [good, row])
        with pytest.raises(DataError) as info:
            load_benchmark({"name": "rewardbench2", "path": str(path)})
        assert (info.value.line, info.value.field) == (2, field)
    with pytest.raises(ValueError, match="compat"):
        load_benchmark({"name": "rewardbench2", "path": str(rb2_file(tmp_path / "ok.jsonl")), "compat": "x"})


# -------------------------------------------------------------------------------------------- RM-Bench
def test_rmbench_triangles_of_a_known_matrix():
    """Rows chosen style, columns rejected style: hard (upper) 0, 0, 0; normal (diagonal) 1, 1, 0.5;
    easy (lower) 1, 1, 1 -> score (0 + 5/6 + 1) / 3."""
    t = triangles([[1, 0, 0], [1, 1, 0], [1, 1, 0.5]])
    assert (t["hard"], t["normal"], t["easy"]) == (0.0, pytest.approx(5 / 6), 1.0)
    assert t["score"] == pytest.approx((5 / 6 + 1) / 3)
    m = RMBenchScore()
    # one chat item: only the diagonal right; the two safety files are one domain (means per cell)
    m.update(
        ["chat"] * 9,
        [i for i in range(3) for _ in range(3)],
        [j for _ in range(3) for j in range(3)],
        [float(i == j) for i in range(3) for j in range(3)],
    )
    m.update(["safety-refuse", "safety-response"], [0, 0], [1, 1], [1.0, 0.0])
    out = {k: float(v) for k, v in m.compute().items()}
    assert (out["chat/hard"], out["chat/normal"], out["chat/easy"]) == (0.0, 100.0, 0.0)
    assert out["safety/hard"] == 50.0 and math.isnan(out["safety/normal"]) and out["n_domains"] == 2
    with pytest.raises(ValueError, match="RM-Bench domain"):
        m.update(["poetry"], [0], [0], [1.0])


def _rmbench_data(tmp_path: Path) -> Path:
    row = {"prompt": "p", "chosen": ["c-short", "c-long", "c-md"], "rejected": ["r-short", "r-long", "r-md"]}
    return write_jsonl(
        tmp_path / "total_dataset.jsonl",
        [{**row, "id": 1, "domain": "chat"}, {**row, "id": 2, "domain": "safety-refuse", "prompt": "q"}],
    )


def _rmbench_predictions(tmp_path: Path) -> Path:
    """Item 1 (chat): the hard cells (chosen plainer than rejected: c0r1, c0r2, c1r2) lost in both orders,
    the rest won in both. Item 2 (safety): c0r0 won in order AB only (the judge picks position A twice);
    c2r2 a tie [[C]] in order AB, won in BA; the rest won in both."""
    v = lambda lab: render_verdict(lab, "brackets")  # noqa: E731
    rows = []
    for item in (1, 2):
        for i in range(3):
            for j in range(3):
                cid = f"{item}/c{i}r{j}"
                ab, ba = "A", "B"  # the chosen answer (A as read) picked in both orders
                if item == 1 and j > i:
                    ab, ba = "B", "A"
                if item == 2 and (i, j) == (0, 0):
                    ab, ba = "A", "A"
                if item == 2 and (i, j) == (2, 2):
                    ab = "tie"
                rows += [
                    {"id": cid, "order": "AB", "output": v(ab)},
                    {"id": cid, "order": "BA", "output": v(ba)},
                ]
    return write_jsonl(tmp_path / "preds.jsonl", rows)


def test_rmbench_both_orders_net_vote_and_rm_r1_by_hand(tmp_path):
    """Net vote: chat hard 0, normal 100, easy 100 -> 200/3; safety c0r0 net 0 -> lost, c2r2 net +1 ->
    won: hard 100, normal 200/3, easy 100 -> 800/9. Overall hard 50, normal 250/3, easy 100, score =
    (200/3 + 800/9) / 2. RM-R1 (placement order AB only, tie 0.5): chat as before; safety c0r0 won, c2r2
    0.5 -> normal 250/3 -> (100 + 250/3 + 100) / 3; overall the mean of the two domains."""
    data, preds = _rmbench_data(tmp_path), _rmbench_predictions(tmp_path)
    judge = {"backend": "predictions", "path": str(preds), "template": "mtbench_pair"}
    m = run(tmp_path, {"name": "rmbench", "path": str(data)}, judge)["results"]["generate"]
    assert (m["rmbench/chat/hard"], m["rmbench/chat/normal"], m["rmbench/chat/easy"]) == (0.0, 100.0, 100.0)
    assert m["rmbench/safety/normal"] == pytest.approx(200 / 3) and m["rmbench/safety/hard"] == 100.0
    assert (
        m["rmbench/hard"] == 50.0
        and m["rmbench/normal"] == pytest.approx(250 / 3)
        and m["rmbench/easy"] == 100
    )
    assert m["rmbench/score"] == pytest.approx((200 / 3 + 800 / 9) / 2) == m["rmbench/net_vote/score"]
    safety_r1 = (100 + 250 / 3 + 100) / 3
    assert m["rmbench/rm_r1/score"] == pytest.approx((200 / 3 + safety_r1) / 2)
    assert m["rmbench/matrix/00"] == 50.0  # chat won c0r0, safety lost it
    r1 = run(tmp_path / "r1", {"name": "rmbench", "path": str(data), "compat": "rm_r1"}, judge, swap=False)
    r1m, proto = r1["results"]["generate"], r1["protocol"]
    assert r1m["rmbench/score"] == pytest.approx((200 / 3 + safety_r1) / 2)
    assert r1m["rmbench/safety/normal"] == pytest.approx(250 / 3) and "rmbench/net_vote/score" not in r1m
    assert proto["compat"] == "rm_r1" and proto["ties"] == "0.5" and proto["orders"].startswith("one")
    with pytest.raises(ValueError, match="rm_r1"):
        load_benchmark({"name": "rmbench", "path": str(data), "compat": "rm-r1"})


# ------------------------------------------------------------------------------------------ JudgeBench
def test_judgebench_sources_are_grouped_by_prefix():
    assert judgebench_source("mmlu-pro-math") == "mmlu-pro" and judgebench_source("livecodebench") == (
        "livecodebench"
    )
    assert judgebench_source("livebench-reasoning") == "livebench-reasoning"
    assert judgebench_source("other-set") == "other-set"


# ---------------------------------------------------------------------------- RewardBench v1, generative
def test_rewardbench_generative_compat_credits_and_a_first_reading():
    """One item per section (opencompass weighting: sections are count-weighted means, 1 item each).
    chat: "[[A]] [[B]]" -> generative reads A (right), cj2 reads nothing; chat_hard: no verdict -> 0.5 |
    0; safety: "[[B]]" shown swapped -> A as read, right in both; reasoning: "[[B]]" -> wrong in both.
    generative final (100 + 50 + 100 + 0) / 4 = 62.5; strict (0 + 0 + 100 + 0) / 4 = 25."""
    pairs = []
    for subset, output, order, verdict in (
        ("alpacaeval-easy", "[[A]] [[B]]", "AB", None),
        ("mt-bench-hard", "no verdict", "AB", None),
        ("donotanswer", "[[B]]", "BA", "A"),
        ("math-prm", "[[B]]", "AB", "B"),
    ):
        item = PairwiseItem(subset, "q", "chosen", "rejected", "A", domain=subset)
        pairs.append((item, {"output": output, "order": order, "verdict": verdict}))
    gen = rewardbench_metrics(pairs, "opencompass", "generative")
    strict = rewardbench_metrics(pairs, "opencompass")
    assert gen["rewardbench/chat_hard"] == 50.0 and gen["rewardbench/final"] == 62.5
    assert strict["rewardbench/final"] == 25.0
    # verdict-logit rows (no text) keep their verdict
    assert (
        rewardbench_metrics([(pairs[2][0], {"verdict": "A"})], "opencompass", "generative")[
            "rewardbench/safety"
        ]
        == 100.0
    )


# --------------------------------------------------------------------------------------- Judge.rate
def test_judge_rate_reads_the_rating():
    judge = Judge(
        get_template("cj2_short"), ScriptedSampler({0: ["Correct and clear.\nRating: [[9]]"], 1: ["Good"]})
    )
    assert judge.rating_template.name == "cj2_rating"
    first, second = judge.rate_batch([("What is 17 * 3?", "51"), {"question": "Hi", "answer": "Hello"}])
    assert (first.verdict, first.critique) == ("9", "Correct and clear.")
    assert second.verdict is None
    prompt = get_template("cj2_rating").render(PointwiseItem("x", "Q?", "A."))
    assert "Rating: [[7]]" in prompt[-1]["content"] and "[Response]\nA." in prompt[-1]["content"]
    with pytest.raises(ValueError, match="score"):
        Judge(get_template("cj2_short"), ScriptedSampler({}), rating_template="correctness")
    one = Judge(get_template("cj2_short"), ScriptedSampler({0: ["Rating: [[3]]"]})).rate("Q?", "A.")
    assert one.verdict == "3"


# ------------------------------------------------------------------------------------------ the suites
def test_field_suite_one_table_absent_benchmarks_listed_never_averaged(tmp_path):
    """``+suite=field`` with JudgeBench, RM-Bench and RewardBench 2 present (the cases above, so the cells
    are the numbers worked out there) and JudgerBenchV2, RMB, RewardBench absent: the table has every
    column, the absent ones read "absent" with their fetch commands below, and no row has an average."""
    from hydra import compose, initialize_config_dir

    from cj2.evaluate import evaluate
    from cj2.evaluation.runner import register_resolvers

    root = tmp_path / "benchmarks"
    (root / "rmbench").mkdir(parents=True)
    (root / "rewardbench2").mkdir()
    _judgebench_file(root / "judgebench.jsonl")
    _rmbench_data(tmp_path).rename(root / "rmbench" / "total_dataset.json")
    rb2_file(root / "rewardbench2" / "test.jsonl")
    rb2_preds = [{"id": "f1", "order": "AB", "output": f"[[{LETTERS[chosen_slot('f1', 0, 4)]}]]"}]
    rb2_preds += [{"id": i, "order": "AB", "output": "none"} for i in ("f2", "m1")]
    rb2_preds += [
        {"id": f"{i}/{k}", "order": "AB", "output": "Rating: [[5]]"} for i in ("ref:1",) for k in range(3)
    ]
    rb2_preds += [{"id": f"tied:1/{k}", "order": "AB", "output": "Rating: [[5]]"} for k in range(4)]
    brackets = [json.loads(x) for x in _rmbench_predictions(tmp_path).read_text().splitlines()]
    choice = [
        {
            **r,
            "output": r["output"]
            .replace("[[A]]", '"Choice": "Model A"')
            .replace("[[B]]", '"Choice": "Model B"'),
        }
        for r in brackets
    ]
    preds = write_jsonl(tmp_path / "all.jsonl", _judgebench_preds() + choice + rb2_preds)
    register_resolvers()
    with initialize_config_dir(
        config_dir=str(Path(__file__).resolve().parents[1] / "cj2" / "conf"), version_base="1.3"
    ):
        cfg = compose(
            "evaluate",
            overrides=[
                "+suite=field",
                f"suite.data_root={root}",
                "suite.extra=[]",
                "judge=predictions",
                f"judge.path={preds}",
                "judge.template=cj2_eval",
                "placement=fixed",
                f"output_root={tmp_path / 'out'}",
                "logger.wandb.enabled=false",
                "evaluate.bootstrap=0",
                "evaluate.progress=false",
            ],
        )
    assert evaluate(cfg) is None  # the official average needs every column
    (folder,) = (tmp_path / "out" / "eval" / "suite-field").iterdir()
    result = json.loads((folder / "metrics.json").read_text())
    t = result["table"]
    assert t["official"]["judgebench"] == 75.0 and t["paper"]["judgebench"] == 50.0
    # RM-Bench: c2r2 reads as unparsed here (no tie in cj2_choice): safety normal 200/3 both ways
    assert t["official"]["rmbench"] == pytest.approx((200 / 3 + 800 / 9) / 2)
    assert t["official"]["judgerbenchv2"] is None and t["strict"]["rmb"] is None
    # RewardBench 2: f1 right (1 | 1), f2 and m1 unparsed (0.25 | 0); Ties all 5: nothing accurate
    assert t["official"]["rewardbench2"] == pytest.approx((62.5 + 25 + 0) / 3)
    assert t["strict"]["rewardbench2"] == pytest.approx((50 + 0 + 0) / 3)
    avg = result["average"]["official"]
    assert avg["value"] is None and set(avg["missing"]) == {"judgerbenchv2", "rmb", "rewardbench"}
    assert avg["present_mean"] == pytest.approx(
        (75 + t["official"]["rmbench"] + t["official"]["rewardbench2"]) / 3
    )
    report = (folder / "report.md").read_text()
    assert report.startswith("# Suite field") and "| official protocol | absent | 75.00 | absent |" in report
    assert "3 of 6 missing" in report and "load_dataset('allenai/reward-bench'" in report
    assert "https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark" in report
    assert (folder / "judgebench" / "report.md").exists()
    assert result["benchmarks"]["rmbench"]["protocol"]["compat"].startswith("none")


def _judgebench_preds() -> list[dict]:
    """As in test_evaluate's hand-computed JudgeBench case: double order 3/4, single order (AB) 2/4."""
    v = lambda lab: render_verdict(lab, "cj2_choice")  # noqa: E731
    return [
        {"id": "p0", "order": "AB", "output": v("A")},
        {"id": "p0", "order": "BA", "output": v("B")},
        {"id": "p1", "order": "AB", "output": v("A")},
        {"id": "p1", "order": "BA", "output": v("A")},
        {"id": "p2", "order": "AB", "output": "I cannot decide."},
        {"id": "p2", "order": "BA", "output": v("B")},
        {"id": "p3", "order": "AB", "output": v("B")},
        {"id": "p3", "order": "BA", "output": v("A")},
    ]


def test_wandb_summary_carries_the_protocol():
    from cj2.evaluation.report import wandb_summary
    from cj2.evaluation.suite import suite_summary

    summary = wandb_summary(
        {
            "results": {"generate": {"accuracy": 0.5, "x": float("nan")}},
            "wall_time_s": 2,
            "protocol": {"unparsed": "0.5"},
        }
    )
    assert summary == {"generate/accuracy": 0.5, "wall_time_s": 2.0, "protocol/unparsed": "0.5"}
    suite = {
        "table": {"official": {"judgebench": 75.0, "rmb": None}},
        "average": {"official": {"value": None}},
        "benchmarks": {
            "judgebench": {"status": "ok", "protocol": {"orders": "both"}},
            "rmb": {"status": "absent"},
        },
    }
    assert suite_summary(suite) == {
        "suite/official/judgebench": 75.0,
        "suite/status/judgebench": "ok",
        "protocol/judgebench/orders": "both",
        "suite/status/rmb": "absent",
    }


@pytest.mark.parametrize("suite", ["paper", "field"])
def test_suite_configs_compose_and_hydra_logs_go_to_the_suite_folder(suite):
    from hydra import compose, initialize_config_dir

    from cj2.evaluation.benchmarks import BENCHMARKS
    from cj2.evaluation.runner import register_resolvers, suite_dir
    from cj2.runtime import to_plain

    register_resolvers()
    conf = str(Path(__file__).resolve().parents[1] / "cj2" / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[f"+suite={suite}", "judge=predictions", "judge.path=p.jsonl"],
            return_hydra_config=True,
        )
    plain = to_plain({k: v for k, v in cfg.items() if k != "hydra"})
    assert cfg.hydra.run.dir == str(suite_dir(plain))
    columns = plain["suite"]["columns"]
    assert columns[:4] == ["judgerbenchv2", "judgebench", "rmb", "rewardbench"]
    assert columns[4:] == ([] if suite == "paper" else ["rewardbench2", "rmbench"])
    for name in columns + plain["suite"]["extra"]:
        assert plain["suite"]["benchmarks"][name]["name"] in BENCHMARKS
