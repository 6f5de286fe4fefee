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

Layout (families live next to their generators; the registry lists them in a fixed order):

* :mod:`~cj2.data.tasks.base`: :class:`Problem`, :class:`Phrasing`, :class:`Family` and the shared helpers;
* :mod:`~cj2.data.tasks.hard`: the hard tier, one module per family (arithmetic, unit conversion, sorting,
  counting, strings, dates, percentages);
* :mod:`~cj2.data.tasks.easy`: the easy tier (within a small model's reach), grouped by kind;
* :mod:`~cj2.data.tasks.registry`: :data:`FAMILIES` (hard, then easy), tiers and splits;
* :mod:`~cj2.data.tasks.generate`: :func:`generate_items` and :func:`pointwise_views`;
* :mod:`~cj2.data.tasks.judgments`: :func:`build_judgment` and :func:`default_verdict`;
* :mod:`~cj2.data.tasks.records`: :func:`build_records`, :func:`build_preference_records`,
  :func:`builtin_dataset`.

A new family is a generator plus its :class:`Family` entry in the ``FAMILIES`` tuple of a module of its tier
(or a new module added at the end of the tier's ``MODULES``). Add at the end, never reorder: the order
decides which family each item index gets, so it is part of the seeded data.
"""

from cj2.data.tasks.base import SOURCE, Family, Phrasing, Problem
from cj2.data.tasks.easy import EASY_FAMILIES, key_split
from cj2.data.tasks.generate import generate_items, pointwise_views
from cj2.data.tasks.hard import HARD_FAMILIES
from cj2.data.tasks.judgments import build_judgment, default_verdict
from cj2.data.tasks.records import build_preference_records, build_records, builtin_dataset
from cj2.data.tasks.registry import (
    DEFAULT_TIERS,
    FAMILIES,
    SPLIT_NAMES,
    SPLITS,
    TIERS,
    held_out_families,
    split_families,
)

__all__ = [
    "DEFAULT_TIERS",
    "EASY_FAMILIES",
    "FAMILIES",
    "HARD_FAMILIES",
    "SOURCE",
    "SPLITS",
    "SPLIT_NAMES",
    "TIERS",
    "Family",
    "Phrasing",
    "Problem",
    "build_judgment",
    "build_preference_records",
    "build_records",
    "builtin_dataset",
    "default_verdict",
    "generate_items",
    "held_out_families",
    "key_split",
    "pointwise_views",
    "split_families",
]
