"""Built-in verifiable judge tasks: pairwise items whose truth is computed, not guessed.

CompassJudger-2 trains on judgments whose verdict can be checked against a known answer (verifiable
rewards, arXiv 2507.09104, Sec. 3.2, Eq. 6), and writes them in a critical-thinking format (Sec. 3.2,
Fig. 2). Until real judge data is at hand (and as the data of the embedded CPU default) cj2 makes such
items itself: a question with a computable answer, one correct and one wrong response, and judgments
whose reasoning actually recomputes the answer.

* **Families** (:data:`FAMILIES`): multi-step arithmetic, unit conversion, sorting, counting, strings,
  dates and percentages. Each has several question phrasings.
* **Splits** (:data:`SPLITS`): validation and test each hold out one whole family and use phrasings of the
  shared families that train never sees, so a held-out score measures judging, not memorised templates.
* **Wrong answers** carry realistic errors (a dropped carry, operator precedence, a unit factor of 100
  for 1000, a swapped pair in a sort, a miscounted letter, a month of the wrong length, ...) and give
  nothing away on the surface: both answers are written in the same styles and which one is longer is a
  coin flip; where a value could betray its role (small counts, products, powers of ten) the right and
  the wrong value are drawn as an exchangeable pair, so no value, last digit or magnitude is more often
  right than wrong; positions are balanced exactly (items ``2k`` and ``2k + 1`` have opposite labels).
* **Judgments** (:func:`build_judgment`) recompute the answer in a few steps and compare; with
  ``flawed=True`` the check contains a realistic mistake and reaches the requested verdict, which is what
  the ``simulated`` teacher of the curation pipeline needs for rejection sampling on a CPU.

Everything here is a pure function of its arguments (seeded by strings, not by process state).
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cj2.data.schema import PairwiseItem, PointwiseItem, PreferenceRecord, TrainRecord
from cj2.data.templates import JudgeTemplate, get_template, sample_template
from cj2.verdict import labels_for

SOURCE = "builtin"


# --------------------------------------------------------------------------- problems


@dataclass
class Problem:
    """One generated question with its computed answer and a realistic wrong answer.

    ``work`` is the sound check (steps ending at ``truth``); ``wrong_work`` the steps of the wrong answer,
    containing ``wrong_step``; ``slip_work`` a check with one miscomputed value (``slip_step``) that still
    ends at ``truth``: a right conclusion on a flawed check.
    """

    subtask: str
    fields: dict[str, Any]  # question placeholders
    truth: str
    wrong: str
    error_kind: str
    work: list[str]
    wrong_work: list[str]
    slip_work: list[str]
    wrong_step: str
    slip_step: str
    demand: str
    hint: str  # what a careful judge would say about the wrong answer's mistake
    params: dict[str, Any]  # the inputs, JSON-able, for an independent recomputation
    # What a check says each answer gives, when that is not the answer itself (an instruction-following
    # answer is a sentence; its check says "a sentence with 'blue'"). None: the answer's value.
    truth_view: str | None = None
    wrong_view: str | None = None
    styled: bool = True  # the answers are values written in the answer styles (False: the answer is the text)


@dataclass(frozen=True)
class Phrasing:
    """A question template of a family; ``subtask=None`` fits every subtask of the family."""

    id: str
    split: str
    text: str
    subtask: str | None = None


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    subtasks: tuple[str, ...]
    make: Callable[[random.Random, str | None], Problem]  # (rng, subtask or None: the family picks)
    phrasings: tuple[Phrasing, ...] = field(default=())
    tier: str = "hard"  # "easy": within a small model's reach (cj2.data.tasks_easy); "hard": beyond it
    # Each question key (params["key"]) belongs to one split (cj2.data.tasks_easy.key_split), so no question
    # of validation or test appears in train under any phrasing.
    key_splits: bool = False

    def phrasings_for(self, split: str) -> list[Phrasing]:
        return [p for p in self.phrasings if p.split == split]


def _num(x: int | Decimal) -> str:
    """A number as a person writes it: ``2500``, ``2.5``, ``0.34`` (no exponent, no trailing zeros)."""
    return str(x) if isinstance(x, int) else format(x.normalize(), "f")


def _sign(rng: random.Random) -> int:
    return 1 if rng.random() < 0.5 else -1


_OPS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


def _eq(a: Any, op: str, b: Any, r: Any) -> str:
    return f"{_num(a)} {op} {_num(b)} = {_num(r)}"


# ----------------------------------------------------------------- arithmetic

_ARITH_FORMS = ("x*y+z", "x+y*z", "x*y-z", "(x+y)*z")


def _arith_params(rng: random.Random, form: str, small: int | None = None) -> tuple[int, int, int]:
    """Operands of ``form``; ``small`` fixes the one-digit factor. ``x + y * z`` and ``(x + y) * z`` draw
    from the same ranges, so a precedence mistake is as likely to go up as down."""
    small = rng.randint(3, 9) if small is None else small
    if form == "x*y+z":
        return rng.randint(12, 49), small, rng.randint(11, 99)
    if form == "x*y-z":
        x = rng.randint(12, 49)
        return x, small, rng.randint(11, min(99, x * 3 - 11))
    return rng.randint(11, 49), rng.randint(12, 49), small  # x+y*z and (x+y)*z


def _arith_steps(form: str, x: int, y: int, z: int) -> list[tuple[int | None, str, int | None]]:
    """The operations in the right order, each as ``(a, op, b)``; ``None`` is the previous result."""
    return {
        "x*y+z": [(x, "*", y), (None, "+", z)],
        "x+y*z": [(y, "*", z), (x, "+", None)],
        "x*y-z": [(x, "*", y), (None, "-", z)],
        "(x+y)*z": [(x, "+", y), (None, "*", z)],
    }[form]


def _run_steps(
    steps, corrupt: dict[int, Callable[[int, int, int], int]] | None = None
) -> tuple[list[str], int, list[tuple[int, int, int]]]:
    """Evaluate ``steps`` left to right; ``corrupt[i]`` replaces step i's result (a slip propagates).
    Returns the written lines, the final value and each step's ``(a, b, result)``."""
    lines, prev, done = [], 0, []
    for i, (a, op, b) in enumerate(steps):
        a = prev if a is None else a
        b = prev if b is None else b
        r = _OPS[op](a, b)
        if corrupt and i in corrupt:
            r = corrupt[i](a, b, r)
        lines.append(_eq(a, op, b, r))
        done.append((a, b, r))
        prev = r
    return lines, prev, done


