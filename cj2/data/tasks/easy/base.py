"""The easy tier's shared machinery: which split owns a question, and the one-step problem.

Every fact and every question of a shared easy family belongs to exactly one split (:func:`key_split`, a
hash of the question's key; an exact 70/15/15 partition for the fact tables), so no question of validation
or test appears in train, whatever the phrasing. :func:`make_problem` builds the one-step :class:`Problem` the
easy families share; :func:`make_phrasings` numbers a family's phrasings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cj2.data.tasks.base import Phrasing, Problem

TIER = "easy"

# Share of the keys of a shared family that each split owns (train, validation, test).
_KEY_SHARES = (0.7, 0.85)


def _hash01(family: str, key: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{family}|{key}".encode()).digest()[:8], "big") / 2**64


def table_splits(family: str, keys: Sequence[str]) -> dict[str, str]:
    """Exact shares for a small table: the keys ranked by hash, the first 70 % to train, then validation,
    then test (at least one key each), so no split of a small table comes out empty by chance."""
    ranked = sorted(dict.fromkeys(keys), key=lambda k: _hash01(family, k))
    n = len(ranked)
    n_val = n_test = max(1, round(0.15 * n))
    n_train = n - n_val - n_test
    return {
        k: "train" if i < n_train else "validation" if i < n_train + n_val else "test"
        for i, k in enumerate(ranked)
    }


TABLE_SPLITS: dict[str, dict[str, str]] = {}  # filled by the fact tables' module (easy/facts.py)


def key_split(family: str, key: str) -> str:
    """The split that owns question ``key`` of ``family``: for a fact table an exact 70/15/15 partition
    of its rows, otherwise a stable hash of the key (70 % train, 15 % validation, 15 % test)."""
    table = TABLE_SPLITS.get(family)
    if table is not None:
        if key not in table:
            raise KeyError(f"{family}: {key!r} is not a row of its table")
        return table[key]
    h = _hash01(family, key)
    return "train" if h < _KEY_SHARES[0] else "validation" if h < _KEY_SHARES[1] else "test"


def make_problem(
    subtask: str,
    fields: dict,
    truth: str,
    wrong: str,
    kind: str,
    work: str,
    wrong_work: str,
    demand: str,
    hint: str,
    key: str,
    params: dict,
    *,
    truth_view: str | None = None,
    wrong_view: str | None = None,
    styled: bool = True,
) -> Problem:
    """A one-step problem: the check states the truth (``work``); the wrong answer's check states the
    wrong fact; a flawed check that still lands on the truth adds a mistaken second look."""
    view = wrong_view if wrong_view is not None else wrong
    slip = f"{view} would also fit"
    return Problem(
        subtask=subtask,
        fields=fields,
        truth=truth,
        wrong=wrong,
        error_kind=kind,
        work=[work],
        wrong_work=[wrong_work],
        slip_work=[work, slip],
        wrong_step=wrong_work,
        slip_step=slip,
        demand=demand,
        hint=hint,
        params={**params, "subtask": subtask, "key": key},
        truth_view=truth_view,
        wrong_view=wrong_view,
        styled=styled,
    )


def make_phrasings(family: str, splits: Sequence[tuple[str, str]]) -> tuple[Phrasing, ...]:
    return tuple(Phrasing(f"{family}-{i}", split, text) for i, (split, text) in enumerate(splits))
