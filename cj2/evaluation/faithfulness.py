"""Rationale faithfulness: is a judgment right for the right reasons?

A judgment in the ``cj2_check`` format (or any template whose judgment states the truth and quotes the
answers) says what the correct answer is (``Truth``), what each answer gives (``Answers``), which answer
gives the truth (``Match``) and then its verdict. Other layouts are read too: per-answer sections (``Model
A: ...``, ``Check A``), ``Key: value`` lines, and critiques in prose (``11 + 13 = 24. Model A gives 22,
which is wrong; Model B gives 24, which is right.``, also inside an ``analysis``/``reasoning`` field), whose
quotes are the ``gives X`` / ``says X`` clauses and whose stated truth is the rest. On a built-in task item
the truth is computed (``meta["truth"]``) and the responses are known, so each of those statements can be
checked exactly. CompassJudger-2 lists hallucinated rationales among its limitations (arXiv 2507.09104);
a verdict-only reward (its Eq. 6) cannot see them. This module reads the statements back and classifies each
judgment:

* ``truth_ok``: the stated truth states the computed truth, and none of its own claims is false (an
  identity ``11 + 2 = 15`` or ``11 plus 2 is 15``, a comparison ``7 is larger than 79`` or ``7 is the
  larger``, a unit identity ``1 km = 100 m``, a percentage ``30% = 0.03``);
* ``quote_ok``: each quoted answer is what that response gives (its value, or text it contains);
* ``stated_match``: the answer the judgment's own reasons pick (its ``Match``, or its per-answer
  correct/wrong words), and ``consistent``: the verdict equals it and, where the stated truth and both
  quotes are right (they then pick the gold answer by themselves), the verdict is the gold one;
* ``spurious``: a correct verdict whose stated truth or a quoted answer is wrong (R-Align's S-Corr).

Every field is ``None`` where it cannot be read or checked; data without a computed truth gives no
result at all (:func:`check_judgment` returns ``None``), never a guessed one.

The comparison works on values, not on the templates' wording: text is normalised to tokens (case,
accents, punctuation and quotes dropped, spelled numbers up to 99 read, ``1,000`` read as one number, letters
spelled ``r-e-i`` joined), numbers are exact fractions, a number followed by a unit is a quantity compared in
base units (``0.55 kg`` equals ``550 g``; a bare number matches a quantity of that magnitude), and arithmetic
written out (``11 + 13 = 24``, or just ``11 + 13``) is evaluated, so a truth stated as an expression counts
with its value. A value is *mentioned* where its token sequence occurs (numbers-only values against the
numbers of the text, so ``70 > 66 > 51`` mentions ``70, 66, 51``) and not negated (``not``, ``rather than``,
``instead of`` just before it). Where the truth and the wrong value are both mentioned, a true comparison
between them settles it; otherwise the later mention is the conclusion.

Pure functions, no torch: used by the in-training validation (:mod:`cj2.evaluation.generated`),
``cj2.evaluate``, rejection sampling (the ``spurious`` status, :mod:`cj2.curation.rejection`) and as a
reward term (:func:`is_spurious`).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = [
    "Faithfulness",
    "Reading",
    "Reference",
    "check_judgment",
    "check_rows",
    "faithfulness_metrics",
    "is_spurious",
    "read_judgment",
    "reference_of",
    "rows_metrics",
]

# --------------------------------------------------------------------------------------------------------
# Tokens: words and numbers (quantities)

_UNITS: dict[str, tuple[str, Fraction]] = {}


def _unit(dim: str, factor: Fraction | int | str, *names: str) -> None:
    for n in names:
        _UNITS[n] = (dim, Fraction(factor))


_unit("length", 1, "m", "meter", "meters", "metre", "metres")
_unit("length", 1000, "km", "kilometer", "kilometers", "kilometre", "kilometres")
_unit("length", Fraction(1, 100), "cm", "centimeter", "centimeters", "centimetre", "centimetres")
_unit("length", Fraction(1, 1000), "mm", "millimeter", "millimeters", "millimetre", "millimetres")
_unit("mass", 1, "g", "gram", "grams")
_unit("mass", 1000, "kg", "kilogram", "kilograms", "kilo", "kilos")
_unit("mass", Fraction(1, 1000), "mg", "milligram", "milligrams")
_unit("time", 1, "s", "sec", "secs", "second", "seconds")
_unit("time", 60, "min", "mins", "minute", "minutes")
_unit("time", 3600, "h", "hr", "hrs", "hour", "hours")
_unit("time", 86400, "day", "days")
_unit("volume", 1, "l", "liter", "liters", "litre", "litres")
_unit("volume", Fraction(1, 1000), "ml", "milliliter", "milliliters", "millilitre", "millilitres")
_unit("percent", Fraction(1, 100), "%", "percent", "per cent")

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_TENS["ninety"] = 90
_NUMBER_WORDS = {w: i for i, w in enumerate(_SMALL)} | _TENS | {"hundred": 100}

_NEGATIONS = frozenset(
    {"not", "never", "nor", "rather", "instead", "unlike", "isn't", "aren't", "wasn't", "doesn't", "don't"}
)
_ARTICLES = frozenset({"a", "an", "the"})

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_UNIT_NAMES = sorted(_UNITS, key=len, reverse=True)
_UNIT_RE = "|".join(re.escape(u) for u in _UNIT_NAMES)
_TOKEN = re.compile(
    rf"(?P<date>\b\d{{4}}-\d{{2}}-\d{{2}}\b)"
    rf"|(?P<num>(?<![\w.])-?(?:{_NUM}))(?:\s?(?P<unit>{_UNIT_RE})(?![\w]))?"
    r"|(?P<spelled>\b(?:[A-Za-z]-){2,}[A-Za-z]\b)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)?)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Tok:
    """A word (lower case) or a number; a number with a unit also carries its value in base units."""

    word: str | None = None
    num: Fraction | None = None
    dim: str | None = None
    base: Fraction | None = None
    start: int = 0
    end: int = 0

    def same(self, other: Tok) -> bool:
        if self.word is not None or other.word is not None:
            return self.word == other.word
        if self.dim is not None and other.dim is not None:
            return self.dim == other.dim and self.base == other.base
        return self.num == other.num  # a bare number matches a quantity of that magnitude


def _fold(word: str) -> str:
    """Lower case without accents (``Bogotá`` -> ``bogota``), typographic apostrophes as ``'``."""
    decomposed = unicodedata.normalize("NFKD", word.replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _to_fraction(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def tokens(text: str) -> list[Tok]:
    """``text`` as tokens (module docstring): words lower-cased, numbers exact, units read."""
    out: list[Tok] = []
    spelled: set[int] = set()  # indices of numbers written as words
    text = text or ""
    for m in _TOKEN.finditer(text):
        s, e = m.span()
        if m.group("date"):
            out.append(Tok(word=m.group("date"), start=s, end=e))
        elif m.group("num") is not None:
            value = _to_fraction(m.group("num"))
            unit = m.group("unit")
            if unit is not None:
                dim, factor = _UNITS[unit.lower()]
                out.append(Tok(num=value, dim=dim, base=value * factor, start=s, end=e))
            else:
                out.append(Tok(num=value, start=s, end=e))
        elif m.group("spelled"):
            out.append(Tok(word=m.group("spelled").replace("-", "").lower(), start=s, end=e))
        else:
            w = _fold(m.group("word"))
            if w in _NUMBER_WORDS:
                out.append(Tok(num=Fraction(_NUMBER_WORDS[w]), start=s, end=e))
                spelled.add(len(out) - 1)
            elif w in _UNITS and out and (len(out) - 1) in spelled and text[out[-1].end : s].isspace():
                # a unit after a spelled number ("five kilograms")
                prev = out.pop()
                dim, factor = _UNITS[w]
                out.append(Tok(num=prev.num, dim=dim, base=prev.num * factor, start=prev.start, end=e))
            else:
                out.append(Tok(word=w, start=s, end=e))
    return _join_spelled_tens(out)


def _join_spelled_tens(toks: list[Tok]) -> list[Tok]:
    """``twenty four`` / ``twenty-four`` -> 24 (the hyphen is dropped by the tokenizer)."""
    out: list[Tok] = []
    for t in toks:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.num is not None
            and t.num is not None
            and prev.dim is None
            and prev.num in _TENS.values()
            and 0 < t.num < 10
            and t.start - prev.end <= 1
        ):
            out[-1] = Tok(num=prev.num + t.num, dim=t.dim, base=t.base, start=prev.start, end=t.end)
        else:
            out.append(t)
    return out


def _content(toks: Sequence[Tok]) -> list[Tok]:
    """``toks`` without leading articles (``the heart`` is the value ``heart``)."""
    i = 0
    while i < len(toks) - 1 and toks[i].word in _ARTICLES:
        i += 1
    return list(toks[i:])


# --------------------------------------------------------------------------------------------------------
# Arithmetic and comparisons written in a text

_OPS = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "x": "*", "·": "*", "/": "/", "÷": "/"}
_EXPR = re.compile(
    rf"(?<![\w.])(?:\(\s*)*-?(?:{_NUM})(?:\s*\)+)?(?:\s*[-+*/×÷−·x]\s*(?:\(\s*)*-?(?:{_NUM})(?:\s*\))*)+"
)
_EQ_RHS = re.compile(
    rf"\s*(?:==?|is\s+equal\s+to|equals|is|are|makes|gives|yields)\s*(-?(?:{_NUM}))(?![\d])", re.IGNORECASE
)
_WORD_OPS = (
    (re.compile(r"(?<=\d)\s+plus\s+(?=\d)", re.IGNORECASE), " + "),
    (re.compile(r"(?<=\d)\s+minus\s+(?=\d)", re.IGNORECASE), " - "),
    (re.compile(r"(?<=\d)\s+(?:times|multiplied\s+by)\s+(?=\d)", re.IGNORECASE), " * "),
    (re.compile(r"(?<=\d)\s+divided\s+by\s+(?=\d)", re.IGNORECASE), " / "),
)


