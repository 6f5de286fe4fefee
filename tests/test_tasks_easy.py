"""The easy tier of the built-in tasks: truth recomputed by an independent route, no question of validation
or test in train, no surface cue, judgments in the short check and direct formats."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from cj2.data.tasks import (
    FAMILIES,
    build_judgment,
    build_records,
    generate_items,
    held_out_families,
    split_families,
)
from cj2.data.tasks.easy import ANTONYMS, CAPITALS, PLURALS, SCIENCE
from cj2.data.templates import get_template, template_names
from cj2.verdict import parse_verdict

SPLITS = ("train", "validation", "test")
EASY = ["easy"]


@pytest.fixture(scope="module")
def easy_items():
    return {split: generate_items(800, split=split, seed=0, tiers=EASY) for split in SPLITS}


# ------------------------------------------------------------ independent truth

_CAPITAL = {c: cap for c, cap, _ in CAPITALS}
_OPPOSITE = {**{a: b for a, b, _, _ in ANTONYMS}, **{b: a for a, b, _, _ in ANTONYMS}}
_PLURAL = {s: p for s, p, _, _ in PLURALS}
_SCIENCE = {q: t for q, _, t, _ in SCIENCE}
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
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


def _follows(instruction: str, text: str) -> bool:
    """Whether ``text`` follows ``instruction``, read from the instruction's words alone."""
    if m := re.search(r"uses the word '(\w+)'", instruction):
        return re.search(rf"\b{m.group(1)}\b", text) is not None
    if "only capital letters" in instruction:
        return text == text.upper()
    if "only lowercase letters" in instruction:
        return text == text.lower()
    if m := re.search(r"List exactly (\d+)", instruction):
        return len([p for p in text.split(",") if p.strip()]) == int(m.group(1))
    n_words = len(text.rstrip(".").split())
    if m := re.search(r"fewer than (\d+) words", instruction):
        return n_words < int(m.group(1))
    if m := re.search(r"at least (\d+) words", instruction):
        return n_words >= int(m.group(1))
    raise AssertionError(f"unknown instruction {instruction!r}")


def recompute(item) -> str | None:
    """The correct value from the question's inputs, by a route sharing no code with the generators
    (None for instruction items, which are checked with :func:`_follows`)."""
    p, fam, q = item.meta["params"], item.domain, item.question
    if fam == "small_arithmetic":
        a, b = p["a"], p["b"]
        return str(a + b if p["subtask"] == "add" else a - b)
    if fam == "compare":
        return str(max(p["x"], p["y"]) if "larger" in q else min(p["x"], p["y"]))
    if fam == "capitals":
        return _CAPITAL[p["country"]]
    if fam == "antonyms":
        return _OPPOSITE[p["word"]]
    if fam == "plurals":
        return _PLURAL[p["word"]]
    if fam == "science":
        return _SCIENCE[p["question"]]
    if fam == "reading":
        passage, question = p["passage"], p["question"]
        if m := re.match(r"What color is (\w+)'s (\w+)\?", question):
            return re.search(
                rf"{m.group(1)} is \d+ years old and has (?:.*?)\ban? (\w+) {m.group(2)}\b", passage
            ).group(1)
        if m := re.match(r"Who has the (\w+ \w+)\?", question):
            return re.search(rf"(\w+) is \d+ years old and has [^.]*\ban? {m.group(1)}\b", passage).group(1)
        name = re.match(r"How old is (\w+)\?", question).group(1)
        return re.search(rf"{name} is (\d+) years old", passage).group(1)
    if fam == "first_letter":
        w = p["word"]
        return f"'{w[0]}'" if "first" in q else f"'{w[-1]}'"
    if fam == "next_in_sequence":
        x = p["item"]
        for seq in (_DAYS, _MONTHS):
            if x in seq:
                return seq[(seq.index(x) + 1) % len(seq)]
        return str(int(x) + 1)
    if fam == "instructions":
        return None
    raise AssertionError(f"no recomputation for family {fam}")