def _make_arithmetic(rng: random.Random, form: str | None) -> Problem:
    # A precedence mistake only where the form is drawn at random: a phrasing bound to one form would
    # make it err in one direction only (a magnitude cue).
    fixed = form is not None
    form = form or rng.choice(_ARITH_FORMS)
    kinds = ["carry", "multiplication_slip", "off_by_one"]
    if not fixed and form in ("x+y*z", "(x+y)*z"):
        kinds.append("precedence")
    kind = rng.choice(kinds)
    small_wrong = None
    if kind == "multiplication_slip":
        # Draw the pair {k, k+1} first, then which one is right: a product one group off either way,
        # with right and wrong answers exchangeable.
        lo = rng.randint(3, 8)
        small, small_wrong = (lo, lo + 1) if rng.random() < 0.5 else (lo + 1, lo)
        x, y, z = _arith_params(rng, form, small)
    else:
        x, y, z = _arith_params(rng, form)
    steps = _arith_steps(form, x, y, z)
    work, truth, done = _run_steps(steps)
    expr = {
        "x*y+z": f"{x} * {y} + {z}",
        "x+y*z": f"{x} + {y} * {z}",
        "x*y-z": f"{x} * {y} - {z}",
        "(x+y)*z": f"({x} + {y}) * {z}",
    }[form]
    if kind == "precedence":
        # x + y * z read left to right, or (x + y) * z with the brackets ignored.
        wrong_steps = [(x, "+", y), (None, "*", z)] if form == "x+y*z" else [(y, "*", z), (x, "+", None)]
        wrong_work, wrong, _ = _run_steps(wrong_steps)
        wrong_step = wrong_work[0]
        hint = "it ignores the order of operations" if form == "x+y*z" else "it ignores the brackets"
    elif kind == "carry":
        i = next(k for k, (_, op, _) in enumerate(steps) if op in "+-")
        a_i, b_i, _ = done[i]
        delta = 10 * _sign(rng)
        if steps[i][1] == "+":
            carried = a_i % 10 + b_i % 10 >= 10
            hint = {
                (True, -1): "it drops a carry",
                (True, 1): "it carries twice",
                (False, -1): "it loses ten in the addition",
                (False, 1): "it adds a carry where none is due",
            }
        else:
            carried = a_i % 10 < b_i % 10
            hint = {
                (True, -1): "it borrows twice",
                (True, 1): "it forgets to borrow",
                (False, -1): "it borrows where no borrow is due",
                (False, 1): "it gains ten in the subtraction",
            }
        hint = hint[(carried, delta // 10)]
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r + delta})
        wrong_step = wrong_work[i]
    elif kind == "multiplication_slip":
        i = next(k for k, (_, op, _) in enumerate(steps) if op == "*")
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r // min(a, b) * small_wrong})
        wrong_step = wrong_work[i]
        hint = "it miscomputes the product"
    else:
        # Off by one in the (last) addition or subtraction. Not in a final product: right answers there are
        # multiples of the factor and wrong ones would not be, a last-digit cue.
        i = max(k for k, (_, op, _) in enumerate(steps) if op in "+-")
        s = _sign(rng)
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r + s})
        wrong_step = wrong_work[i]
        hint = "its addition is off by one" if steps[i][1] == "+" else "its subtraction is off by one"
    # A slip: the first result written wrong, the next step carried on from the right value.
    d = rng.choice([1, 2, 3, 4, 6, 7, 8, 9])
    slip_first, _, _ = _run_steps(steps[:1], {0: lambda a, b, r: r + _sign(rng) * d})
    slip_work = [slip_first[0], *work[1:]]
    return Problem(
        subtask=form,
        fields={"expr": expr, "x": x, "y": y, "z": z},
        truth=str(truth),
        wrong=str(wrong),
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=slip_work,
        wrong_step=wrong_step,
        slip_step=slip_first[0],
        demand=f"the exact value of {expr}",
        hint=hint,
        params={"form": form, "x": x, "y": y, "z": z},
    )


# ------------------------------------------------------------ unit conversion

# (from, to, operation, factor, plausible wrong factors). Seconds to minutes is left out: dividing by 100
# instead of 60 changes which digit the answer ends in, a surface cue.
_CONVERSIONS: dict[str, tuple[str, str, str, int, tuple[int, ...]]] = {
    "km>m": ("km", "m", "*", 1000, (100,)),
    "m>cm": ("m", "cm", "*", 100, (1000, 10)),
    "cm>mm": ("cm", "mm", "*", 10, (100,)),
    "kg>g": ("kg", "g", "*", 1000, (100,)),
    "L>mL": ("L", "mL", "*", 1000, (100,)),
    "h>min": ("h", "min", "*", 60, (100,)),
    "min>s": ("min", "s", "*", 60, (100,)),
    "m>km": ("m", "km", "/", 1000, (100,)),
    "cm>m": ("cm", "m", "/", 100, (1000, 10)),
    "mm>cm": ("mm", "cm", "/", 10, (100,)),
    "g>kg": ("g", "kg", "/", 1000, (100,)),
    "mL>L": ("mL", "L", "/", 1000, (100,)),
}


def _wrong_is_larger(op: str, factor: int, wrong_factor: int) -> bool:
    return wrong_factor > factor if op == "*" else wrong_factor < factor


def _conversion_value(rng: random.Random, op: str, factor: int) -> Decimal:
    if factor == 60:  # quarter hours / minutes
        return Decimal(rng.randint(1, 40)) / 4
    if op == "*":
        # Whole numbers, or one decimal place for the factor-1000 units, so that a factor mistake does
        # not change which digit the answer ends in.
        if factor == 1000 and rng.random() < 0.5:
            return Decimal(rng.randint(11, 199)) / 10
        return Decimal(rng.randint(2, 95))
    if factor == 10:
        return Decimal(rng.randint(12, 199))
    return Decimal(10 * rng.randint(2, 95))


def _make_unit_conversion(rng: random.Random, key: str | None) -> Problem:
    kind = rng.choice(["unit_factor", "decimal_shift"])
    larger = rng.random() < 0.5  # whether the wrong answer is the larger number: balanced
    if key is None:
        # For a factor mistake the conversion decides the direction, so pick one that errs the drawn way.
        key = rng.choice(
            [
                k
                for k, (_, _, op, f, wfs) in _CONVERSIONS.items()
                if kind == "decimal_shift" or any(_wrong_is_larger(op, f, w) == larger for w in wfs)
            ]
        )
    fu, tu, op, factor, wrong_factors = _CONVERSIONS[key]
    v = _conversion_value(rng, op, factor)
    if kind == "decimal_shift" and not larger:
        # The pair {T, 10 T} either way round: a tenth-too-small answer to a ten-times-larger quantity, so
        # trailing zeros say nothing about which answer is right.
        v *= 10
    apply = (lambda f: v * f) if op == "*" else (lambda f: v / f)
    truth = apply(factor)
    fact = (lambda f: f"1 {fu} = {f} {tu}") if op == "*" else (lambda f: f"1 {tu} = {f} {fu}")
    work = [fact(factor), _eq(v, op, factor, truth)]
    if kind == "unit_factor":
        fitting = [w for w in wrong_factors if _wrong_is_larger(op, factor, w) == larger]
        wf = rng.choice(fitting or list(wrong_factors))
        wrong = apply(wf)
        wrong_work = [fact(wf), _eq(v, op, wf, wrong)]
        wrong_step, hint = wrong_work[0], f"it uses {wf} instead of {factor}"
    else:
        wrong = truth * 10 if larger else truth / 10
        wrong_work = [fact(factor), _eq(v, op, factor, wrong)]
        wrong_step, hint = wrong_work[1], "it misplaces the decimal point"
    slip_step = fact(wrong_factors[0])
    return Problem(
        subtask=key,
        fields={"v": _num(v), "fu": fu, "tu": tu},
        truth=f"{_num(truth)} {tu}",
        wrong=f"{_num(wrong)} {tu}",
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_step,
        slip_step=slip_step,
        demand=f"{_num(v)} {fu} expressed in {tu}",
        hint=hint,
        params={"value": _num(v), "from": fu, "to": tu},
    )


# -------------------------------------------------------------------- sorting


def _chain(nums: Sequence[int], order: str) -> str:
    return f" {'<' if order == 'asc' else '>'} ".join(map(str, nums))


