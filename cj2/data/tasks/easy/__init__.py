"""The easy tier of the built-in verifiable tasks: questions within a small model's reach.

The hard tier (:mod:`cj2.data.tasks.hard`: multi-step arithmetic, unit conversion, dates, percentages, ...) is
beyond what a 135M model can check, so a judge trained on it at CPU scale learns the output format and
nothing else. The families here are questions whose truth a small instruct model already holds or can
read off the prompt, so that the embedded scale measures judging, the way a small corpus lets one study a
training recipe on a laptop:

* ``small_arithmetic``: a sum or difference of two numbers below 20;
* ``compare``: which of two numbers is larger (or smaller);
* ``capitals``, ``antonyms``, ``plurals``, ``science``: facts looked up from the tables of
  :mod:`~cj2.data.tasks.easy.facts`;
* ``instructions``: instruction-following checks a reader verifies by looking (a required word is
  present, the answer is in capitals / in lower case, exactly N items, fewer than / at least N words);
* ``reading``: a fact read from a short passage (the wrong answer is a distractor from the same passage);
* held out whole: ``first_letter`` (validation only) and ``next_in_sequence`` (test only), to measure
  transfer to a family the judge never trained on.

Truth is computed or looked up; wrong answers are realistic (an off-by-one sum, the larger city for the
capital, a synonym for the antonym, a regularised plural, a neighbouring fact, a miscounted list) and
give nothing away on the surface: offsets are symmetric, "larger"/"smaller" and "fewer"/"at least" are
drawn with equal odds, and both answers are written in the same styles. Every fact and every question of
a shared family belongs to exactly one split (:func:`key_split`, a hash of the fact's key), so no
question of validation or test appears in train, whatever the phrasing.

Layout: :mod:`~cj2.data.tasks.easy.base` (the split of question keys and the one-step problem helper),
then one module per group of families: ``arithmetic`` (``small_arithmetic``, ``compare``), ``facts``
(``capitals``, ``antonyms``, ``plurals``, ``science`` and their tables), ``instructions``, ``reading``,
``held_out`` (``first_letter``, ``next_in_sequence``). Each defines ``FAMILIES``, its registry entries;
:data:`EASY_FAMILIES` collects them in the order of ``MODULES``. That order decides which family each item
index gets, so it is part of the seeded data: never reorder; a new family goes at the end.
"""

from __future__ import annotations

from cj2.data.tasks.base import Family
from cj2.data.tasks.easy import arithmetic, facts, held_out, instructions, reading
from cj2.data.tasks.easy.base import TIER, key_split
from cj2.data.tasks.easy.facts import ANTONYMS, CAPITALS, PLURALS, SCIENCE

MODULES = (arithmetic, facts, instructions, reading, held_out)

EASY_FAMILIES: dict[str, Family] = {family.name: family for module in MODULES for family in module.FAMILIES}

__all__ = ["ANTONYMS", "CAPITALS", "EASY_FAMILIES", "PLURALS", "SCIENCE", "TIER", "key_split"]
