"""The one verdict parser of cj2: what a judge's verdict looks like in text, written and read.

Every part of cj2 that writes a verdict (templates, generators) uses :func:`render_verdict`; every part that
reads one (curation's rejection sampling, the collator's ``verdict_index``, training metrics, evaluation)
uses :func:`parse_verdict` / :func:`locate_verdict`. The formats are those of arXiv 2507.09104, Sec. 3 and
the CompassJudger-1 templates the paper inherits; labels are plain strings (``"A"``, ``"B"``, ``"tie"``,
the score as text, ``"yes"``/``"no"``).

======================  ===============================  =========================================
format                  canonical marker                 labels
======================  ===============================  =========================================
``cj2_choice``          ``"Choice": "Model A"``          ``A``, ``B``
``brackets``            ``[[A]]``, ``[[B]]``, ``[[C]]``  ``A``, ``B``, ``tie`` (``[[C]]``)
``arena``               ``[[A>>B]]`` ... ``[[B>>A]]``    ``A`` (``A>>B``, ``A>B``), ``B``, ``tie`` (``A=B``)
``winner_json``         ``"winner": "A"`` / ``"胜者"``     ``A``, ``B``
``score``               ``Rating: [[7]]``                ``1`` ... ``10``
``correctness``         ``"Correct": "yes"``             ``yes``, ``no``
``none``                (no verdict: CE-only data)       (none)
======================  ===============================  =========================================

How a text is read
------------------
1. **Markers.** A marker *begins* at an opener and is *valid* when its full syntax follows and carries a
   valid label; otherwise it is an *invalid* marker, which still counts as a marker.

   * Keyed formats (``cj2_choice``, ``winner_json``, ``correctness``). Opener: the key (``Choice``;
     ``winner`` or ``胜者``; ``Correct``), ASCII letters in any case, then optionally a closing quote and up
     to three markdown ``*``, whitespace, and a colon (``:`` or ``：``): ``"Choice":``, ``'Choice' :``,
     ``Choice:``, ``**Choice**:``. An ASCII key must not follow a letter, digit or ``_`` (``Multichoice:``
     is no opener); ``胜者`` may follow anything. The value follows after whitespace (up to three ``*``
     allowed): a quoted string in straight or curly, double or single quotes, closed by a quote of the
     same kind (double or single) on the same line, at most 200 characters. Valid values: ``Model A`` /
     ``Model B`` ("Model" in any case, the letter uppercase);
     ``A`` / ``B``; ``yes`` / ``no`` in any case (read as ``"yes"``/``"no"``); whitespace around the value is
     allowed. Anything else, an unquoted value, a missing closing quote or a key at the end of the text is
     an invalid marker: the echoed placeholder ``"Choice": "[Model A or Model B]"``, ``"winner": "C"``,
     ``"Choice": "model a"``, a truncated ``"Choice": "Model A``.
   * ``brackets`` and ``arena``. Opener: every ``[[`` (also overlapping ones, so ``[[[A]]]`` reads ``A``).
     Valid: ``[[`` + content + ``]]`` on one line, content without brackets, at most 200 characters, whose
     stripped text is ``A``, ``B`` or ``C`` (brackets) or, with all whitespace removed, one of ``A>>B``,
     ``A>B``, ``A=B``, ``B>A``, ``B>>A`` (arena). Letters are uppercase only: ``[[a]]`` is an invalid marker,
     and so is the other format's marker (``[[A>B]]`` under brackets).
   * ``score``. Opener: ``Rating`` (any case, same rules as a key) + colon. Valid: then ``[[N]]`` with N an
     integer 1 to 10 without leading zero, whitespace around N allowed (``Rating: [[ 7 ]]``). A bare
     ``[[7]]`` is not a marker (so bracket verdicts in a critique cannot be misread as scores);
     ``Rating: [[11]]``, ``Rating: 7/10`` and a truncated ``Rating: [[7`` are invalid markers.

2. **The last marker counts** (a critique may quote the format or weigh the other option earlier). If it
   is invalid, the answer is ``None``: a truncated or malformed final verdict is never replaced by an
   earlier one.
3. **Side by side.** The *final cluster* is the last marker together with the markers before it that are
   chained to it by gaps made only of whitespace, Unicode punctuation or symbols (``P*``/``S*``: ``,``
   ``/`` ``|`` ``{`` ``}`` quotes, ``*``, code-fence backticks ...) and the connector words ``or``,
   ``and``, ``nor``, ``vs``, ``versus`` (any case), ``或``, ``或者``, ``和``, ``与``, ``还是``. A word is a
   maximal run of letters, digits and ``_``; any other word ends the chain. If the valid markers of the
   final cluster disagree (``[[A]] [[B]]``, ``[[A]] or [[B]]``, ``{"winner": "A", "winner": "B"}``) the
   answer is ``None``; invalid markers in the chain (an echoed placeholder right before the answer) add no
   label. Overlapping markers have an empty gap.
4. No marker, ``format="none"`` → ``None``. No substring guessing, no first-character fallback.

So a generation cut off by ``max_new_tokens`` inside its final marker reads ``None`` (never an earlier
verdict), and nothing is guessed from lowercase letters or bare ``[[N]]`` under ``score``.

The functions never raise on any ``str`` (an unknown *format* is a ``ValueError``, a non-``str`` text a
``TypeError``). Every pattern is linear: openers that begin with a fixed character, bounded values, no
nested quantifiers; a megabyte of adversarial text is read in about a second or less per format.

A best-of-n judgment (one of n answers in slots A, B, C, ..., RewardBench 2's 4-way prompt) names its slot
as ``[[X]]``: :func:`parse_slot` reads it (cj2's last-marker rule, or RewardBench's substring reading).

:func:`parse_opencompass` keeps OpenCompass's own parsers, quirks included, for number-matching the
paper's evaluation (arXiv 2507.09104, Sec. 4).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

# A verdict's letter in the other order of the two responses (the one copy of this map).
SWAP = {"A": "B", "B": "A"}


def unswap(verdict: str | None) -> str | None:
    """A verdict given on the swapped pair, expressed in the original order (``"A"`` <-> ``"B"``); any
    other label (``"tie"``) and ``None`` are returned as they are."""
    return SWAP.get(verdict, verdict) if verdict is not None else None


FORMATS: tuple[str, ...] = ("cj2_choice", "brackets", "arena", "winner_json", "score", "correctness", "none")

_LABELS: dict[str, tuple[str, ...]] = {
    "cj2_choice": ("A", "B"),
    "brackets": ("A", "B", "tie"),
    "arena": ("A", "B", "tie"),
    "winner_json": ("A", "B"),
    "score": tuple(str(n) for n in range(1, 11)),
    "correctness": ("yes", "no"),
    "none": (),
}

# Formats whose labels are distinct single tokens in the model's vocabulary, so a verdict loss on one
# token position applies (arXiv 2507.09104, Eq. 12). Arena ("A>>B" vs "A>B") and score ("1" vs "10")
# labels share their first token.
_SINGLE_TOKEN = frozenset({"cj2_choice", "brackets", "winner_json", "correctness"})

_MAX_VALUE = 200  # longest quoted value / bracket content read; no valid label comes close

_BRACKET_SURFACE = {"A": "A", "B": "B", "tie": "C"}
_BRACKET_LABEL = {"A": "A", "B": "B", "C": "tie"}
_ARENA_LABEL = {"A>>B": "A", "A>B": "A", "A=B": "tie", "B>A": "B", "B>>A": "B"}
_SCORE_VALUES = frozenset(_LABELS["score"])
_CONNECTORS = frozenset({"or", "and", "nor", "vs", "versus", "或", "或者", "和", "与", "还是"})


def _check_format(format: str) -> None:
    if format not in _LABELS:
        raise ValueError(f"unknown verdict format {format!r}; expected one of {FORMATS}")


def labels_for(format: str) -> tuple[str, ...]:
    """The verdict labels of ``format`` (arXiv 2507.09104, Sec. 3), in canonical order."""
    _check_format(format)
    return _LABELS[format]


def single_token_labels(format: str) -> bool:
    """Whether ``format``'s labels are distinct single tokens, so the verdict losses (margin, dpo,
    temperature; arXiv 2507.09104, Eq. 12 / Table 4) apply. False for ``arena`` and ``score`` (labels share
    a first token) and ``none``."""
    _check_format(format)
    return format in _SINGLE_TOKEN


def label_surface(label: str, format: str, *, strong: bool = False) -> str:
    """The characters of ``render_verdict(label, format, strong=strong)`` that carry the label: exactly
    what :func:`locate_verdict`'s span covers in a canonical output (``"A"``, ``"C"`` for a bracket tie,
    ``"A>B"``, ``"7"``, ``"yes"``)."""
    _check_format(format)
    if label not in _LABELS[format]:
        raise ValueError(
            f"label {label!r} is not valid for format {format!r}; expected one of {_LABELS[format]}"
        )
    if strong and format != "arena":
        raise ValueError(f"strong=True only applies to format 'arena', not {format!r}")
    if format == "brackets":
        return _BRACKET_SURFACE[label]
    if format == "arena":
        if label == "tie":  # there is no strong tie; strong is ignored
            return "A=B"
        sign = ">>" if strong else ">"
        return f"A{sign}B" if label == "A" else f"B{sign}A"
    return label


def render_verdict(label: str, format: str, *, strong: bool = False) -> str:
    """The canonical final verdict marker for ``label``; every template and generator writes verdicts with
    it. ``strong=True`` gives arena's ``[[A>>B]]``/``[[B>>A]]`` (ignored for a tie). ``ValueError`` for a
    label not valid for ``format`` and for ``format="none"``."""
    surface = label_surface(label, format, strong=strong)
    if format == "cj2_choice":
        return f'"Choice": "Model {surface}"'
    if format in ("brackets", "arena"):
        return f"[[{surface}]]"
    if format == "winner_json":
        return f'"winner": "{surface}"'
    if format == "score":
        return f"Rating: [[{surface}]]"
    return f'"Correct": "{surface}"'  # correctness; "none" has no labels and failed above


def _ci(word: str) -> str:
    """A case-insensitive pattern for an ASCII word, by explicit classes: re.IGNORECASE would also let
    non-ASCII look-alikes (e.g. U+0130) match."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


