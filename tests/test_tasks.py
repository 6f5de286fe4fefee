"""Built-in verifiable tasks: computed truth, realistic wrong answers without surface cues, held-out
splits, and judgments whose reasoning checks the answers."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

import cj2.data.tasks as tasks_module
from cj2.data.schema import PairwiseItem, PreferenceRecord, TrainRecord
from cj2.data.tasks import (
    FAMILIES,
    SPLITS,
    build_judgment,
    build_preference_records,
    build_records,
    builtin_dataset,
    generate_items,
    pointwise_views,
)
from cj2.data.templates import TEMPLATES, get_template, template_names
from cj2.verdict import parse_verdict

PAIRWISE = template_names("pairwise")
OTHER = {"A": "B", "B": "A"}


@pytest.fixture(scope="module")
def items_1000() -> dict[str, list[PairwiseItem]]:
    return {split: generate_items(1000, split=split, seed=0) for split in SPLITS}


@pytest.fixture(scope="module")
def items_1000_seed1() -> dict[str, list[PairwiseItem]]:
    return {split: generate_items(1000, split=split, seed=1) for split in SPLITS}


def sample_items(per_split: int = 40) -> list[PairwiseItem]:
    return [it for split in SPLITS for it in generate_items(per_split, split=split, seed=11)]


# ------------------------------------------------------------ independent truth

_BASE = {
    "km": Decimal(1000),
    "m": Decimal(1),
    "cm": Decimal("0.01"),
    "mm": Decimal("0.001"),
    "kg": Decimal(1000),
    "g": Decimal(1),
    "L": Decimal(1000),
    "mL": Decimal(1),
    "h": Decimal(3600),
    "min": Decimal(60),
    "s": Decimal(1),
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def number(text: str) -> Decimal:
    """The first number in a value text: '2500 m' -> 2500, '15%' -> 15."""
    return Decimal(re.search(r"-?\d+(?:\.\d+)?", text).group())


def recompute(item: PairwiseItem) -> Decimal | str:
    """The answer from the item's inputs, by a route that shares no code with cj2.data.tasks."""
    p, fam = item.meta["params"], item.domain
    if fam == "arithmetic":
        x, y, z = p["x"], p["y"], p["z"]
        return Decimal(
            {"x*y+z": x * y + z, "x+y*z": x + y * z, "x*y-z": x * y - z, "(x+y)*z": (x + y) * z}[p["form"]]
        )
    if fam == "unit_conversion":
        return Decimal(p["value"]) * _BASE[p["from"]] / _BASE[p["to"]]
    if fam == "sorting":
        return ", ".join(str(v) for v in sorted(p["numbers"], reverse=p["order"] == "desc"))
    if fam == "counting":
        if p["subtask"] == "vowel":
            return Decimal(sum(p["text"].count(v) for v in "aeiou"))
        return Decimal(p["text"].count(p["target"]))
    if fam == "strings":
        w = p["word"]
        if p["subtask"] == "reverse":
            return "'" + "".join(reversed(w)) + "'"
        if p["subtask"] == "nth":
            return f"'{w[p['n'] - 1]}'"
        return "yes" if all(w[i] == w[-1 - i] for i in range(len(w))) else "no"
    if fam == "dates":
        start = dt.date.fromisoformat(p.get("date") or p["start"])
        if p["subtask"] == "weekday":
            return calendar.day_name[start.weekday()]
        if p["subtask"] == "between":
            return Decimal((dt.date.fromisoformat(p["end"]) - start).days)
        end = start + dt.timedelta(days=p["days"])
        return f"{end.day} {_MONTHS[end.month - 1]} {end.year}"
    if fam == "percentages":
        if p["subtask"] == "of":
            return Decimal(p["p"]) * p["N"] / 100
        if p["subtask"] == "increase":
            return p["N"] * (1 + Decimal(p["p"]) / 100)
        if p["subtask"] == "decrease":
            return p["N"] * (1 - Decimal(p["p"]) / 100)
        return Decimal(p["x"]) * 100 / p["N"]
    raise AssertionError(f"no recomputation for family {fam}")