@pytest.mark.parametrize("split", SPLITS)
def test_truth_is_recomputed_independently_for_every_easy_family(split, easy_items):
    seen = Counter()
    for it in easy_items[split]:
        expected = recompute(it)
        if expected is None:  # instruction items: the right response follows it, the wrong one does not
            instruction = it.meta["params"]["instruction"]
            assert _follows(instruction, it.meta["truth"]), it
            assert not _follows(instruction, it.meta["wrong_value"]), it
        else:
            assert it.meta["truth"] == expected, it
            assert it.meta["wrong_value"] != expected, it
        seen[it.domain] += 1
    assert set(seen) == set(split_families(split, EASY))


def test_easy_and_hard_tiers_and_held_out_families():
    easy_train = set(split_families("train", EASY))
    assert {
        "small_arithmetic",
        "compare",
        "capitals",
        "antonyms",
        "plurals",
        "science",
        "instructions",
        "reading",
    } == easy_train
    assert held_out_families("validation", EASY) == ["first_letter"]
    assert held_out_families("test", EASY) == ["next_in_sequence"]
    assert held_out_families("validation") == ["percentages"]  # the hard tier, the default
    assert all(FAMILIES[f].tier == "easy" for f in easy_train)
    both = split_families("train", ["easy", "hard"])
    assert set(both) == easy_train | set(split_families("train"))
    with pytest.raises(ValueError, match="tiers"):
        generate_items(2, tiers=["medium"])


def _question_key(it) -> str:
    return f"{it.domain}|{it.meta['params']['key']}"


def test_no_question_of_validation_or_test_appears_in_train(easy_items):
    # whatever the phrasing: the underlying question (the fact, the numbers, the instruction) is disjoint
    keys = {split: {_question_key(it) for it in items} for split, items in easy_items.items()}
    texts = {split: {it.question for it in items} for split, items in easy_items.items()}
    for held in ("validation", "test"):
        assert not keys[held] & keys["train"], sorted(keys[held] & keys["train"])[:5]
        assert not texts[held] & texts["train"]
    assert not keys["validation"] & keys["test"]
    # and the fact tables are really split: each split owns some rows of every table
    for fam in ("capitals", "antonyms", "plurals", "science"):
        for split in SPLITS:
            assert any(it.domain == fam for it in easy_items[split]), (fam, split)


def test_the_leak_test_can_fail():
    # Guard against a vacuous test: the same generator with the split check switched off does leak.
    import cj2.data.tasks as tasks

    fam = FAMILIES["capitals"]
    open_fam = tasks.Family(fam.name, fam.description, fam.subtasks, fam.make, fam.phrasings, tier="easy")
    saved = FAMILIES["capitals"]
    FAMILIES["capitals"] = open_fam
    try:
        train = {_question_key(it) for it in generate_items(400, split="train", families=["capitals"])}
        val = {_question_key(it) for it in generate_items(200, split="validation", families=["capitals"])}
    finally:
        FAMILIES["capitals"] = saved
    assert train & val


@pytest.mark.parametrize("split", SPLITS)
def test_labels_balanced_and_surface_cues_at_chance(split, easy_items):
    items = easy_items[split]
    assert Counter(it.label for it in items) == {"A": 400, "B": 400}

    def last_number(text):
        nums = re.findall(r"\d+", text)
        return int(nums[-1]) if nums else None

    def pick_by(key):
        def pick(it):
            a, b = key(it.response_a), key(it.response_b)
            return "A" if a is None or b is None or a == b else ("A" if a > b else "B")

        return pick

    for name, pick in {
        "longer": pick_by(len),
        "shorter": pick_by(lambda t: -len(t)),
        "larger final number": pick_by(last_number),
    }.items():
        acc = sum(pick(it) == it.label for it in items) / len(items)
        assert 0.44 <= acc <= 0.56, f"{split}: {name} scores {acc:.3f}"


@pytest.mark.parametrize("name", ["cj2_check", "cj2_short", "cj2_critical", "cj2_direct"])
def test_gold_and_requested_judgments_reach_their_verdict(name, easy_items):
    template = get_template(name)
    for it in easy_items["validation"][:120]:
        assert parse_verdict(build_judgment(it, template), template.format) == it.label
        for flawed in (False, True):
            for verdict in ("A", "B"):
                text = build_judgment(it, template, flawed=flawed, verdict=verdict)
                assert parse_verdict(text, template.format) == verdict


