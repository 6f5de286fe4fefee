"""The hard tier: multi-step work beyond what a 135M model can check (the v1 set of built-in tasks).

One module per family: ``arithmetic``, ``unit_conversion``, ``sorting``, ``counting``, ``strings``,
``dates``, ``percentages``. Each defines its problem generator and ``FAMILIES``, its registry entries with
their phrasings. :data:`HARD_FAMILIES` collects them in the order of ``MODULES``. That order decides which
family each item index gets, so it is part of the seeded data: never reorder; a new family goes at the end.
"""

from __future__ import annotations

from cj2.data.tasks.base import Family
from cj2.data.tasks.hard import arithmetic, counting, dates, percentages, sorting, strings, unit_conversion

MODULES = (arithmetic, unit_conversion, sorting, counting, strings, dates, percentages)

HARD_FAMILIES: dict[str, Family] = {family.name: family for module in MODULES for family in module.FAMILIES}