def as_value(item: PairwiseItem, text: str) -> Decimal | str:
    return text if isinstance(recompute(item), str) else number(text)


@pytest.mark.parametrize("split", list(SPLITS))
def test_truth_is_recomputed_independently_for_every_family(split):
    items = generate_items(400, split=split, seed=4)
    seen = Counter()
    for it in items:
        expected = recompute(it)
        assert as_value(it, it.meta["truth"]) == expected, it
        assert as_value(it, it.meta["wrong_value"]) != expected, it  # the wrong answer is really wrong
        seen[(it.domain, it.meta["subtask"])] += 1
    # every family of the split, and within it several subtasks, is exercised
    assert {fam for fam, _ in seen} == set(SPLITS[split])
    for fam in SPLITS[split]:
        assert len({sub for f, sub in seen if f == fam}) >= 2, fam


def test_hand_computed_examples_of_the_recomputation():
    def fake(domain, **params):
        return PairwiseItem(
            id="x",
            question="q",
            response_a="a",
            response_b="b",
            label="A",
            domain=domain,
            meta={"params": params},
        )

    assert recompute(fake("arithmetic", form="x*y+z", x=17, y=3, z=8)) == 59
    assert recompute(fake("arithmetic", form="(x+y)*z", x=12, y=13, z=4)) == 100
    assert recompute(fake("unit_conversion", value="2.5", **{"from": "km", "to": "m"})) == 2500
    assert recompute(fake("unit_conversion", value="90", **{"from": "min", "to": "h"})) == Decimal("1.5")
    assert recompute(fake("dates", subtask="weekday", date="2023-03-14")) == "Tuesday"
    assert recompute(fake("dates", subtask="between", start="2023-03-14", end="2023-04-10")) == 27
    assert recompute(fake("dates", subtask="add", start="2024-02-20", days=10)) == "1 March 2024"  # leap year
    assert recompute(fake("percentages", subtask="increase", p=25, N=80)) == 100
    assert recompute(fake("strings", subtask="nth", word="keyboard", n=4)) == "'b'"


def test_responses_state_their_values_and_the_label_marks_the_correct_one():
    for it in sample_items(60):
        right = it.response_a if it.label == "A" else it.response_b
        wrong = it.response_b if it.label == "A" else it.response_a
        assert it.meta["truth"] in right
        assert it.meta["wrong_value"] in wrong
        assert it.source == "builtin" and it.language == "en" and it.domain == it.meta["family"]
        assert it.meta["error_kind"]


def test_questions_show_their_inputs():
    for it in sample_items(60):
        p = it.meta["params"]
        if it.domain == "arithmetic":
            assert all(str(p[k]) in it.question for k in "xyz")
        elif it.domain == "sorting":
            assert all(str(v) in it.question for v in p["numbers"])
        elif it.domain in ("counting", "strings"):
            assert (p.get("text") or p["word"]) in it.question


# ----------------------------------------------------------------- the generator


def test_same_seed_same_items_and_prefix_stability():
    a = generate_items(30, split="train", seed=5)
    b = generate_items(30, split="train", seed=5)
    assert a == b
    assert generate_items(60, split="train", seed=5)[:30] == a


def test_different_seeds_give_different_items():
    a = generate_items(40, split="train", seed=0)
    b = generate_items(40, split="train", seed=1)
    assert sum(x.question != y.question for x, y in zip(a, b)) >= 35
    assert [x.domain for x in a] == [y.domain for y in b]  # the family schedule is fixed; contents vary


def test_ids_are_stable_and_unique():
    items = generate_items(20, split="validation", seed=3)
    assert [it.id for it in items] == [f"builtin/validation/{it.domain}/3/{i}" for i, it in enumerate(items)]
    assert len({it.id for it in generate_items(500, split="train", seed=3)}) == 500