def normalise(text: str) -> str:
    """Arithmetic written in words between numbers (``11 plus 13``, ``6 times 7``, ``8 divided by 2``) in
    symbols, so it is evaluated like ``11 + 13``; spelled numbers are read by :func:`tokens`."""
    for pattern, op in _WORD_OPS:
        text = pattern.sub(op, text)
    return text


_COMPARE_WORDS = re.compile(
    rf"(?<![\w.])(?P<a>-?(?:{_NUM}))(?:\s?(?P<ua>{_UNIT_RE})\b)?\s+(?:is\s+|are\s+|was\s+)?"
    r"(?P<rel>larger|greater|bigger|more|higher|heavier|longer|smaller|less|lower|fewer|lighter|shorter)"
    rf"\s+than\s+(?P<b>-?(?:{_NUM}))(?:\s?(?P<ub>{_UNIT_RE})\b)?",
    re.IGNORECASE,
)
_COMPARE_CHAIN = re.compile(rf"(?<![\w.])-?(?:{_NUM})(?:\s*(?:<=|>=|≤|≥|<|>)\s*-?(?:{_NUM}))+")
_GREATER = frozenset({"larger", "greater", "bigger", "more", "higher", "heavier", "longer"})
_EXTREME = r"larger|greater|bigger|higher|smaller|lower|largest|greatest|biggest|highest|smallest|lowest"
_SUPERLATIVE = re.compile(
    rf"(?<![\w.])(?P<a>-?(?:{_NUM}))\s+(?:is|was)\s+(?:the\s+)?(?P<rel>{_EXTREME})\b(?!\s+than)"
    rf"|\b(?:the\s+)?(?P<rel2>{_EXTREME})(?:\s+(?:number|one|value|of\s+the\s+two))?\s+(?:is|was|:)\s+"
    rf"(?P<b>-?(?:{_NUM}))(?![\d.])",
    re.IGNORECASE,
)


