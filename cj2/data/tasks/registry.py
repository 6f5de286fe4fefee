"""The registry of built-in task families, their difficulty tiers and which families each split holds.

:data:`FAMILIES` is the hard tier (:mod:`cj2.data.tasks.hard`) followed by the easy tier
(:mod:`cj2.data.tasks.easy`), in that order; the order decides which family each item index gets, so it
is part of the seeded output and must not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from cj2.data.tasks.base import Family
from cj2.data.tasks.easy import EASY_FAMILIES
from cj2.data.tasks.hard import HARD_FAMILIES

FAMILIES: dict[str, Family] = dict(HARD_FAMILIES)

for _name in FAMILIES:
    assert _name not in EASY_FAMILIES, _name
FAMILIES.update(EASY_FAMILIES)
for _name, _family in FAMILIES.items():
    assert _family.check is not None, f"task family {_name!r} names no answer checker (Family.check)"

TIERS = ("easy", "hard")
"""Difficulty tiers (``data.builtin.tiers``): ``easy`` (:mod:`cj2.data.tasks.easy`, within a small model's
reach) and ``hard`` (:mod:`cj2.data.tasks.hard`: multi-step work a 135M model cannot check)."""
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
