"""Checking a policy's free-form answer to a built-in task against the computed truth.

The policy is asked to end its reply with a line ``Answer: <value>`` (:data:`ANSWER_INSTRUCTION`);
:func:`extract_answer` reads the value of the last such line (``Final answer:`` and markdown stars are
accepted; nothing else is guessed), and :func:`check_value` compares it with the truth by the answer
checker the item's family carries (:attr:`cj2.data.tasks.Family.check`, :mod:`cj2.data.tasks.answers`).

An answer without an ``Answer:`` line is unparsable, and an unparsable answer counts as wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cj2.data.tasks.answers import WRAP

ANSWER_INSTRUCTION = "End your reply with a last line of the form 'Answer: <your final answer>'."

_ANSWER_LINE = re.compile(r"^[ \t>#*_-]*(?:final[ \t]+)?answer[ \t]*\**[ \t]*[:：][ \t]*(.*)$", re.I | re.M)


def extract_answer(text: str) -> str | None:
    """The value of the last ``Answer: <value>`` line of ``text`` (markdown and quotes around it removed);
    a value on the line after a bare ``Answer:`` is taken too. ``None`` when there is no such line or it
    is empty."""
    if not isinstance(text, str):
        return None
    found = None
    for m in _ANSWER_LINE.finditer(text):
        value = m.group(1).strip()
        if not value.strip(WRAP + " "):  # a bare "Answer:": the value is on the next non-empty line
            rest = text[m.end() :].lstrip("\n").split("\n", 1)[0].strip()
            value = rest if rest and not _ANSWER_LINE.match(rest) else ""
        if value.strip(WRAP + " "):
            found = value
    if found is None:
        return None
    return found.strip().strip("*").strip()


def check_value(family: str, truth: str, value: str | None, params: Mapping[str, Any] | None = None) -> bool:
    """Whether the extracted ``value`` is right for an item of ``family`` (``None``: unparsable, wrong), by
    the family's own answer checker."""
    from cj2.data.tasks import FAMILIES

    if family not in FAMILIES:
        raise KeyError(f"no task family {family!r}; known: {sorted(FAMILIES)}")
    if value is None:
        return False
    return bool(FAMILIES[family].check(str(truth), value, params or {}))


def check_response(
    family: str, truth: str, text: str, params: Mapping[str, Any] | None = None
) -> tuple[str | None, bool]:
    """``(value, correct)`` of a policy's reply: the ``Answer:`` value (``None``: unparsable) and whether
    it is right."""
    value = extract_answer(text)
    return value, check_value(family, truth, value, params)