@pytest.mark.parametrize("split", list(SPLITS))
def test_labels_are_exactly_balanced(split, items_1000):
    items = items_1000[split]
    assert Counter(it.label for it in items) == {"A": 500, "B": 500}
    for fam in SPLITS[split]:  # and per family, since pairs share a family
        c = Counter(it.label for it in items if it.domain == fam)
        assert c["A"] == c["B"]
    odd = generate_items(7, split=split, seed=2)
    assert abs(Counter(it.label for it in odd)["A"] - 3.5) == 0.5


def test_families_and_splits():
    assert len(FAMILIES) >= 6
    assert set(SPLITS) == {"train", "validation", "test"}
    for fams in SPLITS.values():
        assert set(fams) <= set(FAMILIES)
        assert len(fams) >= 3
    # validation and test each hold out a whole family nobody else sees
    for split in ("validation", "test"):
        others = set().union(*(set(SPLITS[s]) for s in SPLITS if s != split))
        assert set(SPLITS[split]) - others, split


def test_question_phrasings_are_disjoint_between_splits(items_1000):
    phrasings = {split: {it.meta["phrasing"] for it in items} for split, items in items_1000.items()}
    hard = [
        f for f in FAMILIES.values() if f.tier == "hard"
    ]  # the default tier; the easy one: test_tasks_easy
    declared = {split: {p.id for f in hard for p in f.phrasings_for(split)} for split in SPLITS}
    assert phrasings == declared  # every declared phrasing is used by 1000 items
    for s1 in SPLITS:
        for s2 in SPLITS:
            if s1 < s2:
                assert not phrasings[s1] & phrasings[s2]
                q1 = {it.question for it in items_1000[s1]}
                q2 = {it.question for it in items_1000[s2]}
                assert not q1 & q2
                texts1 = {p.text for f in FAMILIES.values() for p in f.phrasings_for(s1)}
                texts2 = {p.text for f in FAMILIES.values() for p in f.phrasings_for(s2)}
                # phrasing texts are disjoint across splits in both tiers
                assert not texts1 & texts2


def test_family_selection_and_errors():
    items = generate_items(10, split="train", seed=0, families=["sorting"])
    assert {it.domain for it in items} == {"sorting"}
    with pytest.raises(ValueError, match="split"):
        generate_items(4, split="dev")
    with pytest.raises(ValueError, match="unknown task families"):
        generate_items(4, families=["chemistry"])
    with pytest.raises(ValueError, match="not in split 'train'"):
        generate_items(4, split="train", families=["dates"])  # held out to test
    with pytest.raises(ValueError):
        generate_items(-1)
    assert generate_items(0) == []


# ------------------------------------------------------------- surface cues


def last_digit(text: str) -> int | None:
    digits = re.findall(r"\d", text)
    return int(digits[-1]) if digits else None


def last_number(text: str) -> float | None:
    nums = re.findall(r"\d+(?:\.\d+)?", text)
    return float(nums[-1]) if nums else None


def by_comparison(key):
    """A baseline that picks the response whose key is larger (A on ties or when a key is missing)."""

    def pick(it: PairwiseItem) -> str:
        a, b = key(it.response_a), key(it.response_b)
        if a is None or b is None or a == b:
            return "A"
        return "A" if a > b else "B"

    return pick


def accuracy(items, pick) -> float:
    return sum(pick(it) == it.label for it in items) / len(items)


def learned_last_digit_table(train_items):
    """The best last-digit-only judge: the majority label per (last digit of A, last digit of B), fitted on
    other items. If last digits carried the label, it would beat chance on fresh items."""
    table = defaultdict(Counter)
    for it in train_items:
        table[(last_digit(it.response_a), last_digit(it.response_b))][it.label] += 1

    def pick(it: PairwiseItem) -> str:
        c = table.get((last_digit(it.response_a), last_digit(it.response_b)), Counter())
        return "B" if c["B"] > c["A"] else "A"

    return pick


CHANCE = (0.44, 0.56)  # 0.5 +- 0.06 on 1000 items: about 3.8 binomial standard deviations