_Q = "\"'“”‘’"


def _opener(ascii_keys: tuple[str, ...], cjk_keys: tuple[str, ...] = ()) -> re.Pattern[str]:
    # The key comes first so the regex engine can skip ahead by its first letter; the "not after a word
    # character" test sits after that letter as a two-character lookbehind.
    keys = [f"{_ci(k[0])}(?<!\\w{_ci(k[0])}){_ci(k[1:])}" for k in ascii_keys] + [
        re.escape(k) for k in cjk_keys
    ]
    return re.compile(rf"(?:{'|'.join(keys)})[{_Q}]?\*{{0,3}}\s*[:：]")


_KEY_OPENERS: dict[str, re.Pattern[str]] = {
    "cj2_choice": _opener(("choice",)),
    "winner_json": _opener(("winner",), ("胜者",)),
    "correctness": _opener(("correct",)),
    "score": _opener(("rating",)),
}
# After a key opener: a quoted value, the closing quote of the same kind (double or single) on one line.
_QUOTED_VALUE = re.compile(
    rf"\s*\*{{0,3}}\s*(?:[\"“”]([^\"“”\n]{{0,{_MAX_VALUE}}})[\"“”]|['‘’]([^'‘’\n]{{0,{_MAX_VALUE}}})['‘’])"
)
# After the score opener: [[content]].
_SCORE_VALUE = re.compile(rf"\s*\*{{0,3}}\s*\[\[([^\[\]\n]{{0,{_MAX_VALUE}}})\]\]")
_BRACKET_MARKER = re.compile(rf"\[\[([^\[\]\n]{{0,{_MAX_VALUE}}})\]\]")

