"""Property tests of the verdict parser (hypothesis) against an independent oracle.

The oracle below reads a text character by character, with no regular expression: at every position it
tries to read an opener of the format, then the value after it, and collects the list of markers; the
answer is then the rule of cj2.verdict's module doc (the last marker counts; an invalid last marker, a
final cluster of side-by-side markers that disagree, or no marker gives None). On top of the oracle, the
structured generator knows by construction which verdict its texts end with.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cj2.verdict import FORMATS, label_surface, labels_for, locate_verdict, parse_verdict, render_verdict

# ----------------------------------------------------------------------------------------------- oracle

DOUBLE_QUOTES = '"“”'
SINGLE_QUOTES = "'‘’"
QUOTES = DOUBLE_QUOTES + SINGLE_QUOTES
KEYS = {
    "cj2_choice": ("choice",),
    "winner_json": ("winner", "胜者"),
    "correctness": ("correct",),
    "score": ("rating",),
}
CONNECTOR_WORDS = {"or", "and", "nor", "vs", "versus", "或", "或者", "和", "与", "还是"}
ARENA = {"A>>B": "A", "A>B": "A", "A=B": "tie", "B>A": "B", "B>>A": "B"}
LONGEST = 200


@dataclass
class Marker:
    start: int
    end: int
    label: str | None  # None: invalid
    span: tuple[int, int] | None = None


def is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def skip(text: str, i: int, chars: str | None, limit: int = 1 << 30) -> int:
    """Advance over characters in ``chars`` (None: whitespace), at most ``limit`` of them."""
    n = 0
    while i < len(text) and n < limit and (text[i].isspace() if chars is None else text[i] in chars):
        i += 1
        n += 1
    return i


def read_key_opener(text: str, i: int, keys: tuple[str, ...]) -> int | None:
    """The end of an opener starting exactly at ``i``, or None."""
    j = skip(text, i, "*", 3)
    if j < len(text) and text[j] in QUOTES:
        j += 1
    for key in keys:
        piece = text[j : j + len(key)]
        if key.isascii():
            if not (piece.isascii() and piece.lower() == key):
                continue
            if j > 0 and is_word_char(text[j - 1]):
                continue
        elif piece != key:
            continue
        k = j + len(key)
        if k < len(text) and text[k] in QUOTES:
            k += 1
        k = skip(text, skip(text, k, "*", 3), None)
        if k < len(text) and text[k] in ":：":
            return k + 1
    return None


def read_brackets(text: str, i: int) -> tuple[int, int] | None:
    """If ``[[content]]`` starts at ``i``: (content start, content end)."""
    if text[i : i + 2] != "[[":
        return None
    j = i + 2
    while j < len(text) and text[j] not in "[]\n":
        j += 1
    if j - (i + 2) > LONGEST or text[j : j + 2] != "]]":
        return None
    return i + 2, j


def stripped_span(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def bracket_label(fmt: str, text: str, a: int, b: int) -> tuple[str, tuple[int, int]] | None:
    a, b = stripped_span(text, a, b)
    core = text[a:b]
    if fmt == "brackets":
        label = {"A": "A", "B": "B", "C": "tie"}.get(core)
    elif fmt == "arena":
        label = ARENA.get("".join(c for c in core if not c.isspace()))
    else:
        label = core if core in {str(n) for n in range(1, 11)} else None
    return None if label is None else (label, (a, b))


def quoted_value_label(fmt: str, text: str, a: int, b: int) -> tuple[str, tuple[int, int]] | None:
    a, b = stripped_span(text, a, b)
    value = text[a:b]
    if fmt == "winner_json":
        return (value, (a, b)) if value in ("A", "B") else None
    if fmt == "correctness":
        return (value.lower(), (a, b)) if value.isascii() and value.lower() in ("yes", "no") else None
    # cj2_choice: "model", at least one whitespace, one capital letter
    if len(value) < 7 or not (value[:5].isascii() and value[:5].lower() == "model"):
        return None
    rest = value[5:]
    if not rest[0].isspace() or rest.strip() not in ("A", "B"):
        return None
    return value[-1], (b - 1, b)


def oracle_markers(text: str, fmt: str) -> list[Marker]:
    markers: list[Marker] = []
    i = 0
    while i < len(text):
        if fmt in ("brackets", "arena"):
            if text[i : i + 2] == "[[":
                content = read_brackets(text, i)
                if content is None:
                    markers.append(Marker(i, i + 2, None))
                else:
                    found = bracket_label(fmt, text, *content)
                    markers.append(Marker(i, content[1] + 2, *(found or (None, None))))
            i += 1  # overlapping "[[" count too
            continue
        opener_end = read_key_opener(text, i, KEYS[fmt])
        if opener_end is None:
            i += 1
            continue
        k = skip(text, skip(text, skip(text, opener_end, None), "*", 3), None)
        if fmt == "score":
            content = read_brackets(text, k) if k < len(text) else None
            if content is None:
                markers.append(Marker(i, opener_end, None))
            else:
                found = bracket_label(fmt, text, *content)
                markers.append(Marker(i, content[1] + 2, *(found or (None, None))))
        elif k < len(text) and text[k] in QUOTES:
            family = DOUBLE_QUOTES if text[k] in DOUBLE_QUOTES else SINGLE_QUOTES
            j = k + 1
            while j < len(text) and text[j] not in family and text[j] != "\n":
                j += 1
            if j < len(text) and text[j] in family and j - (k + 1) <= LONGEST:
                found = quoted_value_label(fmt, text, k + 1, j)
                markers.append(Marker(i, j + 1, *(found or (None, None))))
            else:
                markers.append(Marker(i, opener_end, None))
        else:
            markers.append(Marker(i, opener_end, None))
        i = opener_end  # openers do not overlap
    return markers


def separator_gap(gap: str) -> bool:
    word = ""
    for c in gap + " ":
        if is_word_char(c):
            word += c
            continue
        if word and word.lower() not in CONNECTOR_WORDS:
            return False
        word = ""
        if not (c.isspace() or unicodedata.category(c).startswith(("P", "S"))):
            return False
    return True


def oracle(text: str, fmt: str) -> tuple[str, int, int] | None:
    if fmt == "none":
        return None
    markers = oracle_markers(text, fmt)
    if not markers or markers[-1].label is None:
        return None
    last = markers[-1]
    labels = {last.label}
    after = last
    for m in reversed(markers[:-1]):
        if not separator_gap(text[m.end : after.start] if m.end < after.start else ""):
            break
        if m.label is not None:
            labels.add(m.label)
        after = m
    if len(labels) > 1:
        return None
    return last.label, last.span[0], last.span[1]


def test_oracle_sanity() -> None:
    # the oracle itself, on hand-checked texts
    assert oracle('x "Choice": "Model A"}', "cj2_choice") == ("A", 19, 20)
    assert oracle("[[A]] or [[B]]", "brackets") is None
    assert oracle("[[[A]]]", "brackets") == ("A", 3, 4)
    assert oracle("Rating: [[ 7 ]]", "score") == ("7", 11, 12)
    assert oracle("“胜者”：“B”", "winner_json") == ("B", 6, 7)
    assert oracle('"Correct": "YES".', "correctness") == ("yes", 12, 15)
    assert oracle('{"Choice": "[Model A or Model B]"}', "cj2_choice") is None
    assert oracle('"Choice": "Model A', "cj2_choice") is None


# --------------------------------------------------------------------------------------- arbitrary text


def check_consistent(text: str, fmt: str) -> tuple[str, int, int] | None:
    located = locate_verdict(text, fmt)
    parsed = parse_verdict(text, fmt)
    if located is None:
        assert parsed is None
    else:
        label, start, end = located
        assert parsed == label and label in labels_for(fmt)
        assert 0 <= start < end <= len(text)
    return located


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises_and_matches_oracle(text: str) -> None:
    for fmt in FORMATS:
        assert check_consistent(text, fmt) == oracle(text, fmt)


# Soups of the pieces markers are made of, one vocabulary per format so that valid markers, near-misses
# and side-by-side pairs all come up often.
SOUP_COMMON = [
    " ",
    "  ",
    "\n",
    "\t",
    "\u00a0",
    ",",
    ".",
    "/",
    "|",
    "-",
    " or ",
    " and ",
    "或",
    "vs",
    "x",
    "_",
    "é",
    "🤖",
    "*",
    "**",
    "****",
    '"',
    "“",
    "”",
    "'",
    "‘",
    "’",
    ":",
    "：",
    "{",
    "}",
    "```json\n",
    "A",
    "B",
]
SOUP = {
    "cj2_choice": [
        '"Choice"',
        "Choice",
        "choice",
        "CHOICE",
        "Multi",
        ": ",
        '"Model A"',
        '"Model B"',
        "Model ",
        "model ",
        "Model",
        "a",
        "C",
        '"Model A',
        "[Model A or Model B]",
        "'Model B'",
        '"Choice": ',
    ],
    "winner_json": [
        '"winner"',
        "winner",
        "Winner",
        "s",
        "胜者",
        "最终",
        ": ",
        '"A"',
        '"B"',
        '"C"',
        "a",
        "'A'",
        '"winner": ',
    ],
    "correctness": [
        '"Correct"',
        "correct",
        "Correct",
        "ness",
        ": ",
        '"yes"',
        '"No"',
        "YES",
        "yes",
        "no",
        "true",
        '"Correct": ',
    ],
    "score": [
        "Rating",
        "rating",
        ": ",
        "[[",
        "]]",
        "[",
        "]",
        "7",
        "10",
        "11",
        "0",
        "[[7]]",
        "[[ 3 ]]",
        "Rating: [[",
    ],
    "brackets": ["[[", "]]", "[", "]", "C", "a", "D", "[[A]]", "[[B]]", "[[C]]", "[[A>B]]", "[[ A ]]", "[[["],
    "arena": [
        "[[",
        "]]",
        "[",
        "]",
        ">",
        ">>",
        "=",
        "a",
        "[[A>B]]",
        "[[B>>A]]",
        "[[A=B]]",
        "[[A]]",
        "[[A >> B]]",
    ],
}
COMPLETE = {  # whole valid markers, weighted up: a soup must often *end* in one to test the cluster rule
    "cj2_choice": ['"Choice": "Model A"', '"Choice": "Model B"', "choice: 'model B'"],
    "winner_json": ['"winner": "A"', '"winner": "B"', "“胜者”：“A”"],
    "correctness": ['"Correct": "yes"', '"Correct": "no"', "correct: 'No'"],
    "score": ["Rating: [[7]]", "Rating: [[10]]", "rating:[[ 2 ]]"],
    "brackets": ["[[A]]", "[[B]]", "[[C]]"],
    "arena": ["[[A>B]]", "[[B>>A]]", "[[A=B]]"],
}
soups = st.sampled_from(sorted(SOUP)).flatmap(
    lambda fmt: st.lists(st.sampled_from(SOUP_COMMON + SOUP[fmt] + COMPLETE[fmt] * 6), max_size=25).map(
        "".join
    )
)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(soups)
def test_token_soups_match_oracle(text: str) -> None:
    for fmt in FORMATS:
        assert check_consistent(text, fmt) == oracle(text, fmt), (fmt, text)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(alphabet=st.characters(exclude_characters="[]\"'“”‘’:：*"), max_size=20))
def test_a_plain_preamble_changes_nothing(text: str, preamble: str) -> None:
    # A preamble without bracket, quote, colon or star, closed by ".\n", can neither hold a marker nor
    # complete one that the text begins (a key needs its colon right after it), nor join the final cluster.
    for fmt in FORMATS:
        assert parse_verdict(preamble + ".\n" + text, fmt) == parse_verdict(text, fmt)


# ---------------------------------------------------------------------------- structured judge outputs

FILLER = [
    "The response is mostly accurate.",
    "Model A explains the steps; Model B skips one.",
    "However, both miss",
    "我认为模型 A 的回答更完整。",
    "Let me check the arithmetic: 3 + 4 = 7.",
    "Both answers are fluent 😊.",
    "Assistant B is slightly better on style",
    "A is better than B",
    "Overall, a close call.",
]
# (" 或 " with spaces: "或" is a word character, so "或winner:" is no opener; the table tests "]]或[[".)
SEPARATORS = [" ", "\n", ", ", " or ", " / ", "\n\n---\n\n", " and ", " 或 ", " vs. ", " | ", "} {", "\t"]
TRAILERS = ["", ".", "}", "\n", " ✅", "**", "\n```", "\n\nI hope this helps.", "}\n```\n"]
LEADERS = ["", "Final verdict: ", "**Final Verdict:** ", "```json\n{", "{ ", "最终结论：", "> "]


def quote_pair(draw) -> tuple[str, str]:
    family = draw(st.sampled_from([DOUBLE_QUOTES, SINGLE_QUOTES]))
    return draw(st.sampled_from(family)), draw(st.sampled_from(family))


@st.composite
def valid_marker(draw, fmt: str, label: str, lead_word: bool = True) -> tuple[str, int, str]:
    """A valid marker of ``label`` with harmless variation: (text, offset of the label surface, surface).
    ``lead_word=False`` keeps words out of the marker's start, so it can sit side by side with another."""
    if fmt in ("cj2_choice", "winner_json", "correctness", "score"):
        key = {
            "cj2_choice": draw(st.sampled_from(["Choice", "choice", "CHOICE"])),
            "winner_json": draw(st.sampled_from(["winner", "Winner", "胜者"])),
            "correctness": draw(st.sampled_from(["Correct", "correct"])),
            "score": draw(st.sampled_from(["Rating", "rating"] + ["Overall rating"] * lead_word)),
        }[fmt]
        kq = draw(st.sampled_from(["", '"', "'", "“"]))
        kq_close = {"": "", '"': '"', "'": "'", "“": "”"}[kq]
        stars = draw(st.sampled_from(["", "**"]))
        colon = draw(st.sampled_from([":", "：", " :", ": ", " :  "]))
        head = f"{stars}{kq}{key}{kq_close}{stars}{colon}{draw(st.sampled_from(['', ' ', chr(10) + '  ']))}"
        if fmt == "score":
            pad = draw(st.sampled_from(["", " "]))
            return f"{head}[[{pad}{label}{pad}]]", len(head) + 2 + len(pad), label
        if fmt == "cj2_choice":
            model = draw(st.sampled_from(["Model", "model", "MODEL"]))
            value, surface = f"{model}{draw(st.sampled_from([' ', '  ']))}{label}", label
        elif fmt == "correctness":
            surface = draw(st.sampled_from([label, label.upper(), label.capitalize()]))
            value = surface
        else:
            value, surface = label, label
        pad = draw(st.sampled_from(["", " "]))
        open_q, close_q = quote_pair(draw)
        text = f"{head}{open_q}{pad}{value}{pad}{close_q}"
        return text, len(head) + 1 + len(pad) + len(value) - len(surface), surface
    strong = fmt == "arena" and label != "tie" and draw(st.booleans())
    surface = label_surface(label, fmt, strong=strong)
    return f"[[{surface}]]", 2, surface