def _make_sorting(rng: random.Random, order: str | None) -> Problem:
    order = order or rng.choice(("asc", "desc"))
    n = rng.randint(4, 6)
    nums = rng.sample(range(10, 100), n)
    truth = sorted(nums, reverse=order == "desc")
    wrong = list(truth)
    if rng.random() < 0.6:
        kind, i = "adjacent_swap", rng.randrange(n - 1)
        wrong[i], wrong[i + 1] = wrong[i + 1], wrong[i]
        hint = f"it swaps {truth[i]} and {truth[i + 1]}"
    else:
        kind, i = "misplaced", rng.randrange(n - 2)
        moved = wrong.pop(i) if rng.random() < 0.5 else wrong.pop(i + 2)
        wrong.insert(i + 2 if moved == truth[i] else i, moved)
        hint = f"it puts {moved} in the wrong place"
    rel = "<" if order == "asc" else ">"
    wrong_step = next(
        f"{a} {rel} {b}" for a, b in zip(wrong, wrong[1:]) if (a > b if order == "asc" else a < b)
    )
    # A slip: one number misread while ordering, the order itself right.
    j = rng.randrange(n)
    t = truth[j]
    # digits swapped, a ten off, a unit off; any free number as a last resort
    candidates = [int(str(t)[::-1]), t + 10, t - 10, t + 1, t - 1, *range(10, 100)]
    misread = next(m for m in candidates if 10 <= m <= 99 and m != t and m not in nums)
    slipped = list(truth)
    slipped[j] = misread
    slip_step = _chain(slipped[max(0, j - 1) : j + 2], order)
    word = "ascending" if order == "asc" else "descending"
    return Problem(
        subtask=order,
        fields={"nums": ", ".join(map(str, nums))},
        truth=", ".join(map(str, truth)),
        wrong=", ".join(map(str, wrong)),
        error_kind=kind,
        work=[_chain(truth, order)],
        wrong_work=[_chain(wrong, order)],
        slip_work=[_chain(slipped, order)],
        wrong_step=wrong_step,
        slip_step=slip_step,
        demand=f"the numbers in {word} order",
        hint=hint,
        params={"numbers": nums, "order": order},
    )


# ------------------------------------------------------------------- counting

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


# -------------------------------------------------------------------- strings

_WORDS = (
    "planet",
    "keyboard",
    "garden",
    "window",
    "silver",
    "rocket",
    "candle",
    "bridge",
    "forest",
    "marble",
    "pencil",
    "harbor",
    "jacket",
    "lantern",
    "meadow",
    "orange",
    "pocket",
    "riddle",
    "saddle",
    "timber",
    "velvet",
    "wander",
    "yellow",
    "zipper",
    "anchor",
    "blanket",
    "cabinet",
    "dolphin",
    "feather",
    "glacier",
    "hammock",
    "journal",
    "kitchen",
    "library",
    "mustard",
    "network",
    "painter",
    "quarter",
    "rainbow",
    "sparrow",
    "thunder",
    "uniform",
    "village",
    "whisper",
    "crystal",
    "picture",
    "monster",
    "castle",
)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _spell(word: str) -> str:
    return "-".join(word)


def _enumerate(word: str, upto: int, start: int = 1) -> str:
    return " ".join(f"{ch}({i})" for i, ch in enumerate(word[:upto], start=start))