@pytest.mark.parametrize("split", list(SPLITS))
def test_surface_cue_baselines_score_at_chance(split, items_1000, items_1000_seed1):
    items = items_1000[split]
    baselines = {
        "longer": by_comparison(len),
        "shorter": by_comparison(lambda t: -len(t)),
        "larger last digit": by_comparison(last_digit),
        "smaller last digit": by_comparison(lambda t: None if last_digit(t) is None else -last_digit(t)),
        "larger final number": by_comparison(last_number),
        "learned last-digit table": learned_last_digit_table(items_1000_seed1[split]),
    }
    for name, pick in baselines.items():
        acc = accuracy(items, pick)
        assert CHANCE[0] <= acc <= CHANCE[1], f"{split}: {name} baseline scores {acc:.3f}"


def test_the_baselines_can_detect_a_cue():
    # Guard against a vacuous test: give the right answer a telltale length and the baseline finds it.
    items = generate_items(200, split="train", seed=0)
    pad = " I double-checked every step of this carefully."

    def cue(it: PairwiseItem) -> PairwiseItem:
        return PairwiseItem(
            **{
                **it.__dict__,
                "response_a": it.response_a + (pad if it.label == "A" else ""),
                "response_b": it.response_b + (pad if it.label == "B" else ""),
            }
        )

    assert accuracy([cue(it) for it in items], by_comparison(len)) > 0.75


def test_the_longer_answer_is_sometimes_right_sometimes_wrong(items_1000):
    items = items_1000["train"]
    right_longer = sum(
        len(it.response_a if it.label == "A" else it.response_b)
        > len(it.response_b if it.label == "A" else it.response_a)
        for it in items
    )
    assert 400 <= right_longer <= 600


def test_errors_are_realistic_and_varied(items_1000):
    kinds = defaultdict(set)
    for items in items_1000.values():
        for it in items:
            kinds[it.domain].add(it.meta["error_kind"])
    assert {"precedence", "carry", "multiplication_slip", "off_by_one"} <= kinds["arithmetic"]
    assert {"unit_factor", "decimal_shift"} <= kinds["unit_conversion"]
    assert {"adjacent_swap", "misplaced"} <= kinds["sorting"]
    assert {"missed_one", "extra_one"} <= kinds["counting"]
    assert {"month_length", "inclusive_count"} <= kinds["dates"]
    # a wrong arithmetic answer is near the truth, not a random number: off by 1 or 10 when the slip is in
    # the last step, by a multiple of the factor when a product follows it
    for it in items_1000["train"]:
        p = it.meta["params"]
        if it.domain == "arithmetic" and it.meta["error_kind"] in ("off_by_one", "carry"):
            gap = abs(int(it.meta["truth"]) - int(it.meta["wrong_value"]))
            step = 1 if it.meta["error_kind"] == "off_by_one" else 10
            assert gap == (step * p["z"] if p["form"] == "(x+y)*z" else step)


# ----------------------------------------------------------------- judgments

_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?) ([-+*/]) (-?\d+(?:\.\d+)?) = (-?\d+(?:\.\d+)?)")


def false_equations(text: str) -> list[str]:
    out = []
    for a, op, b, r in _EQUATION.findall(text):
        a, b, r = Decimal(a), Decimal(b), Decimal(r)
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
        if value != r:
            out.append(f"{a} {op} {b} = {r}")
    return out


def has_step(text: str, step: str) -> bool:
    """``step`` written as a whole in ``text`` (a sentence may capitalise its first word)."""
    return re.search(rf"(?<![\w.]){re.escape(step)}(?!\w|\.\d)", text, flags=re.IGNORECASE) is not None


@pytest.mark.parametrize("name", PAIRWISE)
def test_judgment_reaches_the_gold_verdict_for_every_template(name):
    t = TEMPLATES[name]
    for it in sample_items(24):
        judgment = build_judgment(it, t)
        assert parse_verdict(judgment, t.format) == it.label, judgment
        if t.keys:
            json.loads(judgment)