def invalid_markers(fmt: str) -> list[str]:
    """Complete or broken markers that carry no valid label (never the text's end: see truncations)."""
    return {
        "cj2_choice": [
            '"Choice": "[Model A or Model B]"',
            '"Choice": "Model a"',
            '"Choice": "A"',
            "'Choice': 'Model C'",
            '"Choice": Model A',
            '"Choice": "Model A\n"',
            "Choice: null",
        ],
        "winner_json": [
            '"winner": "C"',
            '"winner": "a"',
            '"胜者": "tie"',
            '"winner": "Model A"',
            '"winner": B',
        ],
        "correctness": ['"Correct": "true"', '"Correct": "yes or no"', '"correct": yes', '"Correct": "y"'],
        "score": ["Rating: [[11]]", "Rating: [[0]]", "Rating: [[7.5]]", "Rating: 7/10", "Rating: [[rating]]"],
        "brackets": ["[[a]]", "[[D]]", "[[A>B]]", "[[A or B]]", "[[A\n]]", "[[1, 2]]"],
        "arena": ["[[A]]", "[[a>b]]", "[[B=A]]", "[[A>>>B]]", "[[C]]"],
    }[fmt]


def truncations(fmt: str, label: str) -> list[str]:
    """The canonical marker cut anywhere after its opener: what a generation stopped by max tokens leaves."""
    full = render_verdict(label, fmt)
    opener_len = full.index("[[") + 2 if fmt in ("brackets", "arena") else full.index(":") + 1
    return [full[:n] for n in range(opener_len, len(full))]


