"""Easy tier: a fact read from a short passage; the wrong answer is a distractor from the same passage.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_text
from cj2.data.tasks.base import Family, Problem
from cj2.data.tasks.easy.base import TIER, make_phrasings, make_problem

_NAMES = (
    "Tom",
    "Anna",
    "Ben",
    "Lucy",
    "Sam",
    "Mia",
    "Leo",
    "Zoe",
    "Max",
    "Ella",
    "Omar",
    "Nina",
    "Ravi",
    "Iris",
)
_OBJECTS = ("bike", "kite", "ball", "hat", "cup", "bag", "car", "book", "scarf", "lamp", "boat", "coat")
_COLORS = ("red", "blue", "green", "yellow", "black", "white", "pink", "orange", "brown", "purple")


def _make_reading(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["color", "owner", "age"])
    n1, n2 = rng.sample(_NAMES, 2)
    o1, o2, o3 = rng.sample(_OBJECTS, 3)
    c1, c2, c3 = rng.sample(_COLORS, 3)
    age1, age2 = rng.sample(range(5, 16), 2)

    def a(word: str) -> str:
        return ("an " if word[0] in "aeiou" else "a ") + word

    passage = (
        f"{n1} is {age1} years old and has {a(c1)} {o1} and {a(c2)} {o2}. "
        f"{n2} is {age2} years old and has {a(c3)} {o3}."
    )
    if subtask == "color":  # the wrong colour is the other colour of the same person, or the other person's
        truth, wrong = c1, (c2 if rng.random() < 0.5 else c3)
        q, fact = f"What color is {n1}'s {o1}?", f"{n1}'s {o1} is {{v}}"
    elif subtask == "owner":
        truth, wrong = n2, n1
        q, fact = f"Who has the {c3} {o3}?", f"the {c3} {o3} belongs to {{v}}"
    else:  # age: the other person's age
        who = rng.choice([0, 1])
        truth, wrong = (str(age1), str(age2)) if who == 0 else (str(age2), str(age1))
        q, fact = f"How old is {(n1, n2)[who]}?", f"{(n1, n2)[who]} is {{v}} years old"
    return make_problem(
        subtask,
        {"passage": passage, "q": q, "q_lower": q[0].lower() + q[1:]},
        truth,
        wrong,
        "distractor_from_passage",
        "the passage says " + fact.format(v=truth),
        "the passage says " + fact.format(v=wrong),
        q[0].lower() + q[1:].rstrip("?") + " according to the passage",
        "it reads the wrong part of the passage",
        passage + " " + q,
        {"passage": passage, "question": q},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "reading",
        "a fact read from a short passage",
        ("color", "owner", "age"),
        _make_reading,
        make_phrasings(
            "rd",
            [
                ("train", "{passage}\n\n{q}"),
                ("train", "Read the passage and answer.\n{passage}\nQuestion: {q}"),
                ("train", "Passage: {passage}\n{q}"),
                ("validation", "Text: {passage}\nBased on the text, {q_lower}"),
                ("validation", "{passage}\nAnswer from the passage: {q}"),
                ("test", "Story: {passage}\n{q}"),
                ("test", "Here is a short text. {passage} {q}"),
            ],
        ),
        tier=TIER,
        key_splits=True,
        check=check_text,
    ),
)