def _make_strings(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("reverse", "nth", "palindrome"))
    if subtask == "reverse":
        w = rng.choice(_WORDS)
        rev = w[::-1]
        i = rng.choice([k for k in range(len(rev) - 1) if rev[k] != rev[k + 1]])
        wrong = rev[:i] + rev[i + 1] + rev[i] + rev[i + 2 :]
        j = rng.randrange(len(w))
        typo = w[:j] + rng.choice([c for c in "abcdefghijklmnoprstuvwy" if c != w[j]]) + w[j + 1 :]
        work = [f"letters {_spell(w)}", f"backwards {_spell(rev)}"]
        wrong_work = [work[0], f"backwards {_spell(wrong)}"]
        return Problem(
            subtask=subtask,
            fields={"w": w},
            truth=f"'{rev}'",
            wrong=f"'{wrong}'",
            error_kind="transposed_letters",
            work=work,
            wrong_work=wrong_work,
            slip_work=[f"letters {_spell(typo)}", work[1]],
            wrong_step=wrong_work[1],
            slip_step=f"letters {_spell(typo)}",
            demand=f"'{w}' reversed",
            hint=f"it swaps '{rev[i]}' and '{rev[i + 1]}'",
            params={"subtask": subtask, "word": w},
        )
    if subtask == "nth":
        while True:
            w = rng.choice(_WORDS)
            n = rng.randint(2, min(9, len(w) - 1))
            if w[n - 1] != w[n] and w[n - 1] != w[n - 2]:
                break
        truth = w[n - 1]
        if _sign(rng) > 0:  # counted from 0: answers the (n+1)-th letter
            wrong, kind = w[n], "zero_index"
            wrong_step, hint = _enumerate(w, n + 1, start=0), "it counts from zero"
        else:  # skipped a number while counting: answers the (n-1)-th letter
            wrong, kind = w[n - 2], "miscounted"
            wrong_step = " ".join(f"{ch}({i + (i >= n - 2)})" for i, ch in enumerate(w[: n - 1], start=1))
            hint = "it skips a number while counting"
        j = rng.randrange(n - 1)  # misread an earlier letter: the nth is still right
        typo = w[:j] + rng.choice([c for c in "abcdefghijklmnoprstuvwy" if c != w[j]]) + w[j + 1 :]
        slip = _enumerate(typo, n)
        return Problem(
            subtask=subtask,
            fields={"w": w, "n": n, "ord": _ordinal(n)},
            truth=f"'{truth}'",
            wrong=f"'{wrong}'",
            error_kind=kind,
            work=[_enumerate(w, n)],
            wrong_work=[wrong_step],
            slip_work=[slip],
            wrong_step=wrong_step,
            slip_step=slip,
            demand=f"the {_ordinal(n)} letter of '{w}'",
            hint=hint,
            params={"subtask": subtask, "word": w, "n": n},
        )
    # palindrome: random letters; non-palindromes differ in exactly one pair, so they look close.
    length = rng.randint(5, 7)
    half = [rng.choice("abcdeklmnoprstu") for _ in range((length + 1) // 2)]
    letters = half + half[: length // 2][::-1]
    is_pal = rng.random() < 0.5
    pairs_n = length // 2
    if not is_pal:
        k = rng.randrange(pairs_n)
        letters[length - 1 - k] = rng.choice([c for c in "abcdeklmnoprstu" if c != letters[k]])
    w = "".join(letters)

    def compare(word: str, flip: int | None = None) -> str:
        out = []
        for k in range(pairs_n):
            a, b = word[k], word[len(word) - 1 - k]
            same = (a == b) != (k == flip)
            out.append(f"{a}={b}" if same else f"{a}≠{b}")
        return "pairs " + ", ".join(out)

    truth = "yes" if is_pal else "no"
    if is_pal:
        k = rng.randrange(pairs_n)
        wrong_step, kind, hint = compare(w, flip=k), "false_mismatch", "it misreads a matching pair"
        slipped = list(w)  # misread a pair's letters, still equal: the conclusion holds
        new = rng.choice([c for c in "abcdeklmnoprstu" if c != w[k]])
        slipped[k] = slipped[length - 1 - k] = new
        slip = compare("".join(slipped))
    else:
        bad = next(k for k in range(pairs_n) if w[k] != w[length - 1 - k])
        wrong_step, kind, hint = compare(w, flip=bad), "missed_mismatch", "it misses the pair that differs"
        others = [k for k in range(pairs_n) if k != bad]
        slip = compare(w, flip=rng.choice(others)) if others else compare(w[::-1])
    verdict_line = {"yes": "all pairs match: yes", "no": "a pair differs: no"}
    wrong_value = "no" if is_pal else "yes"
    return Problem(
        subtask="palindrome",
        fields={"w": w},
        truth=truth,
        wrong=wrong_value,
        error_kind=kind,
        work=[compare(w), verdict_line[truth]],
        wrong_work=[wrong_step, verdict_line[wrong_value]],
        slip_work=[slip, verdict_line[truth]],
        wrong_step=wrong_step,
        slip_step=slip,
        demand=f"whether '{w}' is a palindrome",
        hint=hint,
        params={"subtask": "palindrome", "word": w},
    )


# ---------------------------------------------------------------------- dates

_MONTHS = tuple(calendar.month_name)[1:]
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date_text(d: dt.date, year: bool = True) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]}" + (f" {d.year}" if year else "")


def _month_days(d: dt.date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _make_dates(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("weekday", "between", "add"))
    year = rng.randint(2019, 2026)
    if subtask == "weekday":
        d = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        jan1 = dt.date(year, 1, 1)
        doy = (d - jan1).days + 1
        wd0 = _WEEKDAYS[jan1.weekday()]

        def lines(day_of_year: int, shown_doy: int | None = None) -> list[str]:
            r = (day_of_year - 1) % 7
            wd = _WEEKDAYS[(jan1.weekday() + r) % 7]
            return [
                f"1 January {year} was a {wd0}",
                f"{_date_text(d, False)} is day {shown_doy or day_of_year}",
                f"{day_of_year - 1} mod 7 = {r}, giving {wd}",
            ]

        work = lines(doy)
        leap = calendar.isleap(year)
        if d.month > 2 and rng.random() < 0.5:
            delta = -1 if leap else 1
            kind = "leap_year"
            hint = "it forgets the leap day" if leap else f"it counts a 29 February that {year} does not have"
        else:
            delta, kind, hint = _sign(rng), "day_count", "it miscounts the days before the date"
        if doy + delta < 1:
            delta = 1
        wrong_work = lines(doy + delta)
        slip_work = lines(doy, shown_doy=doy + rng.choice([-2, -1, 1, 2]) if doy > 2 else doy + 1)
        return Problem(
            subtask=subtask,
            fields={"date": _date_text(d)},
            truth=_WEEKDAYS[d.weekday()],
            wrong=wrong_work[-1].rsplit(" ", 1)[-1],
            error_kind=kind,
            work=work,
            wrong_work=wrong_work,
            slip_work=slip_work,
            wrong_step=wrong_work[1],
            slip_step=slip_work[1],
            demand=f"the day of the week of {_date_text(d)}",
            hint=hint,
            params={"subtask": subtask, "date": d.isoformat()},
        )
    # between / add: always across one month boundary, so the check has two steps.
    # Day <= 26 leaves at least two days in the month, so a remainder one too small is still positive; an
    # end day >= 2 keeps a date one day too early inside the next month.
    d1 = dt.date(year, rng.randint(1, 11), rng.randint(1, 26))
    ml = _month_days(d1)
    rem = ml - d1.day
    month = _MONTHS[d1.month - 1]
    k = rem + rng.randint(2, 28)
    d2 = d1 + dt.timedelta(days=k)
    direction = _sign(rng)  # the direction of the wrong answer's error, balanced

    def left(days_in_month: int, remaining: int) -> str:
        return f"{month} has {days_in_month} days, so {remaining} days are left after the {_ordinal(d1.day)}"

    if subtask == "between":
        # +1 day: counting both ends, or a month one day too long; -1: a month one day too short, or
        # stopping a day early.
        if direction > 0:
            if ml in (30, 28) and rng.random() < 0.5:
                wrong_ml, wrong_rem, kind, hint = (
                    ml + 1,
                    rem + 1,
                    "month_length",
                    f"it gives {month} {ml + 1} days",
                )
            else:
                wrong_ml, wrong_rem, kind, hint = (
                    ml,
                    rem + 1,
                    "inclusive_count",
                    f"it counts the {_ordinal(d1.day)} itself",
                )
        else:
            if ml in (31, 29):
                wrong_ml, wrong_rem, kind, hint = (
                    ml - 1,
                    rem - 1,
                    "month_length",
                    f"it gives {month} {ml - 1} days",
                )
            else:
                wrong_ml, wrong_rem, kind, hint = ml, rem - 1, "off_by_one", "it stops one day early"
        work = [left(ml, rem), _eq(rem, "+", d2.day, k)]
        wrong = wrong_rem + d2.day
        wrong_work = [left(wrong_ml, wrong_rem), _eq(wrong_rem, "+", d2.day, wrong)]
        slip_step = left(ml + (1 if ml < 31 else -1), rem)  # month length misstated, remainder right
        return Problem(
            subtask=subtask,
            fields={"d1": _date_text(d1), "d2": _date_text(d2)},
            truth=f"{k} days",
            wrong=f"{wrong} days",
            error_kind=kind,
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[0],
            slip_step=slip_step,
            demand=f"the number of days from {_date_text(d1)} to {_date_text(d2)}",
            hint=hint,
            params={"subtask": subtask, "start": d1.isoformat(), "end": d2.isoformat()},
        )
    # add: the wrong date is one day later (remainder one too small) or earlier (one too big).
    if direction > 0:
        if ml in (31, 29):
            wrong_ml, kind, hint = ml - 1, "month_length", f"it gives {month} {ml - 1} days"
        else:
            wrong_ml, kind, hint = ml, "off_by_one", f"it loses a day at the end of {month}"
        wrong_rem = rem - 1
    else:
        if ml in (30, 28):
            wrong_ml, kind, hint = ml + 1, "month_length", f"it gives {month} {ml + 1} days"
        else:
            wrong_ml, kind, hint = ml, "inclusive_count", f"it counts the {_ordinal(d1.day)} itself"
        wrong_rem = rem + 1
    wrong_date = d1 + dt.timedelta(days=k + direction)
    nxt = _MONTHS[d2.month - 1]
    work = [left(ml, rem), f"{_eq(k, '-', rem, k - rem)}, giving {d2.day} {nxt}"]
    wrong_work = [
        left(wrong_ml, wrong_rem),
        f"{_eq(k, '-', wrong_rem, k - wrong_rem)}, giving {wrong_date.day} {_MONTHS[wrong_date.month - 1]}",
    ]
    slip_step = left(ml + (1 if ml < 31 else -1), rem)
    return Problem(
        subtask=subtask,
        fields={"d1": _date_text(d1), "k": k},
        truth=_date_text(d2),
        wrong=_date_text(wrong_date),
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_work[0],
        slip_step=slip_step,
        demand=f"the date {k} days after {_date_text(d1)}",
        hint=hint,
        params={"subtask": subtask, "start": d1.isoformat(), "days": k},
    )


# ---------------------------------------------------------------- percentages


def _make_percentages(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("of", "increase", "decrease", "what_percent"))
    # Each subtask draws the right and the wrong value as an exchangeable pair (see _exchangeable_pair):
    # a rate ten times off in one direction is matched by a question where the other value is right.
    ten_up = rng.random() < 0.5  # the wrong value is ten times the right one (else a tenth of it)
    if subtask == "of":
        p = rng.choice([5, 8, 12, 15, 20, 25, 30, 35, 40, 45, 55, 60, 65, 70, 75, 80, 85, 90, 95])
        n = 20 * rng.randint(2, 40) * (1 if ten_up else 10)
        rate = Decimal(p) / 100
        truth = rate * n
        wrong_rate = rate * 10 if ten_up else rate / 10
        work = [f"{p}% = {_num(rate)}", _eq(rate, "*", n, truth)]
        wrong_work = [f"{p}% = {_num(wrong_rate)}", _eq(wrong_rate, "*", n, wrong_rate * n)]
        slip_step = f"{p}% = {_num(rate / 10 if ten_up else rate * 10)}"
        return Problem(
            subtask=subtask,
            fields={"p": p, "N": n},
            truth=_num(truth),
            wrong=_num(wrong_rate * n),
            error_kind="decimal_place",
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[0],
            slip_step=slip_step,
            demand=f"{p}% of {n}",
            hint="it misplaces the decimal point of the rate",
            params={"subtask": subtask, "p": p, "N": n},
        )
    if subtask in ("increase", "decrease"):
        # The sign mistake: an increase answered as a decrease and the other way round.
        p = rng.choice([5, 10, 15, 20, 25, 30, 40, 50])
        n = 20 * rng.randint(2, 20)
        inc = Decimal(p * n) / 100
        op, wrong_op = ("+", "-") if subtask == "increase" else ("-", "+")
        truth, wrong = (n + inc, n - inc) if op == "+" else (n - inc, n + inc)
        work = [f"{p}% of {n} = {_num(inc)}", _eq(n, op, inc, truth)]
        wrong_work = [work[0], _eq(n, wrong_op, inc, wrong)]
        slip_step = f"{p}% of {n} = {_num(inc + rng.choice([-2, -1, 1, 2]))}"
        what = "rise" if subtask == "increase" else "cut"
        return Problem(
            subtask=subtask,
            fields={"p": p, "N": n},
            truth=_num(truth),
            wrong=_num(wrong),
            error_kind="sign",
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[1],
            slip_step=slip_step,
            demand=f"the price after a {p}% {what} from {n}",
            hint="it adds the change instead of subtracting it"
            if subtask == "decrease"
            else "it subtracts the change instead of adding it",
            params={"subtask": subtask, "p": p, "N": n},
        )
    # what_percent: the right and wrong percentages are k% and 10k%, either way round.
    k = rng.randint(1, 9)
    pct, wrong_pct = (k, 10 * k) if ten_up else (10 * k, k)
    n = 100 * rng.randint(1, 5)
    x = pct * n // 100
    frac = Decimal(x) / n
    mult = 1000 if ten_up else 10
    work = [_eq(x, "/", n, frac), f"{_num(frac)} * 100 = {pct}%"]
    wrong_work = [work[0], f"{_num(frac)} * {mult} = {wrong_pct}%"]
    slip_step = _eq(x, "/", n, frac / 10 if ten_up else frac * 10)
    return Problem(
        subtask=subtask,
        fields={"x": x, "N": n},
        truth=f"{pct}%",
        wrong=f"{wrong_pct}%",
        error_kind="decimal_place",
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_work[1],
        slip_step=slip_step,
        demand=f"{x} as a percentage of {n}",
        hint=f"it multiplies by {mult} instead of 100",
        params={"subtask": subtask, "x": x, "N": n},
    )


# --------------------------------------------------------------- the registry

FAMILIES: dict[str, Family] = {
    "arithmetic": Family(
        "arithmetic",
        "multi-step integer arithmetic",
        _ARITH_FORMS,
        _make_arithmetic,
        (
            Phrasing("arith-what", "train", "What is {expr}?"),
            Phrasing("arith-compute", "train", "Compute {expr}."),
            Phrasing(
                "arith-pens",
                "train",
                "A shop has {y} boxes with {x} pens in each, plus {z} loose pens. How many pens are there?",
                "x*y+z",
            ),
            Phrasing("arith-evaluate", "validation", "Evaluate {expr} and give the exact result."),
            Phrasing(
                "arith-shelves",
                "validation",
                "Each of {y} shelves holds {x} books, and then {z} books are "
                "taken away. How many books are left?",
                "x*y-z",
            ),
            Phrasing("arith-find", "test", "Find the value of {expr}."),
            Phrasing(
                "arith-badges",
                "test",
                "A team has {x} senior and {y} junior members, and every member "
                "needs {z} badges. How many badges are needed?",
                "(x+y)*z",
            ),
        ),
    ),
    "unit_conversion": Family(
        "unit_conversion",
        "metric and time unit conversions",
        tuple(_CONVERSIONS),
        _make_unit_conversion,
        (
            Phrasing("unit-convert", "train", "Convert {v} {fu} to {tu}."),
            Phrasing("unit-howmany", "train", "How many {tu} are in {v} {fu}?"),
            Phrasing("unit-express", "test", "Express {v} {fu} in {tu}."),
            Phrasing("unit-equals", "test", "{v} {fu} is equal to how many {tu}?"),
        ),
    ),
    "sorting": Family(
        "sorting",
        "sorting a short list of numbers",
        ("asc", "desc"),
        _make_sorting,
        (
            Phrasing("sort-smallest", "train", "Sort these numbers from smallest to largest: {nums}.", "asc"),
            Phrasing("sort-desc", "train", "Put these numbers in descending order: {nums}.", "desc"),
            Phrasing("sort-increasing", "validation", "Arrange {nums} in increasing order.", "asc"),
            Phrasing(
                "sort-largest", "validation", "List the following from largest to smallest: {nums}.", "desc"
            ),
        ),
    ),
    "counting": Family(
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
    ),
    "strings": Family(
        "strings",
        "reversing, indexing and palindrome checks",
        ("reverse", "nth", "palindrome"),
        _make_strings,
        (
            Phrasing("str-reverse", "train", "Reverse the string '{w}'.", "reverse"),
            Phrasing("str-nth", "train", "What is the {ord} letter of '{w}'?", "nth"),
            Phrasing("str-palindrome", "train", "Is '{w}' a palindrome? Answer yes or no.", "palindrome"),
            Phrasing("str-backwards", "test", "Write '{w}' backwards.", "reverse"),
            Phrasing("str-position", "test", "Which letter is at position {n} in '{w}'?", "nth"),
            Phrasing(
                "str-same",
                "test",
                "Does '{w}' read the same forwards and backwards? Answer yes or no.",
                "palindrome",
            ),
        ),
    ),
    "dates": Family(
        "dates",
        "weekdays, day counts and date arithmetic",
        ("weekday", "between", "add"),
        _make_dates,
        (
            Phrasing("date-weekday", "test", "On which day of the week does {date} fall?", "weekday"),
            Phrasing("date-between", "test", "How many days after {d1} is {d2}?", "between"),
            Phrasing("date-add", "test", "What date is {k} days after {d1}?", "add"),
            Phrasing("date-add-later", "test", "Starting from {d1}, what is the date {k} days later?", "add"),
        ),
    ),
    "percentages": Family(
        "percentages",
        "percentages of, increases, decreases and ratios",
        ("of", "increase", "decrease", "what_percent"),
        _make_percentages,
        (
            Phrasing("pct-of", "validation", "What is {p}% of {N}?", "of"),
            Phrasing("pct-find", "validation", "Find {p} percent of {N}.", "of"),
            Phrasing(
                "pct-increase",
                "validation",
                "A price of {N} dollars goes up by {p}%. What is the new price in dollars?",
                "increase",
            ),
            Phrasing(
                "pct-decrease",
                "validation",
                "A jacket costing {N} dollars is reduced by {p}%. What does it cost now, in dollars?",
                "decrease",
            ),
            Phrasing("pct-ratio", "validation", "{x} is what percent of {N}?", "what_percent"),
        ),
    ),
}

from cj2.data.tasks_easy import EASY_FAMILIES, key_split  # noqa: E402 - needs Problem, Family, Phrasing above

for _name in FAMILIES:
    assert _name not in EASY_FAMILIES, _name
FAMILIES.update(EASY_FAMILIES)

TIERS = ("easy", "hard")
"""Difficulty tiers (``data.builtin.tiers``): ``easy`` (:mod:`cj2.data.tasks_easy`, within a small model's
reach) and ``hard`` (the families above: multi-step work a 135M model cannot check)."""
DEFAULT_TIERS = ("hard",)
SPLIT_NAMES = ("train", "validation", "test")


def _check_tiers(tiers: Sequence[str] | str | None) -> tuple[str, ...]:
    chosen = (
        DEFAULT_TIERS
        if tiers is None
        else ((tiers,) if isinstance(tiers, str) else tuple(str(t) for t in tiers))
    )
    unknown = [t for t in chosen if t not in TIERS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown task tiers {unknown or list(chosen)}; expected a non-empty subset of {list(TIERS)}"
        )
    return chosen


def split_families(split: str, tiers: Sequence[str] | str | None = None) -> list[str]:
    """The families of ``split`` in ``tiers`` (default: the hard tier), in registry order."""
    chosen = _check_tiers(tiers)
    return [name for name, fam in FAMILIES.items() if fam.tier in chosen and fam.phrasings_for(split)]


SPLITS: dict[str, list[str]] = {split: split_families(split, DEFAULT_TIERS) for split in SPLIT_NAMES}
"""Families per split of the hard tier. Validation holds out ``percentages`` and test ``dates`` entirely, and
the families they share with train appear there only in phrasings train never uses. The easy tier holds out
``first_letter`` (validation) and ``next_in_sequence`` (test) the same way: :func:`split_families`."""


def held_out_families(split: str, tiers: Sequence[str] | str | None = None) -> list[str]:
    """The families of ``split`` that train never sees (whole families held out)."""
    train = set(split_families("train", tiers))
    return [f for f in split_families(split, tiers) if f not in train]


# ------------------------------------------------------------- answer styles

_STYLES = (
    "{value}",
    "The answer is {value}.",
    "{Work}. So the answer is {value}.",
    "Answer: {value}",
    "{Work}, which gives {value}.",
    "Working it out: {work}. The result is {value}.",
    "{value} ({work})",
    "Final answer: {value}.",
)


def _cap(text: str) -> str:
    """Capitalise a leading English word ("letters ..." -> "Letters ..."), never data ("t(1) i(2)", "'r'")."""
    return text[:1].upper() + text[1:] if re.match(r"[a-z]{2,}\b(?!\()", text) else text


def _style(style: str, value: str, work: Sequence[str]) -> str:
    w = "; ".join(work)
    return style.format(value=value, work=w, Work=_cap(w))


def _answers(rng: random.Random, problem: Problem) -> tuple[str, str]:
    """The correct and the wrong response, in two different styles; whether the correct one is the longer
    is a coin flip, so length says nothing about correctness."""
    if not problem.styled:  # the answer is the text itself (an instruction-following answer)
        return problem.truth, problem.wrong
    s1, s2 = rng.sample(_STYLES, 2)
    options = [
        (_style(s1, problem.truth, problem.work), _style(s2, problem.wrong, problem.wrong_work)),
        (_style(s2, problem.truth, problem.work), _style(s1, problem.wrong, problem.wrong_work)),
    ]
    correct_longer = rng.random() < 0.5
    fitting = [o for o in options if (len(o[0]) > len(o[1])) == correct_longer]
    return rng.choice(fitting or options)


# ------------------------------------------------------------------ generator


def _has_step(text: str, step: str) -> bool:
    """Whether ``step`` is written in ``text`` as a whole (``= 180`` is not in ``= 1800``)."""
    return re.search(rf"(?<![\w.]){re.escape(step)}(?!\w|\.\d)", text) is not None


def _problem_defects(p: Problem) -> list[str]:
    """Why ``p`` cannot be used (empty when it can): the wrong answer must differ from the truth, and the
    mistaken steps must be findable in the flawed checks and absent from the sound one."""
    work, wrong_work, slip_work = "; ".join(p.work), "; ".join(p.wrong_work), "; ".join(p.slip_work)
    defects = []
    if p.truth == p.wrong:
        defects.append("wrong answer equals the truth")
    if not _has_step(wrong_work, p.wrong_step) or _has_step(work, p.wrong_step):
        defects.append("wrong_step must be in wrong_work and not in work")
    if not _has_step(slip_work, p.slip_step) or _has_step(work, p.slip_step):
        defects.append("slip_step must be in slip_work and not in work")
    return defects


_MAX_DRAWS = 50


def _draw_problem(family: Family, rng: random.Random, subtask: str | None, where: str) -> Problem:
    """A problem without defects; a rare degenerate draw (a misread that spells another step) is redrawn
    from the same generator, so the result stays a pure function of the seed."""
    for _ in range(_MAX_DRAWS):
        problem = family.make(rng, subtask)
        defects = _problem_defects(problem)
        if not defects:
            return problem
    raise AssertionError(f"{where}: generator bug, no usable problem in {_MAX_DRAWS} draws: {defects}")


def _split_families(
    split: str, families: Sequence[str] | None, tiers: Sequence[str] | str | None = None
) -> list[str]:
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_NAMES)}")
    if families is None:
        return split_families(split, tiers)
    allowed = split_families(split, TIERS)  # named families may come from any tier
    chosen = [families] if isinstance(families, str) else [str(f) for f in families]
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known families: {sorted(FAMILIES)}")
    outside = [f for f in chosen if f not in allowed]
    if outside:
        raise ValueError(
            f"families {outside} are not in split {split!r}, which has {allowed} "
            f"(held-out families belong to one split only)"
        )
    if not chosen:
        raise ValueError("families must name at least one family")
    return chosen