@st.composite
def judge_output(draw, fmt: str) -> tuple[str, tuple[str, int, int] | None]:
    """A judge's output built from fragments, with the verdict it must yield by construction."""
    labels = labels_for(fmt)
    parts: list[str] = []
    # the critique: filler, quoted instructions, earlier (possibly contradicting) verdicts, broken markers
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["filler", "earlier", "instruction", "invalid"]))
        if kind == "filler":
            parts.append(draw(st.sampled_from(FILLER)))
        elif kind == "earlier":
            parts.append("At first I thought " + draw(valid_marker(fmt, draw(st.sampled_from(labels))))[0])
        elif kind == "instruction":
            quoted = " or ".join(render_verdict(x, fmt) for x in labels[:3])
            parts.append(f'The required format is: "{quoted}".')
        else:
            parts.append(
                "A draft said " + draw(st.sampled_from(invalid_markers(fmt))) + " but that is wrong."
            )
    parts.append(draw(st.sampled_from(FILLER)))  # words: nothing before can chain into the ending
    prefix = "\n".join(parts) + "\n" + draw(st.sampled_from(LEADERS))
    # the ending decides the verdict
    ending = draw(st.sampled_from(["valid", "valid", "pair", "invalid", "truncated", "nothing"]))
    label = draw(st.sampled_from(labels))
    if ending == "valid":
        marker, offset, surface = draw(valid_marker(fmt, label))
        text = prefix + marker + draw(st.sampled_from(TRAILERS))
        return text, (label, len(prefix) + offset, len(prefix) + offset + len(surface))
    if ending == "pair":  # two verdicts side by side: fine when they agree, None when they do not
        other = draw(st.sampled_from(labels))
        first = draw(valid_marker(fmt, other))[0]
        marker, offset, surface = draw(valid_marker(fmt, label, lead_word=False))
        start = len(prefix) + len(first) + len(sep := draw(st.sampled_from(SEPARATORS)))
        text = prefix + first + sep + marker + draw(st.sampled_from(TRAILERS))
        return text, (label, start + offset, start + offset + len(surface)) if other == label else None
    if ending == "invalid":
        return prefix + draw(st.sampled_from(invalid_markers(fmt))) + draw(st.sampled_from(TRAILERS)), None
    if ending == "truncated":
        return prefix + draw(st.sampled_from(truncations(fmt, label))), None
    # no final verdict at all: only a text with no marker anywhere reads None for sure
    return draw(st.sampled_from(FILLER)), None


VERDICT_FORMATS = [f for f in FORMATS if f != "none"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VERDICT_FORMATS).flatmap(lambda fmt: st.tuples(st.just(fmt), judge_output(fmt))))
def test_structured_outputs(case: tuple[str, tuple[str, tuple[str, int, int] | None]]) -> None:
    fmt, (text, expected) = case
    located = check_consistent(text, fmt)
    assert located == expected, (fmt, text)
    assert oracle(text, fmt) == expected, (fmt, text)
    assert parse_verdict(text, "none") is None


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(VERDICT_FORMATS).flatmap(
        lambda fmt: st.tuples(
            st.just(fmt), st.sampled_from(labels_for(fmt)), st.sampled_from(FILLER), st.sampled_from(TRAILERS)
        )
    )
)
def test_canonical_span_is_the_label_surface(case: tuple[str, str, str, str]) -> None:
    fmt, label, filler, trailer = case
    text = f"{filler}\n{render_verdict(label, fmt)}{trailer}"
    found, start, end = locate_verdict(text, fmt)
    assert found == label
    assert text[start:end] == label_surface(label, fmt)