_CHOICE_VALUE = re.compile(rf"\s*{_ci('model')}\s+([AB])\s*")
_LETTER_VALUE = re.compile(r"\s*([AB])\s*")
_YES_NO_VALUE = re.compile(rf"\s*({_ci('yes')}|{_ci('no')})\s*")
_WORD = re.compile(r"\w+")
_ASCII_SEPARATORS = re.compile(r"[\s!-/:-@\[-^`{-~]*")  # ASCII punctuation and symbols, "_" excluded


class _Marker(NamedTuple):
    start: int  # where the opener begins: the key, "[[", or "Rating"
    end: int  # after the closing quote / brackets; the opener's end when the syntax is incomplete
    label: str | None  # None: an invalid marker
    label_start: int
    label_end: int


def _strip_span(content: str, offset: int) -> tuple[str, int, int]:
    stripped = content.strip()
    if not stripped:
        return "", offset, offset
    lead = len(content) - len(content.lstrip())
    return stripped, offset + lead, offset + lead + len(stripped)


def _value_label(format: str, value: str, offset: int) -> tuple[str, int, int] | None:
    """The label of a complete quoted value (offset: where the value starts in the text), or None."""
    pattern = {"cj2_choice": _CHOICE_VALUE, "winner_json": _LETTER_VALUE, "correctness": _YES_NO_VALUE}[
        format
    ]
    m = pattern.fullmatch(value)
    if m is None:
        return None
    return (
        m.group(1).lower() if format == "correctness" else m.group(1),
        offset + m.start(1),
        offset + m.end(1),
    )


