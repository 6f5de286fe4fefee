"""Easy tier, held out whole: ``first_letter`` (validation only) and ``next_in_sequence`` (test only).

Validation and test measure transfer to a family the judge never trained on.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_text
from cj2.data.tasks.base import Family, Problem
from cj2.data.tasks.easy.base import TIER, make_phrasings, make_problem

_LETTER_WORDS = (
    "garden",
    "planet",
    "window",
    "orange",
    "yellow",
    "basket",
    "rocket",
    "candle",
    "forest",
    "silver",
    "marble",
    "pencil",
    "turtle",
    "violin",
    "island",
    "helmet",
    "jacket",
    "kitten",
)


def _make_first_letter(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["first", "last"])
    w = rng.choice(_LETTER_WORDS)
    idx, other = (0, rng.choice([1, -1])) if subtask == "first" else (-1, rng.choice([0, -2]))
    truth, wrong = f"'{w[idx]}'", f"'{w[other]}'"
    if truth == wrong:
        wrong = f"'{w[1]}'" if w[1] != w[idx] else f"'{w[2]}'"
    where = "starts" if subtask == "first" else "ends"
    return make_problem(
        subtask,
        {"w": w, "which": subtask},
        truth,
        wrong,
        "wrong_letter",
        f"'{w}' {where} with {truth}",
        f"'{w}' {where} with {wrong}",
        f"the {subtask} letter of '{w}'",
        "it takes another letter of the word",
        f"{subtask}|{w}",
        {"word": w},
    )


_SEQUENCES = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": (
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
    ),
}


def _make_next_in_sequence(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["day", "month", "number"])
    if subtask == "number":
        x = rng.randint(5, 98)
        truth, wrong, item = str(x + 1), str(x - 1 if rng.random() < 0.5 else x + 2), str(x)
    else:
        seq = _SEQUENCES[subtask]
        i = rng.randrange(len(seq))
        item, truth = seq[i], seq[(i + 1) % len(seq)]
        wrong = seq[(i - 1) % len(seq)] if rng.random() < 0.5 else seq[(i + 2) % len(seq)]
    return make_problem(
        subtask,
        {"x": item, "kind": subtask},
        truth,
        wrong,
        "wrong_neighbour",
        f"right after {item} comes {truth}",
        f"right after {item} comes {wrong}",
        f"what comes right after {item}",
        "it takes the wrong neighbour",
        f"{subtask}|{item}",
        {"item": item},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "first_letter",
        "the first or last letter of a word",
        ("first", "last"),
        _make_first_letter,
        make_phrasings(
            "fl",
            [
                ("validation", "What is the {which} letter of the word '{w}'?"),
                ("validation", "Which letter is the {which} one in '{w}'?"),
            ],
        ),
        tier=TIER,
        check=check_text,
    ),
    Family(
        "next_in_sequence",
        "the next day, month or number",
        ("day", "month", "number"),
        _make_next_in_sequence,
        make_phrasings(
            "nx", [("test", "What comes right after {x}?"), ("test", "In order, which {kind} follows {x}?")]
        ),
        tier=TIER,
        check=check_text,
    ),
)