def _superlatives(text: str) -> list[tuple[Fraction, bool]]:
    """``79 is the larger`` / ``the smaller number is 7``: ``(value, is_greater)`` for each."""
    out = []
    for m in _SUPERLATIVE.finditer(text):
        value = m.group("a") or m.group("b")
        rel = (m.group("rel") or m.group("rel2")).lower()
        out.append((_to_fraction(value), rel.startswith(("larg", "great", "big", "high"))))
    return out


class _Parser:
    """A recursive-descent evaluator of + - * / and parentheses over exact fractions (no ``eval``)."""

    _TOK = re.compile(rf"\s*(?:({_NUM})|([-+*/×÷−·x()]))")

    def __init__(self, text: str):
        self.items: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            m = self._TOK.match(text, pos)
            if not m:
                if text[pos:].strip() == "":
                    break
                raise ValueError(text)
            pos = m.end()
            if m.group(1) is not None:
                self.items.append(("n", _to_fraction(m.group(1))))
            else:
                op = m.group(2)
                self.items.append(("p", op) if op in "()" else ("o", _OPS[op]))
        self.i = 0

    def parse(self) -> Fraction:
        v = self._sum()
        if self.i != len(self.items):
            raise ValueError("trailing")
        return v

    def _peek(self) -> tuple[str, Any] | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def _sum(self) -> Fraction:
        v = self._prod()
        while (t := self._peek()) is not None and t[0] == "o" and t[1] in "+-":
            self.i += 1
            r = self._prod()
            v = v + r if t[1] == "+" else v - r
        return v

    def _prod(self) -> Fraction:
        v = self._atom()
        while (t := self._peek()) is not None and t[0] == "o" and t[1] in "*/":
            self.i += 1
            r = self._atom()
            if t[1] == "*":
                v = v * r
            elif r == 0:
                raise ZeroDivisionError
            else:
                v = v / r
        return v

    def _atom(self) -> Fraction:
        t = self._peek()
        if t is None:
            raise ValueError("end")
        self.i += 1
        if t == ("o", "-"):
            return -self._atom()
        if t[0] == "n":
            return t[1]
        if t == ("p", "("):
            v = self._sum()
            if self._peek() != ("p", ")"):
                raise ValueError("paren")
            self.i += 1
            return v
        raise ValueError("atom")


def _evaluate(expr: str) -> Fraction | None:
    try:
        return _Parser(expr).parse()
    except (ValueError, ZeroDivisionError):
        return None


@dataclass
class _Claims:
    """What a text asserts beyond its words: evaluated expressions (value and span), the identities and
    comparisons it writes that are false, and the true comparisons ``(a, b, start, end)``."""

    values: list[tuple[Fraction, int, int]] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    true_relations: list[tuple[Fraction, Fraction, int, int]] = field(default_factory=list)


_PERCENT_OF = re.compile(rf"(?<![\w.])(-?(?:{_NUM}))\s*(?:%|percent|per cent)\s+of\s+(-?(?:{_NUM}))", re.I)
_PERCENT_IS = re.compile(rf"(?<![\w.])(-?(?:{_NUM}))\s*%\s*=\s*(-?(?:{_NUM}))(?!\d|\s*%)")
_UNIT_IDENTITY = re.compile(
    rf"(?<![\w.])(-?(?:{_NUM}))\s?({_UNIT_RE})\s*=\s*(-?(?:{_NUM}))\s?({_UNIT_RE})(?!\w)", re.IGNORECASE
)


def _check_equals(out: _Claims, text: str, expr: str, value: Fraction, start: int, end: int) -> None:
    """Record ``expr`` (evaluating to ``value``, at ``start:end``) as a stated value: the number after an
    ``=`` that follows it (false when it differs), else its own value."""
    rhs = _EQ_RHS.match(text, end)
    if rhs is not None:
        stated = _to_fraction(rhs.group(1))
        if stated != value:
            out.false.append(f"{expr.strip()} = {rhs.group(1)} (it is {_fmt(value)})")
        out.values.append((stated, rhs.start(1), rhs.end(1)))
    else:
        out.values.append((value, start, end))


def _claims(text: str) -> _Claims:
    out = _Claims()
    for m in _EXPR.finditer(text):
        value = _evaluate(m.group(0))
        if value is not None:
            _check_equals(out, text, m.group(0), value, m.start(), m.end())
    for m in _PERCENT_OF.finditer(text):  # "20% of 160 = 32"
        value = _to_fraction(m.group(1)) * _to_fraction(m.group(2)) / 100
        _check_equals(out, text, m.group(0), value, m.start(), m.end())
    for m in _PERCENT_IS.finditer(text):  # "30% = 0.3"
        if _to_fraction(m.group(1)) / 100 != _to_fraction(m.group(2)):
            out.false.append(m.group(0))
    for m in _UNIT_IDENTITY.finditer(text):  # "1 km = 1000 m"
        a, b = _UNITS.get(m.group(2).lower()), _UNITS.get(m.group(4).lower())
        if a and b and a[0] == b[0]:
            if _to_fraction(m.group(1)) * a[1] != _to_fraction(m.group(3)) * b[1]:
                out.false.append(m.group(0))
    for m in _COMPARE_WORDS.finditer(text):
        a, b = _quantity(m.group("a"), m.group("ua")), _quantity(m.group("b"), m.group("ub"))
        if a is None or b is None:
            continue
        greater = m.group("rel").lower() in _GREATER
        if (a > b) if greater else (a < b):
            out.true_relations.append((a, b, m.start(), m.end()))
        else:
            out.false.append(m.group(0))
    for m in _COMPARE_CHAIN.finditer(text):
        parts = re.split(r"\s*(<=|>=|≤|≥|<|>)\s*", m.group(0))
        nums = [_to_fraction(p) for p in parts[0::2]]
        for x, op, y in zip(nums, parts[1::2], nums[1:]):
            holds = {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y, "≤": x <= y, "≥": x >= y}[op]
            if not holds:
                out.false.append(m.group(0))
                break
        else:
            out.true_relations.append((nums[0], nums[-1], m.start(), m.end()))
    return out