def _bracket_label(format: str, content: str, offset: int) -> tuple[str, int, int] | None:
    stripped, start, end = _strip_span(content, offset)
    if format == "brackets":
        label = _BRACKET_LABEL.get(stripped)
    elif format == "arena":
        label = _ARENA_LABEL.get("".join(stripped.split()))
    else:  # score
        label = stripped if stripped in _SCORE_VALUES else None
    return None if label is None else (label, start, end)


def _marker_at(text: str, format: str, start: int, opener_end: int) -> _Marker:
    """Read the marker whose opener spans [start, opener_end)."""
    if format in ("brackets", "arena"):
        m = _BRACKET_MARKER.match(text, start)
        if m is None:
            return _Marker(start, opener_end, None, -1, -1)
        found = _bracket_label(format, m.group(1), m.start(1))
    elif format == "score":
        m = _SCORE_VALUE.match(text, opener_end)
        if m is None:
            return _Marker(start, opener_end, None, -1, -1)
        found = _bracket_label(format, m.group(1), m.start(1))
    else:
        m = _QUOTED_VALUE.match(text, opener_end)
        if m is None:
            return _Marker(start, opener_end, None, -1, -1)
        group = 1 if m.group(1) is not None else 2
        found = _value_label(format, m.group(group), m.start(group))
    if found is None:
        return _Marker(start, m.end(), None, -1, -1)
    return _Marker(start, m.end(), *found)


