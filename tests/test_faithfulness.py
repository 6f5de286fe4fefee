"""The faithfulness reader on hand-written judgments (cj2.evaluation.faithfulness)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cj2.data.schema import PairwiseItem
from cj2.evaluation.faithfulness import (
    check_judgment,
    check_quote,
    check_truth,
    faithfulness_metrics,
    is_spurious,
    reference_of,
)


def _item(question, a, b, label, truth, wrong, family="small_arithmetic", **meta):
    return PairwiseItem(
        id=f"t/{family}",
        question=question,
        response_a=a,
        response_b=b,
        label=label,
        domain=family,
        meta={"family": family, "truth": truth, "wrong_value": wrong, **meta},
    )


SUM = _item("What is 11 + 13?", "22 (11 + 13 = 22)", "The answer is 24.", "B", "24", "22")
HEART = _item(
    "Which organ pumps blood?", "The heart.", "It is the lungs.", "A", "heart", "lungs", family="science"
)
GRAMS = _item("Convert 0.55 kg to grams.", "55 g", "That is 550 grams.", "B", "550 g", "55 g", family="units")
LARGER = _item("Which is larger, 7 or 79?", "7", "Final answer: 79.", "B", "79", "7", family="compare")


def _judgment(truth, answers, match, choice):
    return json.dumps({"Truth": truth, "Answers": answers, "Match": match, "Choice": f"Model {choice}"})


def _check(text, item):
    r = check_judgment(text, item)
    assert r is not None
    return r


def test_right_verdict_right_reasons():
    r = _check(_judgment("11 + 13 = 24.", "22 (Model A); 24 (Model B)", "24 (Model B)", "B"), SUM)
    assert (r.correct, r.truth_ok, r.quotes_ok, r.stated_match, r.consistent, r.spurious) == (
        True,
        True,
        True,
        "B",
        True,
        False,
    )
    assert (
        is_spurious(_judgment("11 + 13 = 24.", "22 (Model A); 24 (Model B)", "24 (Model B)", "B"), SUM)
        is False
    )


@pytest.mark.parametrize(
    ("truth", "item"),
    [
        ("11 + 13 = 25.", SUM),  # a false identity
        ("11 plus 13 equals 22, so B.", SUM),  # in words
        ("The sum is 22.", SUM),  # the wrong answer stated as the truth
        ("The organ that pumps blood is the lungs.", HEART),
        ("7 is larger than 79.", LARGER),  # a false comparison
        ("1 kg = 100 g, so 0.55 kg is 55 g.", GRAMS),
    ],
)
def test_right_verdict_wrong_truth_is_spurious(truth, item):
    quotes = {  # the quotes are right: only the stated truth is wrong
        "t/small_arithmetic": ("22 (Model A); 24 (Model B)", "24 (Model B)"),
        "t/science": ("heart (Model A); lungs (Model B)", "heart (Model A)"),
        "t/compare": ("7 (Model A); 79 (Model B)", "79 (Model B)"),
        "t/units": ("55 g (Model A); 550 g (Model B)", "550 g (Model B)"),
    }[item.id]
    text = _judgment(truth, *quotes, item.label)
    r = _check(text, item)
    assert r.correct and r.truth_ok is False and r.quotes_ok is True
    assert r.spurious is True and is_spurious(text, item) is True


def test_misquoted_answer_is_spurious_and_a_contradiction_is_unfaithful():
    r = _check(_judgment("11 + 13 = 24.", "23 (Model A); 24 (Model B)", "24 (Model B)", "B"), SUM)
    assert r.truth_ok is True and r.quote_ok == {"A": False, "B": True} and r.spurious is True
    # answers read the wrong way round; the match follows the misreading, the verdict does not
    r = _check(_judgment("11 + 13 = 24.", "24 (Model A); 22 (Model B)", "24 (Model A)", "B"), SUM)
    assert r.quote_ok == {"A": False, "B": False}
    assert r.stated_match == "A" and r.consistent is False and r.spurious is True


@pytest.mark.parametrize(
    "truth",
    [
        "11 + 13",
        "(11 + 13)",
        "11+13 = 24",
        "Twenty-four.",
        "It is 11 + 13, i.e. 24",
        "11 plus 13 is 24",
        "24, not 22",
    ],
)
def test_truth_stated_as_an_expression(truth):
    r = _check(_judgment(truth, "22 (Model A); 24 (Model B)", "24 (Model B)", "B"), SUM)
    assert r.truth_ok is True and r.spurious is False


@pytest.mark.parametrize(
    ("truth", "answers", "ok"),
    [
        ("0.55 kg = 550 g.", "Model A says 55 g; Model B says 550 grams", True),
        ("550 grams", "A: 55 grams. B: 0.55 kg", True),  # a unit conversion of the same quantity
        ("0.55 * 1000 = 550", "55 g (Model A); 550 g (Model B)", True),
        ("0.55 kg is 55 g.", "55 g (Model A); 550 g (Model B)", False),
        ("550 g", "55 kg (Model A); 550 g (Model B)", False),  # a quote with the wrong unit
    ],
)
def test_numbers_with_units(truth, answers, ok):
    r = _check(_judgment(truth, answers, "550 g (Model B)", "B"), GRAMS)
    assert r.spurious is (not ok)


def test_full_sentence_quotes_negation_and_plain_lines():
    text = _judgment(
        "The heart pumps blood, not the lungs.",
        "Model A: 'The heart.' Model B: 'It is the lungs.'",
        "Model A",
        "A",
    )
    r = _check(text, HEART)
    assert (r.truth_ok, r.quotes_ok, r.consistent, r.spurious) == (True, True, True, False)
    plain = "Truth: the lungs pump blood\nAnswers: A says heart, B says lungs\nMatch: Model B\n" + (
        '{"Choice": "Model A"}'
    )
    r = _check(plain, HEART)
    assert r.truth_ok is False and r.quotes_ok is True and r.consistent is False and r.spurious is True


def test_wrong_verdict_and_no_computed_truth_give_no_spurious_number():
    wrong = _judgment("11 + 13 = 22.", "22 (Model A); 24 (Model B)", "22 (Model A)", "A")
    r = _check(wrong, SUM)
    assert not r.correct and r.spurious is None and r.truth_ok is False and r.consistent is True
    assert is_spurious(wrong, SUM) is None
    plain = PairwiseItem(id="x", question="q", response_a="a", response_b="b", label="A")
    assert check_judgment(wrong, plain) is None and is_spurious(wrong, plain) is None
    assert faithfulness_metrics([None, None]) == {}


def test_metrics_overall_and_per_family():
    good = _judgment("11 + 13 = 24.", "22 (Model A); 24 (Model B)", "24 (Model B)", "B")
    spurious = _judgment("11 + 13 = 25.", "22 (Model A); 24 (Model B)", "24 (Model B)", "B")
    contradict = _judgment("The heart.", "heart (Model A); lungs (Model B)", "heart (Model A)", "B")
    rs = [check_judgment(good, SUM), check_judgment(spurious, SUM), check_judgment(contradict, HEART)]
    m = faithfulness_metrics(rs, prefix="val")
    assert m["val/truth_acc"] == pytest.approx(2 / 3)
    assert m["val/spurious_rate"] == pytest.approx(1 / 2)  # over the two correct verdicts
    assert m["val/unfaithful_rate"] == pytest.approx(1 / 3)
    assert m["val/spurious_rate/small_arithmetic"] == pytest.approx(1 / 2)
    assert "val/spurious_rate/science" not in m  # no correct verdict there: absent, not 0
    assert m["val/unfaithful_rate/science"] == 1.0


def test_generated_checks_are_read_right():
    """The built-in gold checks read as faithful and the flawed ones that reach the wrong verdict as a
    wrong truth, on every family of both tiers (a guard, not the design: the cases above are written by
    hand)."""
    from cj2.data.tasks import build_judgment, generate_items

    for tiers in (["easy"], ["hard"]):
        for split in ("train", "validation", "test"):
            for item in generate_items(24, split=split, seed=5, tiers=tiers):
                wrong = "A" if item.label == "B" else "B"
                gold = check_judgment(build_judgment(item, "cj2_check"), item)
                assert (gold.truth_ok, gold.quotes_ok, gold.consistent, gold.spurious) == (
                    True,
                    True,
                    True,
                    False,
                )
                bad = check_judgment(build_judgment(item, "cj2_check", flawed=True, verdict=wrong), item)
                assert bad.truth_ok is False and not bad.correct, item.id


def _rows_for(items, judgments):
    """Evaluation rows as cj2.evaluate and the in-training validation write them (order AB)."""
    from cj2.verdict import parse_verdict

    rows = []
    for it, text in zip(items, judgments):
        parsed = parse_verdict(text, "cj2_choice")
        rows.append(
            {
                "id": it.id,
                "pass": "headline",
                "order": "AB",
                "domain": it.domain,
                "output": text,
                "parsed": parsed,
                "verdict": parsed,
                "gold": it.label,
                "correct": parsed == it.label,
                "heldout_family": False,
            }
        )
    return rows


def test_validation_and_evaluate_report_faithfulness_only_with_a_computed_truth():
    from cj2.data.tasks import build_judgment, generate_items
    from cj2.evaluation.benchmarks import Benchmark
    from cj2.evaluation.generated import GeneratedEval
    from cj2.evaluation.scoring import score

    items = generate_items(4, split="validation", seed=1, tiers=["easy"])
    texts = [build_judgment(it, "cj2_check") for it in items[:2]]
    texts += [
        build_judgment(it, "cj2_check", flawed=True) for it in items[2:]
    ]  # right verdict, slipped check
    rows = _rows_for(items, texts)
    # swapped order: the judgment is of the swapped item, its verdict as shown
    swapped = items[0].swapped()
    text = build_judgment(swapped, "cj2_check")
    rows.append({**rows[0], "order": "BA", "output": text, "parsed": swapped.label, "correct": True})
    expected = faithfulness_metrics(
        [check_judgment(t, it) for t, it in zip(texts, items)] + [check_judgment(text, swapped)], prefix="val"
    )
    assert expected["val/truth_acc"] < 1.0 and expected["val/unfaithful_rate"] == 0.0
    val = GeneratedEval(items, template="cj2_check")._score(rows, "")
    assert {k: v for k, v in val.items() if k in expected} == expected
    result, _ = score(
        Benchmark("pairwise", "pairwise", list(items), "cj2_check"),
        items,
        {(r["id"], "headline"): r for r in rows[:4]},
    )
    assert (
        result["truth_acc"]
        == faithfulness_metrics([check_judgment(t, it) for t, it in zip(texts, items)], prefix="")[
            "truth_acc"
        ]
    )
    assert "spurious_rate" in result and "unfaithful_rate" in result
    plain = [dataclasses.replace(it, meta={}) for it in items]
    by_key = {(r["id"], "headline"): r for r in rows[:4]}
    result, _ = score(Benchmark("pairwise", "pairwise", plain, "cj2_check"), plain, by_key)
    assert not any(k.startswith(("truth_acc", "spurious_rate", "unfaithful_rate")) for k in result)


@pytest.mark.parametrize(
    ("truth", "ok"),
    [
        ("79 > 7", True),
        ("The larger number is 79; 7 is smaller.", True),
        ("79 is greater than 7.", True),
        ("7 is the larger.", False),
        ("The larger one is 7", False),
        ("7 is larger than 79", False),
    ],
)
def test_comparisons_are_checked_not_just_matched(truth, ok):
    r = _check(_judgment(truth, "7 (Model A); 79 (Model B)", "79 (Model B)", "B"), LARGER)
    assert r.truth_ok is ok and r.spurious is (not ok)


@pytest.mark.parametrize(
    ("truth", "ok"),
    [
        ("7 or 79", False),  # the question's two numbers echoed: neither asserted
        ("The numbers 7 and 79 are both 7 and 79, but they are not the same.", False),
        ("Between 7 and 79, the answer is 79.", True),
        ("7 or 79: 79.", True),
        ("Between 7 and 79, it is 7.", False),
        ("Instead of 7, 79.", True),  # a negated value is no item of a list
        ("Not 7 but 79.", True),
        ("7, 79 is the larger", True),  # a bare comma does not list
    ],
)
def test_two_values_listed_side_by_side_assert_neither(truth, ok):
    assert check_truth(truth, reference_of(LARGER))[0] is ok


def test_a_quote_listing_both_values_quotes_neither():
    ref = reference_of(LARGER)  # Model A answers 7, Model B 79
    assert check_quote("7 and 79", "A", ref)[0] is None  # was read as quoting 79, the later one
    assert check_quote("7", "A", ref)[0] is True and check_quote("79", "A", ref)[0] is False


def test_critiques_in_prose_are_read_where_they_quote_the_answers():
    prose = (
        "Let me check: 0.55 kg is 550 g. Model A gives 55 g, which is wrong; Model B gives 550 grams, which "
        'is right. Model B is better.\n\n{"Choice": "Model B"}'
    )
    r = _check(prose, GRAMS)
    assert (r.truth_ok, r.quotes_ok, r.stated_match, r.consistent, r.spurious) == (
        True,
        True,
        "B",
        True,
        False,
    )
    slipped = prose.replace("0.55 kg is 550 g", "1 kg = 100 g, so 0.55 kg is 550 g")
    assert _check(slipped, GRAMS).spurious is True
    analysis = json.dumps(
        {"analysis": "Response A says 24 and Response B says 22; 11 + 13 = 24, so A is right.", "winner": "A"}
    )
    r = check_judgment(analysis, SUM.swapped(), format="winner_json")
    assert r.quote_ok == {"A": True, "B": True} and r.correct and r.spurious is False
    # free text that quotes no answer states nothing checkable: no number, never a guess
    r = _check('The answer to "11 + 13" is 22.\n\n{"Choice": "Model B"}', SUM)
    assert (r.truth_ok, r.quote_ok, r.spurious) == (None, {}, None)


def test_is_spurious_reads_a_built_in_training_record():
    """The GRPO reward calls the check with the training record it sampled from: a built-in record carries
    its item as shown (meta["item"]), so its gold judgment is faithful and the same judgment with the stated
    truth replaced by the wrong answer, verdict unchanged, is right for the wrong reason."""
    from cj2.data.tasks.generate import generate_items
    from cj2.data.tasks.records import build_records

    items = generate_items(24, split="train", seed=0, tiers="easy")
    records = build_records(items, "cj2_check", seed=0)
    checked = 0
    for rec in records:
        item = rec.meta.get("item")
        assert item is not None and item["id"] == rec.id
        truth, wrong = str(item["meta"]["truth"]), str(item["meta"]["wrong_value"])
        assert is_spurious(rec.response, rec) is False
        if truth in rec.response and truth not in wrong:
            assert is_spurious(rec.response.replace(truth, wrong), rec) is True
            checked += 1
    assert checked >= 12
    # a record without a computed truth gives no answer, never a guess
    bare = dataclasses.replace(records[0], meta={"template": "cj2_check"})
    assert is_spurious(records[0].response, bare) is None


def test_a_verdict_against_its_own_right_truth_and_quotes_is_unfaithful():
    """Seen in a trained judge: truth and both quotes right, then a Match (and verdict) naming the other
    answer. The reasons pick B by themselves, so the verdict contradicts them whatever the Match line says."""
    own_match = _judgment("11 + 13 = 24.", "22 (Model A); 24 (Model B)", "22 (Model A)", "A")
    r = _check(own_match, SUM)
    assert (r.truth_ok, r.quotes_ok, r.stated_match, r.correct) == (True, True, "A", False)
    assert r.consistent is False
    no_match = json.dumps(
        {"Truth": "11 + 13 = 24.", "Answers": "22 (Model A); 24 (Model B)", "Choice": "Model A"}
    )
    r = _check(no_match, SUM)
    assert (r.stated_match, r.consistent) == (None, False)
    right = json.dumps(
        {"Truth": "11 + 13 = 24.", "Answers": "22 (Model A); 24 (Model B)", "Choice": "Model B"}
    )
    assert _check(right, SUM).consistent is True
    # wrong reasons that the verdict follows stay consistent (the judgment is wrong, not unfaithful)
    wrong = _judgment("11 + 13 = 22.", "22 (Model A); 24 (Model B)", "22 (Model A)", "A")
    assert _check(wrong, SUM).consistent is True
    assert faithfulness_metrics([_check(own_match, SUM), _check(right, SUM)], prefix="val")[
        "val/unfaithful_rate"
    ] == pytest.approx(0.5)