def _quantity(num: str, unit: str | None) -> Fraction | None:
    value = _to_fraction(num)
    if unit is None:
        return value
    return value * _UNITS[unit.lower()][1] if unit.lower() in _UNITS else None


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else format(float(x), "g")


# --------------------------------------------------------------------------------------------------------
# Mentions of a value in a text


def _numbers_only(toks: Sequence[Tok]) -> bool:
    return bool(toks) and all(t.num is not None for t in toks)


def _occurrences(value: Sequence[Tok], text_toks: Sequence[Tok]) -> list[tuple[int, int]]:
    """Character spans in the text where ``value``'s tokens occur in sequence (numbers-only values:
    among the text's numbers, words between them ignored)."""
    if not value:
        return []
    hay = [t for t in text_toks if t.num is not None] if _numbers_only(value) else list(text_toks)
    n = len(value)
    spans = []
    for i in range(len(hay) - n + 1):
        if all(hay[i + k].same(value[k]) for k in range(n)):
            spans.append((hay[i].start, hay[i + n - 1].end))
    return spans


def _negated(text_toks: Sequence[Tok], start: int) -> bool:
    before = [t for t in text_toks if t.end <= start][-2:]
    return any(t.word in _NEGATIONS or (t.word or "").endswith("n't") for t in before)


@dataclass(frozen=True)
class _Mentions:
    right: list[int]  # start offsets of asserted mentions of the truth
    wrong: list[int]  # ... and of the wrong value
    listed: bool = False  # the two were listed side by side somewhere (``37 and 60``): not read as asserted


_LISTING = re.compile(r"\s*(?:&|/|and|or|vs\.?|versus)\s*", re.IGNORECASE)
"""What joins two values listed side by side (``37 and 60``): neither is asserted. Not a bare comma: ``22, 24
is right`` names one. A known limit: ``79 and 7 is wrong`` reads as a listing too (it decided nothing before
either: the later value won)."""


def _mentions(text: str, rights: Sequence[str], wrongs: Sequence[str]) -> _Mentions:
    """Asserted (not negated) mentions of any form of the truth and of the wrong value; a mention inside a
    longer mention of the other (``Rain is water that falls`` inside ``... falls from grey clouds``) does
    not count, nor do the two listed side by side (``37 and 60``, the question echoed). Evaluated
    expressions count as mentions of their value. A true comparison of the two (``79 is larger than 7``)
    counts as one mention of the truth where it starts."""
    toks = tokens(text)
    claims = _claims(text)
    extra = [Tok(num=v, start=s, end=e) for v, s, e in claims.values]

    def single_numbers(forms: Sequence[str]) -> list[Tok]:
        return [ft[0] for f in forms if len(ft := _content(tokens(f))) == 1 and ft[0].num is not None]

    def spans(forms: Sequence[str]) -> list[tuple[int, int]]:
        out = []
        for f in forms:
            out += _occurrences(_content(tokens(f)), toks)
        out += [(t.start, t.end) for t in extra for n in single_numbers(forms) if t.same(n)]
        return sorted(set(out))

    r, w = spans(rights), spans(wrongs)
    rn, wn = single_numbers(rights), single_numbers(wrongs)
    relations = [
        (s, e)
        for x, y, s, e in claims.true_relations
        if any(Tok(num=x).same(n) or Tok(num=y).same(n) for n in rn)
        and any(Tok(num=x).same(n) or Tok(num=y).same(n) for n in wn)
    ]

    def inside(a: tuple[int, int], others: list[tuple[int, int]]) -> bool:
        return any(o[0] <= a[0] and a[1] <= o[1] and o != a and (o[1] - o[0]) > (a[1] - a[0]) for o in others)

    def in_relation(a: tuple[int, int]) -> bool:
        return any(s <= a[0] and a[1] <= e for s, e in relations)

    # "37 and 60", "7 or 79": the two values listed side by side (the question echoed) assert neither
    # (a negated value is no item of a list: "instead of 22, 24" states 24)
    listed = {
        x
        for a in r
        for b in w
        for x in (a, b)
        if (a[1] <= b[0] or b[1] <= a[0])
        and _LISTING.fullmatch(text[min(a[1], b[1]) : max(a[0], b[0])])
        and not (_negated(toks, a[0]) or _negated(toks, b[0]))
    }

    def asserted(a: tuple[int, int], others: list[tuple[int, int]]) -> bool:
        return not (inside(a, others) or in_relation(a) or a in listed or _negated(toks, a[0]))

    r2 = [x[0] for x in r if asserted(x, w)]
    w2 = [x[0] for x in w if asserted(x, r)]
    r2 += [s for s, _ in relations if not _negated(toks, s)]
    return _Mentions(sorted(r2), sorted(w2), bool(listed))


def _decide(m: _Mentions) -> bool | None:
    """True/False: only the truth / only the wrong value is asserted, or both and the later one concludes."""
    if not m.right and not m.wrong:
        return None
    if not m.wrong:
        return True
    if not m.right:
        return False
    return max(m.right) > max(m.wrong)


def _distinct_tokens(a: str, b: str) -> tuple[list[Tok], list[Tok]]:
    """The content tokens of ``a`` not in ``b`` and those of ``b`` not in ``a``."""
    ta, tb = tokens(a), tokens(b)
    only_a = [t for t in ta if t.word not in _ARTICLES and not any(t.same(u) for u in tb)]
    only_b = [t for t in tb if t.word not in _ARTICLES and not any(t.same(u) for u in ta)]
    return only_a, only_b


def _leans(text: str, right: str, wrong: str, *, later: bool = False) -> bool | None:
    """True/False when ``text`` has (asserted) tokens that only ``right`` / only ``wrong`` has, and none of
    the other's; with ``later``, where it has both, the later one decides."""
    if not right or not wrong:
        return None
    only_r, only_w = _distinct_tokens(right, wrong)
    if not only_r and not only_w:
        return None
    toks = tokens(text)
    pos_r = [t.start for t in toks if any(t.same(u) for u in only_r) and not _negated(toks, t.start)]
    pos_w = [t.start for t in toks if any(t.same(u) for u in only_w) and not _negated(toks, t.start)]
    if pos_r and pos_w:
        return max(pos_r) > max(pos_w) if later else None
    return _decide(_Mentions(pos_r, pos_w))


