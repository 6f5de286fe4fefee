"""Whether a free-form answer to a built-in task is right: the per-kind checks each family names.

Every :class:`~cj2.data.tasks.base.Family` carries its answer checker (``Family.check``), a function
``check(truth, value, params) -> bool`` of the computed truth, the answer's value (what a policy wrote
after ``Answer:``, :func:`cj2.refinement.checking.extract_answer`) and the item's params:

* numbers (:func:`check_number`: ``arithmetic``, ``small_arithmetic``, ``compare``, ``counting``): equal
  as decimals, thousands separators allowed (``1,000``), a trailing full stop ignored;
* quantities (:func:`check_quantity`: ``unit_conversion``, ``percentages``): the same number, and the
  unit when one is written (``8100 cm``, ``8100cm``, ``8100 centimetres`` and ``8100`` are right for
  ``8100 cm``; ``8100 m`` is not); ``7%``, ``7 %``, ``7 percent`` and ``7`` for ``7%``;
* lists (:func:`check_number_list`: ``sorting``): exactly the sequence of numbers, in order;
* dates (:func:`check_date_or_text`: ``dates``): a weekday by name, a date in any common layout
  (``20 June 2022``, ``June 20, 2022``, ``2022-06-20``, ``20th June 2022``);
* words and short facts (:func:`check_text`: ``capitals``, ``antonyms``, ``plurals``, ``science``,
  ``reading``, ``strings``, ``first_letter``, ``next_in_sequence``): the same text after case folding,
  stripping quotes, a final full stop and a leading article (``'u'`` = ``u``, ``The Nile`` = ``Nile``);
  numeric truths compare as numbers;
* ``instructions`` (:func:`check_instruction`; the truth is a description, e.g. "all capital letters"): a
  real check of the instruction in the item's params on the answer text: the required word is used in a
  single sentence, all letters capital / lowercase, exactly N comma-separated items, fewer than / at least
  N words. The constraint is what is checked (what the family's judgments check), not the content.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Checker = Callable[[str, str, Mapping[str, Any]], bool]
"""``check(truth, value, params) -> bool``: whether ``value`` is a right answer."""

WRAP = "\"'“”‘’`*_[]()"


def normalise(value: str) -> str:
    """Case-folded text without wrapping quotes or markdown, a final full stop or extra whitespace."""
    text = unicodedata.normalize("NFKC", value).strip()
    previous = None
    while previous != text:
        previous = text
        text = text.strip().rstrip(".!。").strip()
        if len(text) >= 2 and text[0] in WRAP and text[-1] in WRAP:
            text = text[1:-1]
        text = text.strip("*_`").strip()
    return " ".join(text.casefold().split())


_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def parse_number(value: str) -> Decimal | None:
    """A number written alone (``16``, ``-3``, ``1,000``, ``2.50``, ``= 16``), else ``None``."""
    text = normalise(value).lstrip("=").strip()
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text.replace(",", "").replace("−", "-"))
    except InvalidOperation:
        return None


_UNITS: dict[str, tuple[str, ...]] = {
    "km": ("km", "kilometer", "kilometers", "kilometre", "kilometres"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos"),
    "g": ("g", "gram", "grams", "gramme", "grammes"),
    "l": ("l", "liter", "liters", "litre", "litres"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "min": ("min", "mins", "minute", "minutes"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "%": ("%", "percent", "per cent"),
}
_UNIT_OF = {alias: unit for unit, aliases in _UNITS.items() for alias in aliases}
_QUANTITY = re.compile(rf"({_NUMBER.pattern})\s*([a-z%][a-z ]*)?")


def parse_quantity(value: str) -> tuple[Decimal, str | None] | None:
    """``(number, unit)`` of ``8100 cm`` / ``7%`` / ``16`` (unit ``None``); units by their usual names."""
    m = _QUANTITY.fullmatch(normalise(value))
    if m is None:
        return None
    number = parse_number(m.group(1))
    unit = (m.group(2) or "").strip()
    if number is None or (unit and unit not in _UNIT_OF):
        return None
    return number, (_UNIT_OF[unit] if unit else None)


_ARTICLE = re.compile(r"^(?:the|a|an)\s+")


def _same_text(truth: str, value: str) -> bool:
    t, v = normalise(truth), normalise(value)
    return t == v or _ARTICLE.sub("", t) == _ARTICLE.sub("", v)


# ------------------------------------------------------------------------------------------ per kind
def check_number(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    t, v = parse_number(truth), parse_number(value)
    return t is not None and v is not None and t == v


def check_quantity(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    t, v = parse_quantity(truth), parse_quantity(value)
    if t is None or v is None:
        return False
    return t[0] == v[0] and (v[1] is None or v[1] == t[1])


_LIST = re.compile(rf"[\[(]?\s*{_NUMBER.pattern}(?:\s*[,;<]?\s*{_NUMBER.pattern})*\s*[\])]?")


def check_number_list(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    text = normalise(value)
    if not _LIST.fullmatch(text):
        return False
    numbers = [Decimal(x.replace(",", "")) for x in re.findall(r"-?\d+(?:\.\d+)?", text.replace(", ", " "))]
    return numbers == [Decimal(x) for x in re.findall(r"-?\d+(?:\.\d+)?", truth)]


_DATE_LAYOUTS = ("%d %B %Y", "%B %d %Y", "%d %b %Y", "%b %d %Y", "%Y-%m-%d")


def parse_date(value: str) -> _dt.date | None:
    """A calendar date written in a common layout (module docstring), else ``None``."""
    text = normalise(value).replace(",", " ")
    text = re.sub(r"\b(\d{1,2})(?:st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\bof\b", " ", text)
    text = " ".join(text.split())
    for layout in _DATE_LAYOUTS:
        try:
            return _dt.datetime.strptime(text, layout).date()
        except ValueError:
            continue
    return None


def check_date_or_text(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    t = parse_date(truth)
    if t is None:
        return check_text(truth, value, params)
    return parse_date(value) == t


def check_text(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    if parse_number(truth) is not None:
        return check_number(truth, value, params)
    return _same_text(truth, value)


_WORDS = re.compile(r"[A-Za-z0-9']+")


def _n_words(text: str) -> int:
    return len(_WORDS.findall(text))


def _instruction_number(instruction: str, pattern: str) -> int:
    m = re.search(pattern, instruction)
    if m is None:
        raise ValueError(f"instruction {instruction!r} does not match {pattern!r}")
    return int(m.group(1))


def check_instruction(truth: str, value: str, params: Mapping[str, Any]) -> bool:
    """Whether ``value`` follows the instruction in ``params`` (module docstring)."""
    text = unicodedata.normalize("NFKC", value).strip().strip("*`").strip()
    instruction = str(params.get("instruction", ""))
    subtask = params.get("subtask")
    letters = [c for c in text if c.isalpha()]
    if not letters and subtask != "count":
        return False
    if subtask == "word":
        m = re.search(r"uses the word '([^']+)'", instruction)
        if m is None:
            raise ValueError(f"instruction {instruction!r}: no required word")
        one_sentence = re.search(r"[.!?]\s+\S", text) is None
        return one_sentence and re.search(rf"\b{re.escape(m.group(1))}\b", text, re.I) is not None
    if subtask == "upper":
        return not any(c.islower() for c in letters)
    if subtask == "lower":
        return not any(c.isupper() for c in letters)
    if subtask == "count":
        n = _instruction_number(instruction, r"exactly (\d+)")
        items = [x.strip() for x in text.rstrip(".").split(",")]
        return len(items) == n and all(x and _n_words(x) <= 4 for x in items)
    if subtask == "fewer":
        return 0 < _n_words(text) < _instruction_number(instruction, r"fewer than (\d+) words")
    if subtask == "at_least":
        return _n_words(text) >= _instruction_number(instruction, r"at least (\d+) words")
    raise ValueError(f"instructions: unknown subtask {subtask!r}")