def _openers_backwards(text: str, format: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every opener of ``format`` in ``text``, last first."""
    if format in ("brackets", "arena"):
        # Every "[[" counts, overlapping ones too; found lazily from the end, since usually only the
        # final cluster is read.
        pos = text.rfind("[[")
        while pos >= 0:
            yield pos, pos + 2
            pos = text.rfind("[[", 0, pos + 1)
        return
    # Key openers are found left to right without overlap (re.finditer), then read from the end. A marker
    # starts at its key: a quote or "*" before the key is punctuation, so it changes no gap (rule 3).
    yield from reversed([m.span() for m in _KEY_OPENERS[format].finditer(text)])


def _is_separator_gap(gap: str) -> bool:
    """Whether ``gap`` holds only whitespace, punctuation, symbols and connector words (module doc, 3)."""
    if _ASCII_SEPARATORS.fullmatch(gap):  # the usual gap (" ", ", ", "/"): no per-character lookup
        return True
    pos = 0
    for word in _WORD.finditer(gap):
        if word.group().lower() not in _CONNECTORS or not _only_separators(gap[pos : word.start()]):
            return False
        pos = word.end()
    return _only_separators(gap[pos:])


def _only_separators(chars: str) -> bool:
    return all(c.isspace() or unicodedata.category(c)[0] in "PS" for c in chars)


def _final_marker(text: str, format: str) -> _Marker | None:
    """The last marker if it is valid and its final cluster agrees, else None."""
    openers = _openers_backwards(text, format)
    first = next(openers, None)
    if first is None:
        return None
    last = _marker_at(text, format, *first)
    if last.label is None:
        return None
    # Walk back along the final cluster; only markers chained by separator gaps can contradict the last.
    following = last
    for start, opener_end in openers:
        marker = _marker_at(text, format, start, opener_end)
        if marker.end < following.start and not _is_separator_gap(text[marker.end : following.start]):
            break
        if marker.label is not None and marker.label != last.label:
            return None
        following = marker
    return last


def locate_verdict(text: str, format: str) -> tuple[str, int, int] | None:
    """``(label, start, end)``: the verdict of ``text`` in ``format`` and the character span
    ``text[start:end]`` of the label-carrying characters of the last marker (module doc for the rules).

    For a canonical output the span text is ``label_surface(label, format)``; otherwise it covers what the
    text holds (``Yes``, ``A >> B``). The collator maps this span to ``verdict_index``, the token the
    verdict losses read (arXiv 2507.09104, Eq. 12). ``None`` when there is no unambiguous final verdict.
    """
    _check_format(format)
    if not isinstance(text, str):
        raise TypeError(f"verdict text must be str, got {type(text).__name__}")
    if format == "none":
        return None
    marker = _final_marker(text, format)
    if marker is None or marker.label is None:
        return None
    return marker.label, marker.label_start, marker.label_end


def locate_marker(text: str, format: str) -> tuple[str, int, int] | None:
    """``(label, start, end)`` like :func:`locate_verdict`, but the span covers the whole final marker,
    from its key to its end (``Choice": "Model A"``: the key's opening quote is not included; ``[[A]]``),
    not only
    the label: what a caller cuts off to keep the critique that precedes the verdict. ``None`` when there
    is no unambiguous final verdict."""
    found = locate_verdict(text, format)
    if found is None:
        return None
    marker = _final_marker(text, format)
    return found[0], marker.start, marker.end


def parse_verdict(text: str, format: str) -> str | None:
    """The verdict label of a judge's output ``text`` in ``format``, or ``None`` when the last marker is
    invalid, truncated or contradicted side by side, or when there is none (module doc for the rules)."""
    found = locate_verdict(text, format)
    return None if found is None else found[0]


_OC_WINNER = re.compile(r'"?(winner|胜者)"?\s*:\s*"([A-Z])"')
_OC_CHOICE_SPLIT = '"Choice": "Model '


def parse_opencompass(text: str, kind: str) -> str | None:
    """OpenCompass's own verdict parsers, reproduced for number-matching (arXiv 2507.09104, Sec. 4).

    ``kind="winner"`` (``Judgerbenchv2Evaluator``): the regex ``"?(winner|胜者)"?\\s*:\\s*"([A-Z])"``, last
    match; any letter A-Z is returned; no match gives ``None``.
    ``kind="choice"`` (``JudgeEvaluator`` / ``RMBEvaluator``): the first character of the last piece after
    splitting on the literal ``"Choice": "Model ``. Its quirk is kept: with no marker the first character
    of the whole output is returned. An empty output gives ``None``; so does an output that ends right
    after the marker, where OpenCompass itself would raise ``IndexError``.
    Use :func:`parse_verdict` for anything but reproducing those numbers.
    """
    if not isinstance(text, str):
        raise TypeError(f"verdict text must be str, got {type(text).__name__}")
    if kind == "winner":
        matches = _OC_WINNER.findall(text)
        return matches[-1][1] if matches else None
    if kind == "choice":
        piece = text.split(_OC_CHOICE_SPLIT)[-1]
        return piece[0] if piece else None
    raise ValueError(f"unknown OpenCompass parser {kind!r}; expected 'winner' or 'choice'")


# A best-of-n judgment names one of n answers in slots A, B, C, ... as [[X]] (RewardBench 2's 4-way
# prompt). Not a training format: read only by the evaluation of best-of-n benchmarks.
SLOT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SLOT_MARKER = re.compile(r"\[\[\s*([A-Z])\s*\]\]")
_SLOT_GAP = re.compile(r"[\W_]*(?:(?:or|and|vs)\b[\W_]*)*", re.IGNORECASE)


def slot_marker(letter: str) -> str:
    """The marker naming slot ``letter`` in a best-of-n judgment: ``[[C]]``."""
    if letter not in SLOT_LETTERS:
        raise ValueError(f"slot {letter!r} is not an uppercase letter")
    return f"[[{letter}]]"


def parse_slot(text: str, n: int, *, reading: str = "strict") -> str | None:
    """The slot letter a best-of-n judgment names among ``n`` slots, ``None`` when unparsable.

    ``reading="strict"`` (cj2's rule, as for every format here): the last ``[[X]]`` marker counts; it is
    unparsed when X names no slot or when a marker of another letter sits right before it (only
    whitespace, punctuation or or/and/vs between: ``[[A]] or [[B]]``). ``reading="substring"``
    (RewardBench's own): the first slot in slot order whose marker appears anywhere in the text, so
    ``"not [[A]] ... [[C]]"`` reads A.
    """
    if not isinstance(text, str):
        raise TypeError(f"verdict text must be str, got {type(text).__name__}")
    letters = SLOT_LETTERS[:n]
    if reading == "substring":
        return next((x for x in letters if slot_marker(x) in text), None)
    if reading != "strict":
        raise ValueError(f"reading={reading!r}; expected 'strict' or 'substring'")
    markers = list(_SLOT_MARKER.finditer(text))
    if not markers or markers[-1].group(1) not in letters:
        return None
    last = following = markers[-1]
    for m in reversed(markers[:-1]):
        if not _SLOT_GAP.fullmatch(text[m.end() : following.start()]):
            break
        if m.group(1) != last.group(1):
            return None
        following = m
    return last.group(1)
