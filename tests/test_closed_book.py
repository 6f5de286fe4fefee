"""The closed-book probe (cj2.evaluation.closed_book): questions answered alone, crossed with judgments."""

from __future__ import annotations

import json

import pytest

from cj2.data.schema import PairwiseItem
from cj2.evaluation.closed_book import (
    CLOSED_BOOK_SUFFIX,
    closed_book_metrics,
    closed_book_prompt,
    closed_book_rows,
    cross_judgments,
    main,
)
from cj2.evaluation.placement import present
from cj2.generation.scripted import ScriptedSampler
from tests.test_faithfulness import _item

SUM = _item("What is 11 + 13?", "22", "24", "B", "24", "22", "small_arithmetic")
HEART = _item("Which organ pumps blood?", "The heart.", "The lungs.", "A", "heart", "lungs", "science")
LARGER = _item("Which is larger, 7 or 79?", "7", "79", "B", "79", "7", "compare")
# an instruction's answer is a sentence: its truth is a constraint, nothing to recall
WORDS = _item(
    "Describe a tree in at least 6 words.",
    "A tree.",
    "A tree is a tall green plant.",
    "B",
    "A tree is a tall green plant.",
    "A tree.",
    "instructions",
    truth_view="6 words",
    wrong_view="2 words",
)
NO_TRUTH = PairwiseItem(id="q/open", question="Write a poem.", response_a="x", response_b="y", label="A")

ALONE = {  # hand-written closed-book answers
    "t/small_arithmetic": "11 + 13 = 24.",  # knows
    "t/science": "The lungs pump blood.",  # does not know
    "t/compare": "7 is larger than 79.",  # a false comparison: does not know
}


def _judgment(truth, answers, match, choice):
    return json.dumps({"Truth": truth, "Answers": answers, "Match": match, "Choice": f"Model {choice}"})


def test_prompt_is_the_question_alone():
    (msg,) = closed_book_prompt(SUM)
    assert msg == {"role": "user", "content": "What is 11 + 13?" + CLOSED_BOOK_SUFFIX}
    assert closed_book_prompt(SUM, "")[0]["content"] == "What is 11 + 13?"
    assert "22" not in msg["content"] and "24" not in msg["content"]  # no candidate in view


def test_rows_read_each_answer_and_count_what_cannot_be_probed():
    sampler = ScriptedSampler({k: [v] for k, v in ALONE.items()})
    rows, skipped = closed_book_rows(sampler, [SUM, HEART, LARGER, WORDS, NO_TRUTH])
    assert [(r.id, r.ok) for r in rows] == [
        ("t/small_arithmetic", True),
        ("t/science", False),
        ("t/compare", False),
    ]
    assert dict(skipped) == {"n_not_a_value": 1, "n_no_truth": 1}
    _, _, params = sampler.calls[0]
    assert params.greedy


def test_metrics_cross_the_closed_book_answer_with_the_stated_truth():
    rows, skipped = closed_book_rows(
        ScriptedSampler({k: [v] for k, v in ALONE.items()}), [SUM, HEART, LARGER]
    )
    judgments = [
        # knows 11 + 13 = 24 alone, copies the wrong candidate in one order: knows_but_misstates
        (present(SUM, False), _judgment("11 + 13 = 22.", "22 (Model A); 24 (Model B)", "22 (Model A)", "A")),
        (present(SUM, True), _judgment("11 + 13 = 24.", "24 (Model A); 22 (Model B)", "24 (Model A)", "A")),
        # does not know alone, but the candidates in view let it state the truth: within the ceiling
        (
            present(HEART, False),
            _judgment("The heart pumps blood.", "heart (Model A); lungs (Model B)", "heart (Model A)", "A"),
        ),
        # does not know alone and misstates: misstates_unknown
        (
            present(LARGER, True),
            _judgment("7 is larger than 79.", "79 (Model A); 7 (Model B)", "7 (Model B)", "B"),
        ),
    ]
    m = closed_book_metrics(rows, cross_judgments(rows, judgments), skipped=skipped)
    assert m["closed_book_acc"] == pytest.approx(1 / 3) and m["closed_book_acc_n"] == 3
    assert m["closed_book_acc/small_arithmetic"] == 1.0 and m["closed_book_acc/science"] == 0.0
    assert 0 <= m["closed_book_acc_ci_low"] < 1 / 3 < m["closed_book_acc_ci_high"] <= 1
    assert m["truth_acc"] == pytest.approx(2 / 4) and m["truth_acc_n"] == 4
    assert m["knows_but_misstates"] == pytest.approx(1 / 4)
    assert m["misstates_unknown"] == pytest.approx(1 / 4)
    assert m["truth_ceiling"] == pytest.approx(3 / 4)
    # intervals resample whole questions: SUM's two orders (one right, one wrong) move together
    assert m["truth_acc_n"] == 4 and 0.0 <= m["truth_acc_ci_low"] <= 0.5 <= m["truth_acc_ci_high"] <= 1.0
    assert m["truth_ceiling/compare_ci_low"] == m["truth_ceiling/compare_ci_high"] == 0.0  # one question
    assert m["knows_but_misstates/small_arithmetic"] == 0.5 and m["misstates_unknown/compare"] == 1.0
    # no skipped counts given: none reported; no judgments: no crossed numbers (absent, not 0)
    assert cross_judgments(rows, [(NO_TRUTH, "Model A")]) == [(None, None)]  # no row, no computed truth
    bare = closed_book_metrics(rows)
    assert "truth_acc" not in bare and "knows_but_misstates" not in bare and "n_no_truth" not in bare


def test_an_answer_without_the_value_is_wrong_and_an_empty_one_is_left_out():
    items = [SUM, HEART, LARGER]
    rows, _ = closed_book_rows(
        ScriptedSampler({"t/small_arithmetic": ["I cannot say."], "t/science": [""], "t/compare": ["79."]}),
        items,
    )
    assert rows[0].ok is False and rows[0].why == "does not state the truth"
    assert rows[1].ok is None  # nothing to read: not counted either way
    m = closed_book_metrics(rows)
    assert m["closed_book_acc_n"] == 2 and m["closed_book_acc"] == 0.5 and "closed_book_acc/science" not in m


def test_cli_on_the_tiny_model(tmp_path, capsys):
    out = tmp_path / "cb.json"
    main(["tiny", "--n", "4", "--batch-size", "8", "--max-new-tokens", "8", "--out", str(out)])
    rows = tmp_path / "rows.jsonl"
    args = ["--closed-book-model", "tiny", "--suffix", " Be brief.", "--rows", str(rows)]
    main(["tiny", "--n", "4", "--batch-size", "8", "--max-new-tokens", "8", *args])
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    assert lines and all(len(r["judgments"]) == 2 and r["alone_ok"] in (True, False, None) for r in lines)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["family", "closed", "book"]
    m = json.loads(out.read_text())
    assert all(0.0 <= v <= 1.0 for k, v in m.items() if not k.endswith("_n") and not k.startswith("n_"))