def test_check_format_states_the_truth_then_each_answer_then_the_match(easy_items):
    import json

    for it in easy_items["train"][:200]:
        text = build_judgment(it, "cj2_check")
        body = json.loads(text)
        assert list(body) == ["Truth", "Answers", "Match", "Choice"], text
        truth = it.meta.get("truth_view", it.meta["truth"])
        wrong = it.meta.get("wrong_view", it.meta["wrong_value"])
        if it.domain != "instructions":
            assert truth.strip("'") in body["Truth"], (truth, text)
        shown = {it.label: truth, {"A": "B", "B": "A"}[it.label]: wrong}
        assert body["Answers"] == f"{shown['A']} (Model A); {shown['B']} (Model B)"
        assert body["Match"] == f"{truth} (Model {it.label})"
        assert body["Choice"] == f"Model {it.label}"
        assert len(text) < 260, text  # short enough for a 135M model to write
    # a flawed judgment that believes the wrong value matches the wrong answer, and chooses it
    it = easy_items["train"][0]
    other = {"A": "B", "B": "A"}[it.label]
    body = json.loads(build_judgment(it, "cj2_check", flawed=True, verdict=other))
    assert body["Match"].endswith(f"(Model {other})") and body["Choice"] == f"Model {other}"


def test_direct_template_is_the_verdict_alone(easy_items):
    recs = build_records(easy_items["train"][:10], ["cj2_direct"])
    for rec, it in zip(recs, easy_items["train"][:10]):
        assert rec.response == f'{{"Choice": "Model {it.label}"}}'
        assert "verdict only" in rec.messages[-1]["content"]
    assert "cj2_direct" in template_names("pairwise") and "cj2_check" in template_names("pairwise")


def test_simulated_teacher_judges_easy_items():
    from cj2.generation.simulated import SimulatedTeacher

    teacher = SimulatedTeacher(p_correct=0.7, p_flawed_given_correct=0.1, p_sound_given_wrong=0.1)
    items = generate_items(40, split="train", seed=1, tiers=EASY)
    right = 0
    for i, it in enumerate(items):
        text, meta = teacher.judge(it, "cj2_check", seed=i)
        assert parse_verdict(text, "cj2_choice") == meta["verdict"]
        right += meta["verdict"] == it.label
    assert 0.4 < right / len(items) < 1.0


def test_datamodule_eval_items_separate_trained_and_held_out_families():
    from cj2.data.datamodule import JudgeDataModule

    dm = JudgeDataModule(None, builtin={"n_train": 8, "n_val": 4, "seed": 0, "tiers": ["easy"]})
    assert dm.heldout_families() == ["first_letter"]
    items = dm.eval_items(16, n_unseen=6)
    assert len(items) == 22
    assert {it.domain for it in items[:16]} <= set(split_families("train", EASY))
    assert {it.domain for it in items[16:]} == {"first_letter"}
    train_keys = {_question_key(it) for it in dm._builtin_items("train", 400)}
    assert not {_question_key(it) for it in items[:16]} & train_keys


def test_both_orders_puts_each_training_question_in_both_orders():
    from cj2.data.datamodule import SWAP_SUFFIX, JudgeDataModule, pair_key

    dm = JudgeDataModule(
        None, builtin={"n_train": 10, "n_val": 4, "seed": 0, "tiers": ["easy"], "both_orders": True}
    )
    items = dm._builtin_items("train", 10)
    assert len(items) == 10 and len({it.id for it in items}) == 10
    for first, second in zip(items[::2], items[1::2]):
        assert second.id == first.id + SWAP_SUFFIX and pair_key(second.id) == first.id
        assert (second.response_a, second.response_b) == (first.response_b, first.response_a)
        assert {first.label, second.label} == {"A", "B"} and second.question == first.question
    assert pair_key(items[1].id + "#s3") == items[0].id
    # validation is never augmented, and the option is off by default
    assert not any(SWAP_SUFFIX in it.id for it in dm._builtin_items("validation", 10))
    plain = JudgeDataModule(None, builtin={"n_train": 10, "n_val": 4, "seed": 0, "tiers": ["easy"]})
    assert not any(SWAP_SUFFIX in it.id for it in plain._builtin_items("train", 10))