@pytest.mark.parametrize("name", PAIRWISE)
def test_requested_verdicts_are_reached_sound_or_flawed(name):
    t = TEMPLATES[name]
    for it in sample_items(8):
        for flawed in (False, True):
            for verdict in ("A", "B"):
                judgment = build_judgment(it, t, flawed=flawed, verdict=verdict)
                assert parse_verdict(judgment, t.format) == verdict


def test_sound_judgment_recomputes_the_answer():
    t = get_template("cj2_short")
    for it in sample_items(40):
        judgment = build_judgment(it, t)
        for step in it.meta["check"]["work"]:
            assert has_step(judgment, step), (step, judgment)
        assert it.meta["truth"] in judgment
        assert not false_equations(judgment), judgment


def test_hand_checked_arithmetic_judgment():
    it = next(
        i
        for i in generate_items(40, split="train", seed=0)
        if i.domain == "arithmetic" and i.meta["params"]["form"] == "x*y+z"
    )
    p = it.meta["params"]
    product = p["x"] * p["y"]
    judgment = build_judgment(it, "cj2_short")
    assert f"{p['x']} * {p['y']} = {product}" in judgment
    assert f"{product} + {p['z']} = {product + p['z']}" in judgment
    assert str(product + p["z"]) == it.meta["truth"]


def test_flawed_judgments_carry_a_miscomputed_value_or_missed_constraint():
    t = get_template("cj2_short")
    n_false_eq = 0
    for it in sample_items(40):
        check = it.meta["check"]
        wrong_label = OTHER[it.label]
        misled = build_judgment(it, t, flawed=True, verdict=wrong_label)
        slipped = build_judgment(it, t, flawed=True, verdict=it.label)
        sound = build_judgment(it, t)
        assert parse_verdict(misled, "cj2_choice") == wrong_label
        assert parse_verdict(slipped, "cj2_choice") == it.label
        assert has_step(misled, check["wrong_step"]) and not has_step(sound, check["wrong_step"])
        assert has_step(slipped, check["slip_step"]) and not has_step(sound, check["slip_step"])
        if it.domain == "arithmetic":
            # the slip is a false equation; so is the misleading step unless the mistake is precedence
            assert false_equations(slipped), slipped
            if it.meta["error_kind"] != "precedence":
                assert false_equations(misled), misled
            n_false_eq += 1
    assert n_false_eq > 5


def test_sound_check_with_a_wrong_verdict_misreads_the_answers():
    it = generate_items(2, split="train", seed=0)[0]
    wrong = OTHER[it.label]
    judgment = build_judgment(it, "cj2_short", verdict=wrong)
    check = json.loads(judgment)
    assert parse_verdict(judgment, "cj2_choice") == wrong
    assert it.meta["truth"] in check[f"Check {wrong}"]  # reads the right value at the wrong position
    assert not false_equations(judgment)


def test_judgment_wording_varies_but_is_seeded():
    t = get_template("cj2_short")
    items = generate_items(80, split="train", seed=0)
    openings = Counter()
    for it in items:
        check = json.loads(build_judgment(it, t))
        other = check["Check B"] if it.meta["check"]["work"][0] in check["Check A"] else check["Check A"]
        openings[re.sub(r"[AB]", "X", other.split()[0] + " " + other.split()[1])] += 1
    assert len(openings) >= 3
    assert build_judgment(items[0], t) == build_judgment(items[0], t)
    assert build_judgment(items[0], t, rng=1) == build_judgment(items[0], t, rng=1)