def _pairs(ref: Reference) -> list[tuple[str, str]]:
    """The (truth, wrong) forms that differ (an instruction's answers may differ in case only: their views
    differ)."""
    return [(t, w) for t, w in zip(ref.truth, ref.wrong) if not _same_text(t, w)]


# --------------------------------------------------------------------------------------------------------
# The item's side


@dataclass(frozen=True)
class Reference:
    """What a built-in item's computed truth says, in the order the judge saw it."""

    family: str
    label: str  # the correct position, "A" or "B"
    truth: tuple[str, ...]  # forms of the truth (the value, and what a check says it gives)
    wrong: tuple[str, ...]
    responses: Mapping[str, str]  # label -> response text as shown
    work: str = ""  # the sound check's statement of the truth
    wrong_work: str = ""
    styled: bool = True  # the answers are values (False: the answer is the text, e.g. a sentence)

    def forms(self, pos: str) -> tuple[str, ...]:
        return self.truth if pos == self.label else self.wrong


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def reference_of(item: Any) -> Reference | None:
    """The computed truth of a pairwise item (a :class:`~cj2.data.schema.PairwiseItem` or its JSON mapping),
    as shown (a swapped item is read with its own labels); ``None`` when it has none (no
    ``meta["truth"]`` and ``meta["wrong_value"]``): such data gets no faithfulness numbers."""
    meta = _get(item, "meta") or {}
    if not isinstance(meta, Mapping) or "truth" not in meta or "wrong_value" not in meta:
        return None
    label = _get(item, "label")
    a, b = _get(item, "response_a"), _get(item, "response_b")
    if label not in ("A", "B") or a is None or b is None:
        return None  # pointwise views and ties: not read here
    truth = tuple(str(x) for x in (meta["truth"], meta.get("truth_view")) if x is not None)
    wrong = tuple(str(x) for x in (meta["wrong_value"], meta.get("wrong_view")) if x is not None)
    check = meta.get("check") or {}
    work = "; ".join(check.get("work") or []) if isinstance(check, Mapping) else ""
    wrong_work = "; ".join(check.get("wrong_work") or []) if isinstance(check, Mapping) else ""
    return Reference(
        family=str(meta.get("family") or _get(item, "domain") or "general"),
        label=label,
        truth=truth,
        wrong=wrong,
        responses={"A": str(a), "B": str(b)},
        work=work,
        wrong_work=wrong_work,
        styled="truth_view" not in meta,
    )


# --------------------------------------------------------------------------------------------------------
# The judgment's side: fields


_PAIR = re.compile(r'"((?:[^"\\\n]|\\.){1,60})"\s*:\s*"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^\s*[*#>-]*\s*\**([A-Za-z][A-Za-z '’]{0,40}?)\**\s*:\s*(.+?)\s*$", re.MULTILINE)
_LABEL_MENTION = re.compile(
    r"\b(?:model|response|answer|assistant|output|candidate|option)\s*([AB])\b"
    r"|(?:^|(?<=[\s;,(]))([AB])(?=\s*(?::|\)|gives\b|says\b|answers\b|states\b|writes\b|claims\b|reports\b))",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(?:correct|right|matches|match|agrees|true|accurate|valid)\b(?!\s+(?:answer|result)\s+is)",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:wrong|incorrect|false|inaccurate|invalid|mismatch|off)\b"
    r"|\b(?:not|n't|does\s+not|doesn't)\s+(?:correct|right|match|agree|accurate)",
    re.IGNORECASE,
)
_TRUTH_KEYS = (
    "truth",
    "correct answer",
    "correctanswer",
    "ground truth",
    "expected",
    "reference",
    "solution",
)
_ANSWER_KEYS = ("answers", "quotes", "quoted", "responses", "candidates")
_MATCH_KEYS = ("match", "matching", "matches")


@dataclass(frozen=True)
class Reading:
    """What a judgment states: its truth, each answer as it quotes it, the answer its reasons pick."""

    truth: str | None
    quotes: Mapping[str, str]  # label -> quoted text
    stated_match: str | None  # "A", "B", "both", "neither" or None (not stated / not readable)


