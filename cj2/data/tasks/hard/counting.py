"""Hard tier: counting a letter in a word, the vowels of a word, or a digit in a number.

The check lists what it counts (positions, or the vowels); the right and the wrong count are drawn as
an exchangeable pair (:func:`_exchangeable_pair`), so no count is more often right than wrong.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_number
from cj2.data.tasks.base import Family, Phrasing, Problem

_COUNT_WORDS = (
    "strawberry",
    "banana",
    "committee",
    "mississippi",
    "parallel",
    "bookkeeper",
    "assessment",
    "successful",
    "necessary",
    "occurrence",
    "balloon",
    "coffee",
    "address",
    "possession",
    "tomorrow",
    "referee",
    "cinnamon",
    "millennium",
    "embarrass",
    "grammar",
    "pepper",
    "bubble",
    "giraffe",
    "raccoon",
    "broccoli",
    "accommodate",
    "engineer",
    "hippopotamus",
    "peppermint",
    "remember",
    "exercise",
    "evidence",
    "character",
    "calendar",
    "elephant",
    "tennessee",
    "barbarian",
    "cucumber",
    "apparently",
    "beginning",
    "butterfly",
    "caterpillar",
    "dictionary",
    "excellent",
    "happiness",
    "independence",
    "kangaroo",
    "lollipop",
    "mammal",
    "nonsense",
    "opossum",
    "pineapple",
    "questionnaire",
    "rhythm",
    "satellite",
    "tattoo",
    "umbrella",
    "vacuum",
    "woodpecker",
    "assassin",
    "bassoon",
    "cappuccino",
    "different",
    "tomato",
    "potato",
    "avocado",
)
_VOWELS = "aeiou"


def _exchangeable_pair(rng: random.Random, low: int, high: int) -> tuple[int, int]:
    """``(truth, wrong)``, one apart: draw the pair ``{k, k+1}`` first, then which is right, so a count
    says nothing about whether it is the right one (no value is more often right than wrong)."""
    k = rng.randint(low, high)
    return (k, k + 1) if rng.random() < 0.5 else (k + 1, k)


def _listing_problem(
    subtask: str,
    text: str,
    hits: list[str],
    wrong_hits: list[str],
    slipped: list[str],
    label: str,
    kind: str,
    hint: str,
    demand: str,
    target: str,
) -> Problem:
    def lines(seq: list[str]) -> list[str]:
        # One step that ends in its count, so a shorter listing is never a substring of a longer one.
        return [f"{label} {', '.join(seq)} ({len(seq)} in all)"]

    work, wrong_work, slip_work = lines(hits), lines(wrong_hits), lines(slipped)
    return Problem(
        subtask=subtask,
        fields={"w": text, "s": text, "c": target, "d": target},
        truth=str(len(hits)),
        wrong=str(len(wrong_hits)),
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=slip_work,
        wrong_step=wrong_work[0],
        slip_step=slip_work[0],
        demand=demand,
        hint=hint,
        params={"subtask": subtask, "text": text, "target": target},
    )


def _make_counting(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("letter", "vowel", "digit"))
    if subtask == "vowel":
        k, wrong_k = _exchangeable_pair(rng, 2, 4)
        word = rng.choice([w for w in _COUNT_WORDS if sum(ch in _VOWELS for ch in w) == k])
        hits = [ch for ch in word if ch in _VOWELS]
        if wrong_k < k:
            drop = rng.randrange(k)
            wrong_hits, kind, hint = hits[:drop] + hits[drop + 1 :], "missed_one", "it misses a vowel"
        elif "y" in word:
            pos = word.index("y")
            wrong_hits = (
                [ch for ch in word[:pos] if ch in _VOWELS]
                + ["y"]
                + [ch for ch in word[pos + 1 :] if ch in _VOWELS]
            )
            kind, hint = "extra_one", "it counts y as a vowel"
        else:
            dup = rng.randrange(k)
            wrong_hits, kind, hint = hits[: dup + 1] + hits[dup:], "extra_one", "it counts one vowel twice"
        j = rng.randrange(k)
        slipped = list(hits)  # one vowel misread as another: the count still right
        slipped[j] = rng.choice([v for v in _VOWELS if v != hits[j]])
        return _listing_problem(
            subtask,
            word,
            hits,
            wrong_hits,
            slipped,
            "vowels",
            kind,
            hint,
            f"the number of vowels in '{word}'",
            "",
        )
    # letter / digit: list the positions (1-based) where the target occurs.
    k, wrong_k = _exchangeable_pair(rng, 1, 3)
    if subtask == "digit":
        d = str(rng.randint(1, 9))
        digits = [rng.choice([c for c in "0123456789" if c != d]) for _ in range(rng.randint(7, 9) - k)]
        for _ in range(k):
            digits.insert(rng.randint(0, len(digits)), d)
        if digits[0] == "0":
            digits[0] = rng.choice([c for c in "123456789" if c != d])
        text, target, name, label = "".join(digits), d, d, f"the digit {d}"
        demand = f"how many times the digit {d} occurs in {text}"
    else:
        choices = [(w, c) for w in _COUNT_WORDS for c in sorted(set(w)) if w.count(c) == k]
        text, target = rng.choice(choices)
        name = label = f"'{target}'"
        demand = f"how many times {name} occurs in '{text}'"
    pos = [i + 1 for i, ch in enumerate(text) if ch == target]
    others = [i + 1 for i, ch in enumerate(text) if ch != target]
    if wrong_k < k:  # an occurrence missed (a doubled letter read once, say)
        drop = rng.randrange(k)
        wrong_pos, kind, hint = pos[:drop] + pos[drop + 1 :], "missed_one", f"it misses one {name}"
    else:
        wrong_pos = sorted(pos + [rng.choice(others)])
        kind, hint = "extra_one", f"it counts one {name} too many"
    slipped = list(pos)  # one position miswritten: the count still right
    slipped[rng.randrange(k)] = rng.choice(others)
    as_text = lambda ps: [str(p) for p in sorted(ps)]  # noqa: E731
    return _listing_problem(
        subtask,
        text,
        as_text(pos),
        as_text(wrong_pos),
        as_text(slipped),
        f"{label} at positions",
        kind,
        hint,
        demand,
        target,
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "counting",
        "counting letters, vowels and digits",
        ("letter", "vowel", "digit"),
        _make_counting,
        (
            Phrasing(
                "count-letter",
                "train",
                "How many times does the letter '{c}' appear in the word '{w}'?",
                "letter",
            ),
            Phrasing("count-vowels", "train", "How many vowels (a, e, i, o, u) are in '{w}'?", "vowel"),
            Phrasing("count-digit", "train", "How many times does the digit {d} occur in {s}?", "digit"),
            Phrasing("count-letter-v", "validation", "Count the '{c}'s in '{w}'.", "letter"),
            Phrasing(
                "count-vowels-v",
                "validation",
                "Count the vowels in the word '{w}', using only a, e, i, o and u.",
                "vowel",
            ),
            Phrasing("count-digit-v", "validation", "In the number {s}, how often does {d} appear?", "digit"),
        ),
        check=check_number,
    ),
)