_MAX_KEY_DRAWS = 400


def _draw_for_split(
    family: Family, rng: random.Random, subtask: str | None, split: str, where: str
) -> Problem:
    """A problem whose question key belongs to ``split`` (families with ``key_splits``), else any problem."""
    for _ in range(_MAX_KEY_DRAWS if family.key_splits else 1):
        problem = _draw_problem(family, rng, subtask, where)
        if not family.key_splits or key_split(family.name, str(problem.params["key"])) == split:
            return problem
    raise AssertionError(
        f"{where}: no question of family {family.name!r} belongs to split {split!r} in "
        f"{_MAX_KEY_DRAWS} draws (the family's table is too small for three splits)"
    )


def generate_items(
    n: int,
    *,
    split: str = "train",
    seed: int = 0,
    families: Sequence[str] | None = None,
    tiers: Sequence[str] | str | None = None,
) -> list[PairwiseItem]:
    """``n`` pairwise judge items of ``split`` whose truth is computed (module docstring).

    Item ``i`` is a pure function of ``(split, seed, i, families)``, so ``generate_items(n)`` is a prefix of
    ``generate_items(2 * n)``. Items ``2k`` and ``2k + 1`` share a family and have opposite labels, so the
    labels of an even ``n`` are exactly half ``"A"``, half ``"B"``. The id is
    ``builtin/{split}/{family}/{seed}/{i}``; ``meta`` holds the truth, the wrong value, the error kind, the
    inputs (``params``) and the check steps :func:`build_judgment` uses. ``tiers`` picks the families when
    ``families`` is None (default: the hard tier, :data:`DEFAULT_TIERS`; ``["easy"]``, ``["easy", "hard"]``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fams = _split_families(split, families, tiers)
    items = []
    for i in range(n):
        family = FAMILIES[fams[(i // 2) % len(fams)]]
        first = random.Random(f"builtin-label|{split}|{seed}|{i // 2}").choice("AB")
        label = first if i % 2 == 0 else {"A": "B", "B": "A"}[first]
        rng = random.Random(f"builtin|{split}|{family.name}|{seed}|{i}")
        phrasing = rng.choice(family.phrasings_for(split))
        item_id = f"builtin/{split}/{family.name}/{seed}/{i}"
        problem = _draw_for_split(family, rng, phrasing.subtask, split, item_id)
        correct, wrong = _answers(rng, problem)
        a, b = (correct, wrong) if label == "A" else (wrong, correct)
        items.append(
            PairwiseItem(
                id=item_id,
                question=phrasing.text.format(**problem.fields),
                response_a=a,
                response_b=b,
                label=label,
                domain=family.name,
                language="en",
                source=SOURCE,
                meta={
                    "family": family.name,
                    "subtask": problem.subtask,
                    "phrasing": phrasing.id,
                    "split": split,
                    "seed": seed,
                    "truth": problem.truth,
                    "wrong_value": problem.wrong,
                    "tier": family.tier,
                    **(
                        {"truth_view": problem.truth_view, "wrong_view": problem.wrong_view}
                        if problem.truth_view is not None
                        else {}
                    ),
                    "error_kind": problem.error_kind,
                    "params": problem.params,
                    "demand": problem.demand,
                    "hint": problem.hint,
                    "check": {
                        "work": problem.work,
                        "wrong_work": problem.wrong_work,
                        "slip_work": problem.slip_work,
                        "wrong_step": problem.wrong_step,
                        "slip_step": problem.slip_step,
                    },
                },
            )
        )
    return items


def pointwise_views(item: PairwiseItem) -> list[PointwiseItem]:
    """The two responses of a built-in item as pointwise correctness items (``{id}/A``, ``{id}/B``): the
    knowledge-based pointwise data of arXiv 2507.09104, Sec. 3.1."""
    _require_builtin(item)
    views = []
    for pos, response in (("A", item.response_a), ("B", item.response_b)):
        correct = pos == item.label
        views.append(
            PointwiseItem(
                id=f"{item.id}/{pos}",
                question=item.question,
                response=response,
                correct=correct,
                domain=item.domain,
                language=item.language,
                source=item.source,
                meta={
                    **item.meta,
                    "value": item.meta["truth"] if correct else item.meta["wrong_value"],
                    "pair_id": item.id,
                    "position": pos,
                },
            )
        )
    return views


# ------------------------------------------------------------------ judgments

_OTHER = {"A": "B", "B": "A"}


def _require_builtin(item: PairwiseItem | PointwiseItem) -> None:
    check = item.meta.get("check") if isinstance(item.meta, dict) else None
    if not isinstance(check, dict) or "truth" not in item.meta:
        raise ValueError(
            f"item {item.id!r} is not a built-in task item (meta['check'] and meta['truth'] are "
            f"needed to write a judgment that checks the answers)"
        )


def _as_rng(rng: random.Random | int | None, *default_key: object) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if rng is None:
        return random.Random("|".join(map(str, ("judgment", *default_key))))
    return random.Random(f"judgment|{int(rng)}|{'|'.join(map(str, default_key))}")


@dataclass
class _Belief:
    """What the judge's check concluded: its work, the value it believes, the value it reads in each
    response and whether that matches."""

    work: list[str]
    value: str
    quoted: dict[str, str]
    ok: dict[str, bool]
    flawed: bool
    sound: bool  # the work recomputes the truth correctly


def _views(meta: dict[str, Any]) -> tuple[str, str]:
    """What a check says the right and the wrong answer give (the values, or their views)."""
    return meta.get("truth_view", meta["truth"]), meta.get("wrong_view", meta["wrong_value"])


def _pairwise_belief(item: PairwiseItem, flawed: bool, verdict: str) -> _Belief:
    m, c = item.meta, item.meta["check"]
    truth, wrong = _views(m)
    value = {item.label: truth, _OTHER[item.label]: wrong}
    right = verdict == item.label
    if flawed and not right:  # the check repeats the wrong answer's mistake and believes it
        work, believed, quoted = c["wrong_work"], wrong, dict(value)
    elif flawed:  # a slip in the check, the conclusion right anyway
        work, believed, quoted = c["slip_work"], truth, dict(value)
    elif right:
        work, believed, quoted = c["work"], truth, dict(value)
    else:  # a sound computation, but the judge reads the two answers the wrong way round
        work, believed, quoted = c["work"], truth, {"A": value["B"], "B": value["A"]}
    ok = {pos: quoted[pos] == believed for pos in ("A", "B")}
    return _Belief(list(work), believed, quoted, ok, flawed, sound=not flawed)


def _judge_words(rng: random.Random, ok: bool) -> tuple[str, str]:
    """(adjective, verb phrase): ("correct", "matches") or ("wrong", "does not match"), varied."""
    if ok:
        return rng.choice(["correct", "right"]), rng.choice(["matches", "agrees"])
    return rng.choice(["wrong", "incorrect"]), rng.choice(["does not match", "is off"])


def _short_sections(b: _Belief, rng: random.Random) -> dict[str, str]:
    work = "; ".join(b.work)
    out = {}
    work_at = rng.choice("AB")
    for pos in "AB":
        adj, verb = _judge_words(rng, b.ok[pos])
        v = b.quoted[pos]
        if pos == work_at:
            out[f"Check {pos}"] = rng.choice(
                [
                    f"{_cap(work)}. {pos} gives {v}: {adj}.",
                    f"Recomputing: {work}. {pos}'s {v} is {adj}.",
                    f"{_cap(work)}, so {pos}'s {v} {verb}.",
                ]
            )
        else:
            out[f"Check {pos}"] = rng.choice(
                [
                    f"{pos} gives {v}: {adj}.",
                    f"{pos}'s {v} is {adj}.",
                    f"{pos} says {v}, which {verb}.",
                ]
            )
    return out


def _truth_sections(b: _Belief, rng: random.Random) -> dict[str, str]:
    """``cj2_check``: the truth first, then what each answer gives, then which answer gives the truth.

    Each step is one a small model can take: state a fact or a one-step computation (``Truth``), copy each
    answer's value with its label (``Answers``: ``wet (Model A); dry (Model B)``), and copy the value that
    equals the truth together with its label (``Match``: ``dry (Model B)``), so that the verdict is read off
    the text rather than bound to a letter in one step (small models bind contents to option letters
    poorly). One wording on purpose: varied phrasings would spread a small judge's signal thin; template
    diversity comes from the templates.
    """
    answers = "; ".join(f"{b.quoted[pos]} (Model {pos})" for pos in "AB")
    matches = [pos for pos in "AB" if b.ok[pos]]
    match = (
        f"{b.quoted[matches[0]]} (Model {matches[0]})"
        if len(matches) == 1
        else ("both" if matches else "neither")
    )
    return {"Truth": _cap("; ".join(b.work)) + ".", "Answers": answers, "Match": match}


def _critical_sections(item: PairwiseItem, b: _Belief, winner: str, rng: random.Random) -> dict[str, str]:
    work = "; ".join(b.work)
    demand = item.meta.get("demand", "the answer to the question")
    out = {
        "User's Demand": rng.choice(
            [f"The user wants {demand}.", f"Find {demand}.", f"The question asks for {demand}."]
        )
    }
    for pos in "AB":
        v = b.quoted[pos]
        if b.ok[pos]:
            out[f"Strengths of Model {pos}"] = rng.choice(
                [
                    f"It gives {v}, which agrees with the recomputed result.",
                    f"Its answer {v} is right.",
                    f"{_cap(v)} is the correct result.",
                ]
            )
            out[f"Weaknesses of Model {pos}"] = rng.choice(
                ["None found.", "No error in the result.", "Nothing significant."]
            )
        else:
            out[f"Strengths of Model {pos}"] = rng.choice(
                ["It gives a direct answer.", "It commits to a single answer.", "It answers in a clear form."]
            )
            weak = f"{_cap(v)} is wrong; the result should be {b.value}."
            # Naming the mistake is only possible when the judge reads the real wrong answer correctly.
            if b.sound and v == _views(item.meta)[1] and item.meta.get("hint"):
                weak += f" {_cap(item.meta['hint'])}."
            out[f"Weaknesses of Model {pos}"] = weak
    loser = _OTHER[winner]
    out["Reasoning"] = rng.choice(
        [
            f"Checking: {work}. Only Model {winner}'s answer matches, so Model {winner} is better.",
            f"Recomputing gives {work}. Model {winner} has it right and Model {loser} does not.",
            f"{_cap(work)}. The result is {b.value}, which Model {winner} gives.",
        ]
    )
    return out


def _prose(b: _Belief, winner: str, party: str, rng: random.Random) -> str:
    work = "; ".join(b.work)
    adj = {pos: _judge_words(rng, b.ok[pos])[0] for pos in "AB"}
    qa, qb = b.quoted["A"], b.quoted["B"]
    return rng.choice(
        [
            f"{_cap(work)}. {party} A gives {qa}, which is {adj['A']}; "
            f"{party} B gives {qb}, which is {adj['B']}. "
            f"{party} {winner} answers the question correctly.",
            f"Let me check: {work}. {party} A answers {qa} ({adj['A']}) "
            f"and {party} B answers {qb} ({adj['B']}). "
            f"{party} {winner} is correct, so it is the better answer.",
            f"My own answer: {work}, so the result is {b.value}. {party} A says {qa}, which is {adj['A']}. "
            f"{party} B says {qb}, which is {adj['B']}. {party} {winner} is better.",
        ]
    )


def _pointwise_judgment(
    item: PointwiseItem, template: JudgeTemplate, flawed: bool, verdict: str | None, rng: random.Random
) -> str:
    m, c = item.meta, item.meta["check"]
    if verdict is None:
        verdict = default_verdict(item, template, rng)
    if verdict not in labels_for(template.format):
        raise ValueError(f"verdict {verdict!r} is not a label of format {template.format!r}")
    says_correct = verdict == "yes" if template.format == "correctness" else int(verdict) >= 6
    right = says_correct == bool(item.correct)
    truth, wrong = _views(m)
    value = truth if item.correct else wrong
    other = wrong if item.correct else truth
    if flawed and not right:  # believes the wrong value: agrees with a wrong response, rejects a right one
        work, believed, quoted = c["wrong_work"], wrong, value
    elif flawed:
        work, believed, quoted = c["slip_work"], truth, value
    elif right:
        work, believed, quoted = c["work"], truth, value
    else:  # sound computation, response misread
        work, believed, quoted = c["work"], truth, other
    ok = quoted == believed
    adj, verb = _judge_words(rng, ok)
    w = "; ".join(work)
    text = rng.choice(
        [
            f"{_cap(w)}. The response gives {quoted}, which is {adj}.",
            f"Recomputing: {w}. The response's {quoted} {verb}.",
        ]
    )
    if template.format == "score":
        text += " " + ("It answers the question accurately." if ok else "The final answer is wrong.")
    keys = template.response_keys(item.language)
    sections = {keys[0]: text} if len(keys) == 1 else text
    return template.render_response(sections, verdict, language=item.language)


def default_verdict(
    item: PairwiseItem | PointwiseItem, template: JudgeTemplate, rng: random.Random | int | None = None
) -> str:
    """The gold verdict of a built-in item under ``template``: the correct position (pairwise), ``yes``/``no``
    (correctness), or a score of 8-10 for a correct response and 1-3 for a wrong one (score; seeded)."""
    if template.kind == "pairwise":
        return item.label
    if template.format == "correctness":
        return "yes" if item.correct else "no"
    if template.format == "score":
        r = _as_rng(rng, item.id, template.name, "score")
        return str(r.choice([8, 9, 10]) if item.correct else r.choice([1, 2, 3]))
    raise ValueError(f"no default verdict for pointwise format {template.format!r}")


def build_judgment(
    item: PairwiseItem | PointwiseItem,
    template: JudgeTemplate | str,
    *,
    flawed: bool = False,
    verdict: str | None = None,
    rng: random.Random | int | None = None,
) -> str:
    """A critical-thinking judgment of a built-in item (arXiv 2507.09104, Sec. 3.2) in ``template``'s format.

    The reasoning recomputes the answer in a few steps ("17 * 3 = 51; 51 + 8 = 59"), says which response
    matches, and ends with ``verdict`` (default: the correct one) via ``template.render_response``. With
    ``flawed=True`` the check holds a realistic mistake: for a wrong verdict it repeats the wrong answer's
    error (a miscomputed value, a missed constraint) and believes it; for the right verdict it miscomputes
    an intermediate value yet lands on the right answer. ``flawed=False`` with a wrong verdict gives a
    sound computation whose judge misreads which response says what. Wording is drawn from several
    sentence templates with ``rng`` (default: seeded by item, template, flawed and verdict).
    """
    template = get_template(template) if isinstance(template, str) else template
    _require_builtin(item)
    r = _as_rng(rng, item.id, template.name, flawed, verdict)
    if template.kind != item.kind:
        raise TypeError(f"template {template.name!r} is {template.kind} but item {item.id!r} is {item.kind}")
    if template.kind == "pointwise":
        return _pointwise_judgment(item, template, flawed, verdict, r)
    verdict = item.label if verdict is None else verdict
    if verdict not in ("A", "B"):
        raise ValueError(
            f"built-in items have a correct and a wrong answer; verdict must be 'A' or 'B', got {verdict!r}"
        )
    if verdict not in labels_for(template.format):
        raise ValueError(f"verdict {verdict!r} is not a label of format {template.format!r}")
    belief = _pairwise_belief(item, flawed, verdict)
    keys = template.response_keys(item.language)
    if set(keys) == {"Check A", "Check B"}:
        sections: dict[str, str] | str = _short_sections(belief, r)
    elif keys == ("Truth", "Answers", "Match"):
        sections = _truth_sections(belief, r)
    elif template.name == "cj2_direct":
        sections = ""  # verdict only
    elif set(keys) == {
        "User's Demand",
        "Strengths of Model A",
        "Weaknesses of Model A",
        "Strengths of Model B",
        "Weaknesses of Model B",
        "Reasoning",
    }:
        sections = _critical_sections(item, belief, verdict, r)
    elif len(keys) <= 1:
        text = _prose(belief, verdict, template.party, r)
        sections = {keys[0]: text} if keys else text
    else:
        raise ValueError(
            f"build_judgment does not know how to fill the keys {list(keys)} of template {template.name!r}"
        )
    return template.render_response(sections, verdict, language=item.language)


# -------------------------------------------------------------------- records


def _names(template_names: Sequence[str] | str) -> tuple[str, ...]:
    # A lone name is one template, not a sequence of one-letter names.
    return (template_names,) if isinstance(template_names, str) else tuple(template_names)


def _gold(
    item: PairwiseItem, names: Sequence[str], seed: int
) -> tuple[PairwiseItem | PointwiseItem, JudgeTemplate, str, random.Random]:
    """What a record of ``item`` judges, in which template, with which gold verdict, and the generator its
    wording is drawn from. A pointwise template judges one of the two responses (seeded)."""
    template = sample_template(seed, item.id, names)
    judged: PairwiseItem | PointwiseItem = item
    if template.kind == "pointwise":
        judged = pointwise_views(item)[random.Random(f"view|{seed}|{item.id}").randrange(2)]
    r = random.Random(f"record|{seed}|{judged.id}|{template.name}")
    return judged, template, default_verdict(judged, template, r), r


def build_records(
    items: Sequence[PairwiseItem], template_names: Sequence[str] | str = ("cj2_short",), *, seed: int = 0
) -> list[TrainRecord]:
    """Gold training records (sound checks, correct verdicts) for built-in items.

    Each item gets one template drawn with :func:`~cj2.data.templates.sample_template` (template diversity,
    arXiv 2507.09104, Sec. 3.1); a pointwise template judges one of the item's two responses (seeded).
    """
    names = _names(template_names)
    records = []
    for item in items:
        judged, template, verdict, r = _gold(item, names, seed)
        records.append(
            TrainRecord(
                id=judged.id,
                messages=template.render(judged),
                response=build_judgment(judged, template, verdict=verdict, rng=r),
                verdict=verdict,
                format=template.format,
                source=SOURCE,
                meta={"template": template.name, "family": item.domain},
            )
        )
    return records


def _opposite(verdict: str, template: JudgeTemplate) -> str:
    if template.kind == "pairwise":
        return _OTHER[verdict]
    if template.format == "correctness":
        return "no" if verdict == "yes" else "yes"
    return str(11 - int(verdict))  # score: 8-10 <-> 3-1


def build_preference_records(
    items: Sequence[PairwiseItem], template_names: Sequence[str] | str = ("cj2_short",), *, seed: int = 0
) -> list[PreferenceRecord]:
    """Preference pairs for sequence DPO: ``chosen`` is the gold judgment (the response of
    :func:`build_records`), ``rejected`` a flawed check that reaches the other verdict (what rejection
    sampling discards, arXiv 2507.09104, Sec. 3.2)."""
    names = _names(template_names)
    records = []
    for item in items:
        judged, template, verdict, r = _gold(item, names, seed)
        chosen = build_judgment(judged, template, verdict=verdict, rng=r)
        rejected = build_judgment(judged, template, flawed=True, verdict=_opposite(verdict, template), rng=r)
        records.append(
            PreferenceRecord(
                id=judged.id,
                messages=template.render(judged),
                chosen=chosen,
                rejected=rejected,
                format=template.format,
                source=SOURCE,
                meta={"template": template.name, "family": item.domain},
            )
        )
    return records


def builtin_dataset(
    split: str, n: int, *, seed: int = 0, template_names: Sequence[str] | str = ("cj2_short",)
) -> list[TrainRecord]:
    """``n`` gold training records of ``split``: :func:`generate_items` then :func:`build_records`."""
    return build_records(generate_items(n, split=split, seed=seed), template_names, seed=seed)