def test_short_judgments_stay_short():
    # SmolLM2 spends ~4 characters per token on this text; < 120 tokens typical means < ~480 characters.
    lengths = sorted(len(build_judgment(it, "cj2_short")) for it in sample_items(60))
    assert lengths[len(lengths) // 2] < 320
    assert lengths[-1] < 480


def test_judgment_argument_errors():
    it = generate_items(1, split="train", seed=0)[0]
    with pytest.raises(ValueError, match="'A' or 'B'"):
        build_judgment(it, "mtbench_pair", verdict="tie")
    plain = PairwiseItem(id="x", question="q", response_a="a", response_b="b", label="A")
    with pytest.raises(ValueError, match="built-in"):
        build_judgment(plain, "cj2_short")
    with pytest.raises(TypeError):
        build_judgment(it, "correctness")


def test_pointwise_views_and_judgments():
    for it in sample_items(10):
        views = pointwise_views(it)
        assert [v.correct for v in views] == [it.label == "A", it.label == "B"]
        assert [v.response for v in views] == [it.response_a, it.response_b]
        for v in views:
            yes = build_judgment(v, "correctness")
            assert parse_verdict(yes, "correctness") == ("yes" if v.correct else "no")
            score = int(parse_verdict(build_judgment(v, "pointwise_score"), "score"))
            assert (score >= 8) if v.correct else (score <= 3)
            flipped = "no" if v.correct else "yes"
            assert (
                parse_verdict(build_judgment(v, "correctness", flawed=True, verdict=flipped), "correctness")
                == flipped
            )
            assert parse_verdict(build_judgment(v, "correctness", verdict=flipped), "correctness") == flipped


# ------------------------------------------------------------------- records


def test_build_records_gold_critiques():
    items = generate_items(20, split="train", seed=2)
    records = build_records(items, seed=2)
    assert all(isinstance(r, TrainRecord) for r in records)
    for it, rec in zip(items, records):
        assert rec.id == it.id and rec.verdict == it.label and rec.format == "cj2_choice"
        assert rec.source == "builtin" and rec.meta["template"] == "cj2_short"
        content = rec.messages[-1]["content"]
        assert it.question in content and it.response_a in content and it.response_b in content
        assert parse_verdict(rec.response, rec.format) == rec.verdict
    assert records == build_records(items, seed=2)


def test_build_records_with_template_diversity():
    items = generate_items(120, split="train", seed=0)
    names = ("cj2_critical", "mtbench_pair", "arena_hard", "judgerbenchv2", "correctness", "pointwise_score")
    records = build_records(items, names, seed=0)
    used = Counter(r.meta["template"] for r in records)
    assert set(used) == set(names)
    assert len({r.id for r in records}) == len(records)
    for rec in records:
        assert rec.format == TEMPLATES[rec.meta["template"]].format
        assert parse_verdict(rec.response, rec.format) == rec.verdict


def test_builtin_dataset_is_generate_then_build():
    assert builtin_dataset("test", 6, seed=9) == build_records(
        generate_items(6, split="test", seed=9), seed=9
    )
    # a lone template name is one template
    assert builtin_dataset("test", 4, template_names="mtbench_pair")[0].format == "brackets"
    assert {it.domain for it in generate_items(4, split="test", families="dates")} == {"dates"}


def test_preference_records_chosen_gold_rejected_flawed():
    items = generate_items(12, split="train", seed=1)
    prefs = build_preference_records(items, ("cj2_short", "correctness"), seed=1)
    assert all(isinstance(p, PreferenceRecord) for p in prefs)
    gold_records = build_records(items, ("cj2_short", "correctness"), seed=1)
    assert [p.chosen for p in prefs] == [r.response for r in gold_records]
    assert [p.id for p in prefs] == [r.id for r in gold_records]
    for p in prefs:
        gold = parse_verdict(p.chosen, p.format)
        rejected = parse_verdict(p.rejected, p.format)
        assert gold is not None and rejected is not None and gold != rejected
        assert p.chosen != p.rejected


def test_no_verdict_marker_is_spelled_in_the_tasks_module():
    files = sorted(Path(tasks_module.__file__).parent.rglob("*.py"))  # every module of the package
    assert len(files) > 1
    for path in files:
        source = path.read_text(encoding="utf-8")
        for marker in ('"Choice": "Model', "[[A]]", "[[B]]", '"winner": "', "Rating: [[", '"Correct": "'):
            assert marker not in source, (path.name, marker)
