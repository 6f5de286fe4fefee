"""What every built-in task family is made of, and the helpers the families and the generator share.

A family (:class:`Family`) draws a :class:`Problem` from a seeded ``random.Random``: the question's
placeholders, the computed truth, a realistic wrong answer, and the check steps a judgment writes (sound,
repeating the wrong answer's mistake, or with a slip that still reaches the truth). :class:`Phrasing` is
one question template and the split it belongs to. The number and text helpers (``fmt_num``, ``fmt_eq``,
``ordinal``, ``capitalise``) are how the checks write values; :func:`require_builtin` is the test that an
item came from :func:`~cj2.data.tasks.generate.generate_items`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.tasks.answers import Checker

SOURCE = "builtin"


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
    tier: str = "hard"  # "easy": within a small model's reach (cj2.data.tasks.easy); "hard": beyond it
    # Each question key (params["key"]) belongs to one split (cj2.data.tasks.easy.key_split), so no question
    # of validation or test appears in train under any phrasing.
    key_splits: bool = False
    # Whether a free-form answer is right: check(truth, value, params) (cj2.data.tasks.answers); what
    # cj2.refine scores a policy's answers with. Every family names one.
    check: Checker | None = None

    def phrasings_for(self, split: str) -> list[Phrasing]:
        return [p for p in self.phrasings if p.split == split]


def fmt_num(x: int | Decimal) -> str:
    """A number as a person writes it: ``2500``, ``2.5``, ``0.34`` (no exponent, no trailing zeros)."""
    return str(x) if isinstance(x, int) else format(x.normalize(), "f")


def random_sign(rng: random.Random) -> int:
    return 1 if rng.random() < 0.5 else -1


OPS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


def fmt_eq(a: Any, op: str, b: Any, r: Any) -> str:
    return f"{fmt_num(a)} {op} {fmt_num(b)} = {fmt_num(r)}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def capitalise(text: str) -> str:
    """Capitalise a leading English word ("letters ..." -> "Letters ..."), never data ("t(1) i(2)", "'r'")."""
    return text[:1].upper() + text[1:] if re.match(r"[a-z]{2,}\b(?!\()", text) else text


def require_builtin(item: PairwiseItem | PointwiseItem) -> None:
    check = item.meta.get("check") if isinstance(item.meta, dict) else None
    if not isinstance(check, dict) or "truth" not in item.meta:
        raise ValueError(
            f"item {item.id!r} is not a built-in task item (meta['check'] and meta['truth'] are "
            f"needed to write a judgment that checks the answers)"
        )