def _fields(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` pairs: those of a JSON object (also one cut off or with text around it), then
    ``Key: value`` lines."""
    pairs: list[tuple[str, str]] = []
    for m in _PAIR.finditer(text):
        try:
            k, v = json.loads(f'"{m.group(1)}"'), json.loads(f'"{m.group(2)}"')
        except json.JSONDecodeError:
            k, v = m.group(1), m.group(2)
        pairs.append((k, v))
    seen = {k.lower() for k, _ in pairs}
    for m in _LINE.finditer(text):  # "Truth: ..." lines, also beside a JSON verdict
        if m.group(1).strip().lower() not in seen:
            pairs.append((m.group(1).strip(), m.group(2).strip().strip('"')))
    return pairs


def _key_is(key: str, names: Iterable[str]) -> bool:
    k = " ".join(re.findall(r"[a-z]+", key.lower()))
    return any(k == n or k.startswith(n + " ") or k.endswith(" " + n) for n in names)


def _key_label(key: str) -> str | None:
    m = re.fullmatch(
        r"\s*(?:(?:check|quote|quoted|value|answer)\s+(?:of\s+)?)?"
        r"(?:model|response|answer|assistant|output)?\s*([AB])(?:'s\s+answer)?\s*",
        key,
        flags=re.IGNORECASE,
    )
    return m.group(1).upper() if m else None


def _labelled(text: str) -> list[tuple[str, int, int]]:
    return [((m.group(1) or m.group(2)).upper(), m.start(), m.end()) for m in _LABEL_MENTION.finditer(text)]


_LEAD = re.compile(
    r"^(?:\W|\b(?:gives|says|answers|answered|states|writes|claims|reports|is|=|quoted|quotes|with)\b)+",
    re.IGNORECASE,
)


def _clean_quote(seg: str) -> str:
    seg = _LEAD.sub("", seg.strip())
    return seg.strip(" \t\n;,:()[]-–—")


def _split_quotes(text: str) -> dict[str, str]:
    """``22 (Model A); 24 (Model B)`` or ``Model A: 22, Model B: 24`` or ``A says 22; B says 24``:
    each label's quoted text (the first segment of each label)."""
    marks = _labelled(text)
    if not marks:
        return {}
    out: dict[str, str] = {}
    label_first = text[: marks[0][1]].strip(" \t\n;,:(") == ""
    for i, (lab, s, e) in enumerate(marks):
        if label_first:
            seg = text[e : marks[i + 1][1] if i + 1 < len(marks) else len(text)]
        else:
            seg = text[marks[i - 1][2] if i else 0 : s]
        seg = _clean_quote(seg)
        if seg and lab not in out:
            out[lab] = seg
    return out


def _judged_ok(text: str) -> bool | None:
    pos, neg = _POSITIVE.search(text), _NEGATIVE.search(text)
    if neg and not pos:
        return False
    if pos and not neg:
        return True
    return None


def read_judgment(text: str) -> Reading:
    """The truth, quotes and stated match a judgment writes (module docstring); missing parts are None."""
    truth = None
    quotes: dict[str, str] = {}
    match_text = None
    judged: dict[str, bool | None] = {}
    prose: list[str] = []
    for key, value in _fields(text or ""):
        lab = _key_label(key)
        if lab is not None:  # a per-answer section: "Check A", "Model A", "Answer B"
            q = _clean_quote(
                re.sub(r"^\s*(?:model|response|answer)?\s*" + lab + r"\b", "", value, flags=re.I)
            )
            quotes.setdefault(lab, q)
            judged.setdefault(lab, _judged_ok(value))
        elif _key_is(key, _MATCH_KEYS):
            match_text = value if match_text is None else match_text
        elif _key_is(key, _ANSWER_KEYS):
            for lab2, q in _split_quotes(value).items():
                quotes.setdefault(lab2, q)
        elif _key_is(key, _TRUTH_KEYS) and truth is None:
            truth = value
        elif _key_is(key, _PROSE_KEYS):
            prose.append(value)
    if truth is None and not quotes and match_text is None:
        # no such sections: a critique in prose ("11 + 13 = 24. Model A gives 22, which is wrong; ..."),
        # in an analysis/reasoning field or as the whole text
        body = "\n".join(prose) if prose else _without_verdict_object(text or "")
        truth, quotes, judged = _read_prose(body, whole_is_truth=bool(prose))
    stated = None
    if match_text is not None:
        low = match_text.lower()
        labs = {lab for lab, _, _ in _labelled(match_text)}
        if re.search(r"\b(?:neither|none|no answer|no model)\b", low):
            stated = "neither"
        elif re.search(r"\bboth\b", low):
            stated = "both"
        elif len(labs) == 1:
            stated = labs.pop()
        elif not labs:  # the matching value without a label: the answer quoted with that value
            hits = [lab for lab, q in quotes.items() if q and _same_text(q, match_text)]
            stated = hits[0] if len(hits) == 1 else None
    elif judged:
        ok = [lab for lab, v in judged.items() if v is True]
        bad = [lab for lab, v in judged.items() if v is False]
        if len(ok) == 1 and set(judged) == {"A", "B"} and len(bad) == 1:
            stated = ok[0]
        elif len(bad) == 2:
            stated = "neither"
        elif len(ok) == 2:
            stated = "both"
    return Reading(truth=truth, quotes=quotes, stated_match=stated)


_PROSE_KEYS = ("analysis", "reasoning", "explanation", "critique", "evaluation", "judgment", "rationale")
_PROSE_QUOTE = re.compile(
    r"\b(?:model|response|answer|assistant|output|candidate)\s*(?P<label>[AB])\b"
    r"(?:'s\s+answer\s+is|\s*(?:gives|says|answers|answered|states|writes|claims|reports|:|=))\s*"
    r"(?P<quote>.+?)"
    r"(?=\s*(?:;|\.\s|\.$|,\s*which\b|\(|\n|$)|\s+(?:and\s+|but\s+|while\s+)?"
    r"(?:model|response|answer|assistant|output|candidate)\s*[AB]\b)",
    re.IGNORECASE,
)


_VERDICT_WORDS = frozenset(
    "better worse best correct correctly right wrong wrongly incorrect incorrectly the question it".split()
)


def _without_verdict_object(text: str) -> str:
    """``text`` without a trailing JSON object or ``[[...]]`` marker holding the verdict."""
    text = re.sub(r"\{[^{}]*\}\s*$", "", text.strip())
    return re.sub(r"(?:my final verdict is\s*)?\[\[[^\[\]]*\]\]\s*\.?\s*$", "", text, flags=re.I)


def _read_prose(
    body: str, whole_is_truth: bool = False
) -> tuple[str | None, dict[str, str], dict[str, bool | None]]:
    """(truth, quotes, judged) of a critique in prose: the text before the first ``Model A gives ...`` is the
    stated truth (when it says something), each label's first ``gives X`` / ``says X`` / ``: X`` is its quote
    and the words after it (``which is wrong``) its judgement. Nothing is read from prose without them."""
    quotes: dict[str, str] = {}
    judged: dict[str, bool | None] = {}
    first = None
    matches = list(_PROSE_QUOTE.finditer(body))
    for i, m in enumerate(matches):
        lab = m.group("label").upper()
        if lab in quotes:
            continue
        quote = _clean_quote(m.group("quote"))
        if not [t for t in _content(tokens(quote)) if t.word not in _VERDICT_WORDS]:
            continue  # "Model B is better", "Model A answers correctly": a judgement, not a quote
        first = m.start() if first is None else first
        quotes[lab] = quote
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        window = body[m.end("quote") : end]  # the words after the quote, to the end of its clause
        judged[lab] = _judged_ok(re.split(r"[.;](?:\s|$)|\n", window, maxsplit=1)[0])
    if first is None:  # no quote: a prose field states the truth as a whole, free text states nothing
        return (body.strip() or None) if whole_is_truth else None, {}, {}
    head = body[:first].strip()
    if not _content(tokens(head)):  # the quotes come first: what follows them states the truth
        spans = [(m.start(), m.end("quote")) for m in matches]
        head = "".join(
            body[a:b] for a, b in zip([0] + [e for _, e in spans], [s for s, _ in spans] + [len(body)])
        )
        head = head.strip(" \t\n;,.")
    return (head if _content(tokens(head)) else None), quotes, judged


def _same_text(a: str, b: str) -> bool:
    ta, tb = _content(tokens(a)), _content(tokens(b))
    return len(ta) == len(tb) and all(x.same(y) for x, y in zip(ta, tb))


# --------------------------------------------------------------------------------------------------------
# Checks


def check_truth(stated: str | None, ref: Reference) -> tuple[bool | None, str]:
    """``(ok, why)``: whether the stated truth states the computed truth (module docstring)."""
    if stated is None or not stated.strip():
        return None, "no stated truth"
    stated = normalise(stated)
    claims = _claims(stated)
    if claims.false:
        return False, f"false claim: {claims.false[0]}"
    pairs = _pairs(ref)
    judged = _judge_superlatives(stated, ref)
    if judged is not None:
        return judged, "a true comparison of the two answers" if judged else "a false comparison"
    if pairs:
        mentions = _mentions(stated, [t for t, _ in pairs], [w for _, w in pairs])
        decided = _decide(mentions)
        if decided is not None:
            return decided, "states the truth" if decided else "states the wrong answer"
        # part of a value ("25 August" of "25 August 2023"): the parts that differ; not where the two
        # values were listed side by side anywhere in the text (the later one would win by position alone;
        # this also skips a part stated after such a listing: a known limit, read as "cannot tell" or False)
        if ref.styled and not mentions.listed:
            lean = _leans(stated, *pairs[0], later=True)
            if lean is not None:
                return lean, "states what sets the truth apart" if lean else "states the wrong answer's part"
    lean = _leans(stated, ref.work, ref.wrong_work)
    if lean is not None:
        return lean, "matches the sound check" if lean else "matches the mistaken check"
    if ref.styled and pairs:
        return False, "does not state the truth"
    return None, "cannot tell"


def _judge_superlatives(stated: str, ref: Reference) -> bool | None:
    """Where the truth and the wrong answer are two numbers and the text calls one of them the larger or
    the smaller (``79 is the larger``): False if any such claim is false, True if some are and all hold."""
    t = [x[0].num for f in ref.truth if len(x := _content(tokens(f))) == 1 and x[0].num is not None]
    w = [x[0].num for f in ref.wrong if len(x := _content(tokens(f))) == 1 and x[0].num is not None]
    if not t or not w:
        return None
    verdicts = []
    for value, greater in _superlatives(stated):
        if value not in (t[0], w[0]):
            continue
        other = w[0] if value == t[0] else t[0]
        verdicts.append(value > other if greater else value < other)
    return None if not verdicts else all(verdicts)


def check_quote(quote: str | None, pos: str, ref: Reference) -> tuple[bool | None, str]:
    """``(ok, why)``: whether ``quote`` is what response ``pos`` gives."""
    if quote is None or not _content(tokens(quote)):
        return None, "not quoted"
    quote = normalise(quote)
    other = "B" if pos == "A" else "A"
    own_text, other_text = ref.responses[pos], ref.responses[other]
    squash = " ".join(quote.split()).strip(" .")
    in_own, in_other = squash in " ".join(own_text.split()), squash in " ".join(other_text.split())
    mentions = _mentions(quote, ref.forms(pos), ref.forms(other))
    if mentions.right and not mentions.wrong:
        return True, "quotes the answer's value"
    if mentions.wrong and not mentions.right:
        return False, "quotes the other answer's value"
    if in_own and not in_other:
        return True, "quotes the answer's text"
    if in_other and not in_own:
        return False, "quotes the other answer's text"
    if mentions.right and mentions.wrong:
        return (max(mentions.right) > max(mentions.wrong)), "both values, the later one counts"
    for own_form, other_form in zip(ref.forms(pos), ref.forms(other)):
        lean = _leans(quote, own_form, other_form)
        if lean is not None:
            return lean, "words of the answer's view" if lean else "words of the other answer's view"
    qt = [t for t in _content(tokens(quote)) if t.word not in _FILLER]
    own_toks = tokens(own_text) + [t for f in ref.forms(pos) for t in tokens(f)]
    if qt and not any(t.same(u) for t in qt for u in own_toks):
        return False, "quotes something the answer does not say"
    return None, "cannot tell"


_FILLER = frozenset(
    {"answer", "answers", "says", "gives", "is", "the", "a", "an", "model", "response", "value", "result"}
)


@dataclass(frozen=True)
class Faithfulness:
    """One judgment checked against its item's computed truth (module docstring)."""

    family: str
    verdict: str | None
    gold: str
    correct: bool
    truth_ok: bool | None
    quote_ok: Mapping[str, bool | None]
    stated_match: str | None
    consistent: bool | None
    spurious: bool | None  # None also for a verdict that is not correct
    why: Mapping[str, str]

    @property
    def quotes_ok(self) -> bool | None:
        vals = list(self.quote_ok.values())
        if any(v is False for v in vals):
            return False
        return True if vals and all(v is True for v in vals) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "truth_ok": self.truth_ok,
            "quotes_ok": self.quotes_ok,
            "quote_ok": dict(self.quote_ok),
            "stated_match": self.stated_match,
            "consistent": self.consistent,
            "spurious": self.spurious,
            "why": dict(self.why),
        }


def check_judgment(
    text: str, item: Any, *, format: str = "cj2_choice", verdict: str | None | bool = False
) -> Faithfulness | None:
    """``text`` (a judgment of ``item`` as shown to the judge) checked against the item's computed truth;
    ``None`` when the item has none. ``verdict``: the parsed verdict when the caller has it (``False``: parse
    ``text`` in ``format``)."""
    ref = reference_of(item)
    if ref is None:
        return None
    if verdict is False:
        from cj2.verdict import parse_verdict

        verdict = parse_verdict(text or "", format)
    reading = read_judgment(text or "")
    truth_ok, why_truth = check_truth(reading.truth, ref)
    quote_ok: dict[str, bool | None] = {}
    why = {"truth": why_truth}
    for pos in ("A", "B"):
        if pos in reading.quotes:
            quote_ok[pos], why[f"quote_{pos}"] = check_quote(reading.quotes[pos], pos, ref)
    consistent = None
    if reading.stated_match in ("A", "B") and verdict in ("A", "B"):
        consistent = reading.stated_match == verdict
    correct = verdict == ref.label
    reasons_right = truth_ok is True and len(quote_ok) == 2 and all(v is True for v in quote_ok.values())
    if reasons_right and verdict in ("A", "B"):
        # A right truth and two right quotes pick the gold answer by themselves: a verdict (or a Match line)
        # naming the other answer contradicts the judgment's own reasons ("Truth: 11 + 2 = 13. Answers: 15
        # (Model A); 13 (Model B). Match: 15 (Model A)"), whatever its Match line says.
        consistent = bool(consistent is not False and correct)
    spurious = None
    if correct:
        parts = [truth_ok, *quote_ok.values()]
        if any(p is False for p in parts):
            spurious = True
        elif reasons_right:
            spurious = False
    return Faithfulness(
        family=ref.family,
        verdict=verdict if isinstance(verdict, str) else None,
        gold=ref.label,
        correct=correct,
        truth_ok=truth_ok,
        quote_ok=quote_ok,
        stated_match=reading.stated_match,
        consistent=consistent,
        spurious=spurious,
        why=why,
    )


def is_spurious(judgment_text: str, item_record: Any) -> bool | None:
    """Whether a judgment is right for the wrong reasons: its verdict (``cj2_choice``, or the verdict format
    named by ``item_record["format"]`` / ``meta["format"]``) is the correct one but its stated truth or a
    quoted answer is wrong. ``None`` when that cannot be known: no computed truth, a verdict that is not
    correct, or reasons that cannot be read. ``item_record``: the pairwise item as shown to the judge (a
    :class:`~cj2.data.schema.PairwiseItem` or its JSON mapping), or a training record of a built-in item
    (:class:`~cj2.data.schema.TrainRecord`, whose ``meta["item"]`` holds the item as shown)."""
    meta = _get(item_record, "meta") or {}
    fmt = _get(item_record, "format") or (meta.get("format") if isinstance(meta, Mapping) else None)
    if (
        isinstance(meta, Mapping)
        and isinstance(meta.get("item"), Mapping)
        and reference_of(item_record) is None
    ):
        item_record = meta["item"]  # a training record of a built-in item (cj2.data.tasks.records)
    result = check_judgment(judgment_text, item_record, format=str(fmt or "cj2_choice"))
    return None if result is None else result.spurious


# --------------------------------------------------------------------------------------------------------
# Metrics


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def faithfulness_metrics(
    results: Iterable[Faithfulness | None], prefix: str = "val", suffix: str = ""
) -> dict[str, float]:
    """``{prefix}/truth_acc``, ``{prefix}/spurious_rate``, ``{prefix}/unfaithful_rate`` (and
    ``quote_acc``, the counts each rate is over) overall and per family (``{prefix}/truth_acc/<family>``).
    A rate with nothing to count over is absent, never 0; ``None`` results (no computed truth) are
    left out."""
    rs = [r for r in results if r is not None]
    out: dict[str, float] = {}
    head = f"{prefix}/" if prefix else ""
    if not rs:
        return out
    groups: dict[str, list[Faithfulness]] = {"": rs}
    for r in rs:
        groups.setdefault(f"/{r.family}", []).append(r)
    for fam, group in sorted(groups.items()):
        truth = [bool(r.truth_ok) for r in group if r.truth_ok is not None]
        quotes = [bool(r.quotes_ok) for r in group if r.quotes_ok is not None]
        spur = [bool(r.spurious) for r in group if r.correct and r.spurious is not None]
        unfaithful = [not r.consistent for r in group if r.consistent is not None]
        for name, values in (
            ("truth_acc", truth),
            ("quote_acc", quotes),
            ("spurious_rate", spur),
            ("unfaithful_rate", unfaithful),
        ):
            rate = _rate(values)
            if rate is not None and not math.isnan(rate):
                out[f"{head}{name}{suffix}{fam}"] = float(rate)
                if not fam:
                    out[f"{head}{name}_n{suffix}"] = float(len(values))
    return out


def check_rows(rows: Iterable[Mapping[str, Any]], items: Iterable[Any]) -> list[Faithfulness | None]:
    """:func:`check_judgment` over evaluation rows: each row names its item (``id``), the order the judge
    saw it in (``order``: ``AB`` as given, ``BA`` swapped), its text (``output``) and the verdict as shown
    (``parsed``). Rows without a text (verdict-logit rows) or whose item has no computed truth give None."""
    by_id = {_get(it, "id"): it for it in items}
    out: list[Faithfulness | None] = []
    for row in rows:
        item, text = by_id.get(row.get("id")), row.get("output")
        if item is None or not isinstance(text, str) or reference_of(item) is None:
            out.append(None)
            continue
        shown = item.swapped() if row.get("order") == "BA" else item
        out.append(check_judgment(text, shown, verdict=row.get("parsed")))
    return out


def rows_metrics(
    rows: Iterable[Mapping[str, Any]], items: Iterable[Any], *, prefix: str = "val", suffix: str = ""
) -> dict[str, float]:
    """:func:`faithfulness_metrics` of :func:`check_rows` (empty when no row has a computed truth)."""
    return faithfulness_metrics(check_rows(rows, items), prefix=prefix, suffix=suffix)
