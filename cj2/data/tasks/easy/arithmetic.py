"""Easy tier: a sum or difference of two numbers below 20, and which of two numbers is larger or smaller.

Wrong answers: an offset of one or two either way (symmetric), or the other number.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_number
from cj2.data.tasks.base import Family, Problem
from cj2.data.tasks.easy.base import TIER, make_phrasings, make_problem


def _make_small_arithmetic(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["add", "sub"])
    if subtask == "add":
        a, b = rng.randint(2, 19), rng.randint(2, 19)
    else:  # a difference of at least 3, so that an offset of -2 stays positive
        b = rng.randint(2, 16)
        a = b + rng.randint(3, 19 - b)
    op = "+" if subtask == "add" else "-"
    truth = a + b if subtask == "add" else a - b
    delta = rng.choice([-2, -1, 1, 2])  # symmetric: the wrong value is as often above as below
    wrong = truth + delta
    kind = "off_by_one" if abs(delta) == 1 else "off_by_two"
    return make_problem(
        subtask,
        {"a": a, "b": b, "op": op, "expr": f"{a} {op} {b}"},
        str(truth),
        str(wrong),
        kind,
        f"{a} {op} {b} = {truth}",
        f"{a} {op} {b} = {wrong}",
        f"{a} {op} {b}",
        f"it is off by {abs(delta)}",
        f"{subtask}|{a}|{b}",
        {"a": a, "b": b},
    )


def _make_compare(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["larger", "smaller"])
    x, y = rng.sample(range(2, 100), 2)
    hi, lo = max(x, y), min(x, y)
    truth, wrong = (hi, lo) if subtask == "larger" else (lo, hi)
    rel = "larger" if subtask == "larger" else "smaller"
    return make_problem(
        subtask,
        {"x": x, "y": y, "which": rel},
        str(truth),
        str(wrong),
        "reversed_comparison",
        f"{truth} is {rel} than {wrong}",
        f"{wrong} is {rel} than {truth}",
        f"the {rel} of {x} and {y}",
        f"it picks the {'smaller' if rel == 'larger' else 'larger'} number",
        f"{subtask}|{min(x, y)}|{max(x, y)}",
        {"x": x, "y": y},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "small_arithmetic",
        "sums and differences of two numbers below 20",
        ("add", "sub"),
        _make_small_arithmetic,
        make_phrasings(
            "sa",
            [
                ("train", "What is {expr}?"),
                ("train", "Compute {expr}."),
                ("train", "How much is {expr}?"),
                ("validation", "Work out {expr}."),
                ("validation", "What does {expr} equal?"),
                ("test", "Calculate {expr}."),
                ("test", "Tell me the result of {expr}."),
            ],
        ),
        tier=TIER,
        key_splits=True,
        check=check_number,
    ),
    Family(
        "compare",
        "which of two numbers is larger or smaller",
        ("larger", "smaller"),
        _make_compare,
        make_phrasings(
            "cmp",
            [
                ("train", "Which is {which}, {x} or {y}?"),
                ("train", "Of the numbers {x} and {y}, which one is {which}?"),
                ("train", "Pick the {which} number: {x} or {y}."),
                ("validation", "Between {x} and {y}, which number is {which}?"),
                ("validation", "Tell me which is {which}: {x} or {y}."),
                ("test", "Which number is {which}: {x} or {y}?"),
                ("test", "{x} or {y}: which is {which}?"),
            ],
        ),
        tier=TIER,
        key_splits=True,
        check=check_number,
    ),
)
