"""The verdict parser against a table of adversarial judge outputs (arXiv 2507.09104, Sec. 3).

Each row is (format, text, expected label, expected span text). The span text is what
``text[start:end]`` of :func:`locate_verdict` must hold; ``SURFACE`` means ``label_surface(label, format)``.
"""

from __future__ import annotations

import time

import pytest

from cj2.verdict import (
    FORMATS,
    label_surface,
    labels_for,
    locate_verdict,
    parse_opencompass,
    parse_verdict,
    render_verdict,
    single_token_labels,
)

SURFACE = object()

CJ2_INSTRUCTION = (
    "Your final reply must be structured in the following format:\n"
    '{ "User\'s Demand": "...", "Reasoning": "...", "Choice": "[Model A or Model B]" }\n'
    "7. Choice: conclude with Model A or Model B.\n"
)
SEVEN_KEYS = (
    '{"User\'s Demand": "Sort the list.", "Strengths of Model A": "Correct order.", '
    '"Weaknesses of Model A": "None.", "Strengths of Model B": "Short.", '
    '"Weaknesses of Model B": "It drops 3, so Model B is wrong.", '
    '"Reasoning": "Model A keeps every element; the choice is clear.", "Choice": "Model A"}'
)
ARENA_INSTRUCTION = (
    "Output your final verdict with a label: 1. Assistant A is significantly better: [[A>>B]] "
    "2. Assistant A is slightly better: [[A>B]] 3. Tie, relatively the same: [[A=B]] "
    "4. Assistant B is slightly better: [[B>A]] 5. Assistant B is significantly better: [[B>>A]]. "
    'Example output: "My final verdict is tie: [[A=B]]".\n'
)
BRACKET_INSTRUCTION = (
    'output your final verdict by strictly following this format: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.\n'
)
WINNER_INSTRUCTION = (
    'Please output {"analysis":"...", "winner":"A"} if A is better, '
    'or {"analysis":"...", "winner":"B"} if B is better.\n'
)
SCORE_INSTRUCTION = 'Rate strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n'

ROWS: list[tuple[str, str, str, str | None, object]] = [
    # id, format, text, expected label, expected span text
    # ---------------------------------------------------------------- cj2_choice
    ("choice-canonical", "cj2_choice", '"Choice": "Model A"', "A", SURFACE),
    ("choice-canonical-B", "cj2_choice", '"Choice": "Model B"', "B", SURFACE),
    ("choice-seven-keys", "cj2_choice", SEVEN_KEYS, "A", SURFACE),
    (
        "choice-instruction-then-answer",
        "cj2_choice",
        CJ2_INSTRUCTION + "Analysis...\n" + '{"Choice": "Model B"}',
        "B",
        SURFACE,
    ),
    (
        "choice-echoed-placeholder",
        "cj2_choice",
        CJ2_INSTRUCTION + "Analysis... " + '{"Choice": "[Model A or Model B]"}',
        None,
        None,
    ),
    ("choice-placeholder-only", "cj2_choice", '{ "Choice": "[Model A or Model B]" }', None, None),
    (
        "choice-placeholder-then-answer",
        "cj2_choice",
        '{"Choice": "[Model A or Model B]"}\n{"Choice": "Model B"}',
        "B",
        SURFACE,
    ),
    (
        "choice-earlier-contradiction",
        "cj2_choice",
        'At first glance "Choice": "Model B" looks right, but B drops an item. {"Choice": "Model A"}',
        "A",
        SURFACE,
    ),
    ("choice-two-keys-side-by-side", "cj2_choice", '{"Choice": "Model A", "Choice": "Model B"}', None, None),
    ("choice-or-between", "cj2_choice", '"Choice": "Model A" or "Choice": "Model B"', None, None),
    ("choice-same-twice", "cj2_choice", '"Choice": "Model A", "Choice": "Model A"', "A", SURFACE),
    ("choice-no-space", "cj2_choice", '"Choice":"Model B"', "B", SURFACE),
    ("choice-spaces-around-colon", "cj2_choice", '"Choice"  :   "Model B"', "B", SURFACE),
    ("choice-unquoted-key", "cj2_choice", 'Choice: "Model A"', "A", SURFACE),
    ("choice-single-quotes", "cj2_choice", "{'Choice': 'Model B'}", "B", SURFACE),
    ("choice-curly-quotes", "cj2_choice", "“Choice”: “Model A”", "A", SURFACE),
    ("choice-markdown-bold", "cj2_choice", '**Choice**: "Model B"', "B", SURFACE),
    (
        "choice-code-fence",
        "cj2_choice",
        '```json\n{\n  "Reasoning": "x",\n  "Choice": "Model A"\n}\n```',
        "A",
        SURFACE,
    ),
    ("choice-trailing-punctuation", "cj2_choice", '"Choice": "Model B"}.', "B", SURFACE),
    ("choice-lowercase-key-and-model", "cj2_choice", 'choice: "model A"', "A", SURFACE),
    ("choice-lowercase-letter", "cj2_choice", '"Choice": "Model a"', None, None),
    ("choice-letter-only-value", "cj2_choice", '"Choice": "A"', None, None),
    ("choice-model-c", "cj2_choice", '"Choice": "Model C"', None, None),
    ("choice-inner-whitespace", "cj2_choice", '"Choice": " Model  A "', "A", SURFACE),
    ("choice-value-with-extra-words", "cj2_choice", '"Choice": "Model A\'s answer"', None, None),
    ("choice-truncated-value", "cj2_choice", '"Choice": "Model A', None, None),
    ("choice-truncated-after-colon", "cj2_choice", 'Reasoning done. "Choice": ', None, None),
    (
        "choice-truncated-after-earlier-verdict",
        "cj2_choice",
        '"Choice": "Model B" is tempting. "Choice": "Mod',
        None,
        None,
    ),
    ("choice-value-broken-by-newline", "cj2_choice", '"Choice": "Model A\n"}', None, None),
    ("choice-unquoted-value", "cj2_choice", "Choice: Model A", None, None),
    (
        "choice-prose-after-verdict",
        "cj2_choice",
        '{"Choice": "Model A"}\nMy choice: this was close.',
        None,
        None,
    ),
    (
        "choice-prose-without-colon",
        "cj2_choice",
        '{"Choice": "Model A"}\nIt was a hard choice.',
        "A",
        SURFACE,
    ),
    ("choice-other-key-prefix", "cj2_choice", '"Choice": "Model B", "Multichoice": "Model A"', "B", SURFACE),
    ("choice-key-suffix", "cj2_choice", '"Choice": "Model B", "Choice_reason": "Model A"', "B", SURFACE),
    ("choice-brackets-are-not-markers", "cj2_choice", "[[A]]", None, None),
    (
        "choice-opencompass-marker-unicode",
        "cj2_choice",
        '分析：模型 A 更好。\n"Choice": "Model A" ✅',
        "A",
        SURFACE,
    ),
    ("choice-triple-key", "cj2_choice", '"Choice": "Choice": "Model A"', "A", SURFACE),
    # ---------------------------------------------------------------- brackets
    ("brackets-A", "brackets", "[[A]]", "A", SURFACE),
    ("brackets-tie", "brackets", "Both are equally good. [[C]]", "tie", SURFACE),
    (
        "brackets-instruction-then-answer",
        "brackets",
        BRACKET_INSTRUCTION + "B is wrong.\n\nFinal verdict: [[A]]",
        "A",
        SURFACE,
    ),
    ("brackets-instruction-only", "brackets", BRACKET_INSTRUCTION, "tie", SURFACE),
    ("brackets-side-by-side", "brackets", "My verdict: [[A]] [[B]]", None, None),
    ("brackets-or", "brackets", "[[A]] or [[B]]", None, None),
    ("brackets-slash", "brackets", "[[A]]/[[C]]", None, None),
    ("brackets-newlines-rule", "brackets", "[[A]]\n\n---\n\n[[B]]", None, None),
    ("brackets-chain-of-three", "brackets", "[[A]], [[B]], [[B]]", None, None),
    ("brackets-agreeing-pair", "brackets", "[[B]] [[B]]", "B", SURFACE),
    ("brackets-words-between", "brackets", "Draft: [[A]]. On reflection B is right: [[B]]", "B", SURFACE),
    ("brackets-lowercase", "brackets", "[[a]]", None, None),
    ("brackets-lowercase-last", "brackets", "Verdict [[A]] then [[b]]", None, None),
    ("brackets-whitespace-inside", "brackets", "[[ B ]]", "B", "B"),
    ("brackets-triple", "brackets", "[[[A]]]", "A", SURFACE),
    ("brackets-trailing-punct", "brackets", "**[[B]]**.", "B", SURFACE),
    ("brackets-quoted", "brackets", 'Final verdict: "[[A]]"', "A", SURFACE),
    ("brackets-invalid-D", "brackets", "[[D]]", None, None),
    ("brackets-arena-marker", "brackets", "[[A>B]]", None, None),
    ("brackets-truncated-open", "brackets", "[[A]] is my draft; final: [[", None, None),
    ("brackets-truncated-letter", "brackets", "Final: [[B", None, None),
    ("brackets-truncated-one-close", "brackets", "Final: [[B]", None, None),
    ("brackets-single-bracket-ignored", "brackets", "[[A]] see [1]", "A", SURFACE),
    ("brackets-nested-list-after", "brackets", "[[B]] e.g. [[1, 2], [3]]", None, None),  # every [[ opens
    ("brackets-numeric-list-after", "brackets", "[[B]] e.g. [[1, 2]]", None, None),
    ("brackets-multiline-content", "brackets", "[[A\n]]", None, None),
    ("brackets-cjk-or", "brackets", "[[A]]或[[B]]", None, None),
    ("brackets-cjk-words", "brackets", "初步判断 [[A]]，最终判断 [[B]]", "B", SURFACE),
    # ---------------------------------------------------------------- arena
    ("arena-A-strong", "arena", "[[A>>B]]", "A", "A>>B"),
    ("arena-A", "arena", "My final verdict is: [[A>B]]", "A", SURFACE),
    ("arena-tie", "arena", "My final verdict is tie: [[A=B]]", "tie", SURFACE),
    ("arena-B", "arena", "[[B>A]]", "B", SURFACE),
    ("arena-B-strong", "arena", "[[B>>A]].", "B", "B>>A"),
    (
        "arena-instruction-then-answer",
        "arena",
        ARENA_INSTRUCTION + "Assistant B is wrong.\n[[A>>B]]",
        "A",
        "A>>B",
    ),
    ("arena-instruction-only", "arena", ARENA_INSTRUCTION, "tie", SURFACE),
    ("arena-agreeing-strengths", "arena", "[[A>B]] [[A>>B]]", "A", "A>>B"),
    ("arena-side-by-side", "arena", "[[A>B]] or [[B>A]]", None, None),
    ("arena-spaces", "arena", "[[A >> B]]", "A", "A >> B"),
    ("arena-reversed-tie", "arena", "[[B=A]]", None, None),
    ("arena-bracket-letter", "arena", "[[A]]", None, None),
    ("arena-lowercase", "arena", "[[a>b]]", None, None),
    ("arena-truncated", "arena", "[[A>B]] maybe; final: [[B>", None, None),
    # ---------------------------------------------------------------- winner_json
    ("winner-canonical", "winner_json", '{"analysis": "A is right", "winner": "A"}', "A", SURFACE),
    ("winner-chinese-key", "winner_json", '{"分析": "B 更好", "胜者": "B"}', "B", SURFACE),
    ("winner-chinese-fullwidth", "winner_json", "“胜者”：“A”", "A", SURFACE),
    (
        "winner-instruction-then-answer",
        "winner_json",
        WINNER_INSTRUCTION + '{"analysis": "...", "winner": "B"}',
        "B",
        SURFACE,
    ),
    ("winner-instruction-only", "winner_json", WINNER_INSTRUCTION, "B", SURFACE),
    ("winner-C", "winner_json", '{"winner": "C"}', None, None),
    ("winner-tie-word", "winner_json", '{"winner": "tie"}', None, None),
    ("winner-lowercase-letter", "winner_json", '{"winner": "a"}', None, None),
    ("winner-uppercase-key", "winner_json", '{"Winner": "B"}', "B", SURFACE),
    ("winner-single-quotes", "winner_json", "{'winner': 'A'}", "A", SURFACE),
    (
        "winner-analysis-mentions-winner",
        "winner_json",
        '{"analysis": "the winner: clearly A", "winner": "B"}',
        "B",
        SURFACE,
    ),
    (
        "winner-key-in-analysis-after",
        "winner_json",
        '{"winner": "A", "analysis": "so the winner: B"}',
        None,
        None,
    ),
    ("winner-two-side-by-side", "winner_json", '{"winner": "A", "winner": "B"}', None, None),
    ("winner-winners-key", "winner_json", '{"winners": "B", "winner": "A"}', "A", SURFACE),
    ("winner-truncated", "winner_json", '{"analysis": "A wins", "winner": "', None, None),
    ("winner-fenced", "winner_json", '```json\n{"analysis": "x", "winner": "B"}\n```', "B", SURFACE),
    ("winner-model-a-value", "winner_json", '{"winner": "Model A"}', None, None),
    # ---------------------------------------------------------------- score
    ("score-canonical", "score", "Good answer. Rating: [[7]]", "7", SURFACE),
    ("score-ten", "score", "Rating: [[10]]", "10", SURFACE),
    ("score-one", "score", "Rating: [[1]]", "1", SURFACE),
    ("score-spaces", "score", "Rating: [[ 7 ]]", "7", "7"),
    (
        "score-instruction-then-answer",
        "score",
        SCORE_INSTRUCTION + "The answer is fine.\nRating: [[8]]",
        "8",
        SURFACE,
    ),
    ("score-instruction-then-bare", "score", SCORE_INSTRUCTION + "The answer is fine. [[8]]", "5", SURFACE),
    ("score-bare-brackets", "score", "[[7]]", None, None),
    ("score-eleven", "score", "Rating: [[11]]", None, None),
    ("score-zero", "score", "Rating: [[0]]", None, None),
    ("score-leading-zero", "score", "Rating: [[07]]", None, None),
    ("score-decimal", "score", "Rating: [[7.5]]", None, None),
    ("score-no-brackets", "score", "Rating: 7/10", None, None),
    ("score-lowercase-key", "score", "Overall rating: [[6]].", "6", SURFACE),
    ("score-two-ratings", "score", "Rating: [[7]]\nRating: [[8]]", None, None),
    (
        "score-earlier-rating",
        "score",
        "Rating: [[3]] was my first thought, but on balance Rating: [[4]]",
        "4",
        SURFACE,
    ),
    ("score-truncated", "score", "Rating: [[7]] for style. Final Rating: [[", None, None),
    ("score-negative", "score", "Rating: [[-3]]", None, None),
    ("score-bold", "score", "**Rating:** [[9]]", "9", SURFACE),
    # ---------------------------------------------------------------- correctness
    ("correct-yes", "correctness", '{"Correct": "yes"}', "yes", SURFACE),
    ("correct-no", "correctness", '"Correct": "no"', "no", SURFACE),
    ("correct-Yes", "correctness", '"Correct": "Yes"', "yes", "Yes"),
    ("correct-NO", "correctness", '"correct": "NO".', "no", "NO"),
    ("correct-true", "correctness", '"Correct": "true"', None, None),
    ("correct-unquoted", "correctness", '"Correct": yes', None, None),
    ("correct-correctness-key", "correctness", '"Correctness": "yes"', None, None),
    ("correct-both", "correctness", '"Correct": "yes" / "Correct": "no"', None, None),
    ("correct-placeholder", "correctness", '"Correct": "yes or no"', None, None),
    (
        "correct-earlier",
        "correctness",
        'Initially "Correct": "yes", but step 3 is wrong. "Correct": "no"',
        "no",
        SURFACE,
    ),
    ("correct-truncated", "correctness", '"Correct": "ye', None, None),
    # ---------------------------------------------------------------- length bound:
    # values of at most 200 characters
    ("bound-value-fits", "cj2_choice", '"Choice": "' + " " * 193 + 'Model A"', "A", SURFACE),
    ("bound-value-too-long", "cj2_choice", '"Choice": "' + " " * 194 + 'Model A"', None, None),
    ("bound-brackets-fit", "brackets", "[[" + " " * 199 + "A]]", "A", SURFACE),
    ("bound-brackets-too-long", "brackets", "[[" + " " * 200 + "A]]", None, None),
    # ---------------------------------------------------------------- every format: nothing to read
    *[
        (f"{fmt}-{name}", fmt, text, None, None)
        for fmt in FORMATS
        for name, text in [
            ("empty", ""),
            ("None", "None"),
            ("null", "null"),
            ("NA", "N/A"),
            ("space", "   "),
            ("nul", "\x00"),
            ("surrogate", "\ud800"),
            ("emoji", "🤖 A B"),
            ("letter", "A"),
            ("prose", "Model A is better than Model B."),
        ]
    ],
    # ---------------------------------------------------------------- format "none" ignores every marker
    ("none-ignores-markers", "none", '[[A]] "Choice": "Model A" Rating: [[7]] "Correct": "yes"', None, None),
]


@pytest.mark.parametrize(("fmt", "text", "expected", "span"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_adversarial_table(fmt: str, text: str, expected: str | None, span: object) -> None:
    assert parse_verdict(text, fmt) == expected
    located = locate_verdict(text, fmt)
    if expected is None:
        assert located is None
        return
    label, start, end = located
    assert label == expected
    want = label_surface(expected, fmt) if span is SURFACE else span
    assert text[start:end] == want


def test_table_is_large_and_covers_every_format() -> None:
    assert len(ROWS) >= 80
    assert {r[1] for r in ROWS} == set(FORMATS)


def test_span_positions_hand_computed() -> None:
    assert locate_verdict('"Choice": "Model A"', "cj2_choice") == ("A", 17, 18)
    assert locate_verdict("x [[C]]", "brackets") == ("tie", 4, 5)
    assert locate_verdict("[[B>>A]]", "arena") == ("B", 2, 6)
    assert locate_verdict('"胜者": "B"', "winner_json") == ("B", 7, 8)
    assert locate_verdict("Rating: [[10]]", "score") == ("10", 10, 12)
    assert locate_verdict('"Correct": "Yes"', "correctness") == ("yes", 12, 15)


LABELS = {
    "cj2_choice": ("A", "B"),
    "brackets": ("A", "B", "tie"),
    "arena": ("A", "B", "tie"),
    "winner_json": ("A", "B"),
    "score": ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10"),
    "correctness": ("yes", "no"),
    "none": (),
}
RENDERED = {
    ("cj2_choice", "A"): '"Choice": "Model A"',
    ("cj2_choice", "B"): '"Choice": "Model B"',
    ("brackets", "A"): "[[A]]",
    ("brackets", "B"): "[[B]]",
    ("brackets", "tie"): "[[C]]",
    ("arena", "A"): "[[A>B]]",
    ("arena", "B"): "[[B>A]]",
    ("arena", "tie"): "[[A=B]]",
    ("winner_json", "A"): '"winner": "A"',
    ("winner_json", "B"): '"winner": "B"',
    ("score", "7"): "Rating: [[7]]",
    ("score", "10"): "Rating: [[10]]",
    ("correctness", "yes"): '"Correct": "yes"',
    ("correctness", "no"): '"Correct": "no"',
}
SURFACES = {
    ("cj2_choice", "A"): "A",
    ("brackets", "tie"): "C",
    ("arena", "A"): "A>B",
    ("arena", "tie"): "A=B",
    ("winner_json", "B"): "B",
    ("score", "10"): "10",
    ("correctness", "no"): "no",
}


def test_formats_and_labels() -> None:
    assert FORMATS == ("cj2_choice", "brackets", "arena", "winner_json", "score", "correctness", "none")
    for fmt in FORMATS:
        assert labels_for(fmt) == LABELS[fmt]
    single = {fmt: single_token_labels(fmt) for fmt in FORMATS}
    assert single == {
        "cj2_choice": True,
        "brackets": True,
        "arena": False,
        "winner_json": True,
        "score": False,
        "correctness": True,
        "none": False,
    }


@pytest.mark.parametrize(("key", "text"), sorted(RENDERED.items()))
def test_render_verdict_exact(key: tuple[str, str], text: str) -> None:
    assert render_verdict(key[1], key[0]) == text


@pytest.mark.parametrize(("key", "surface"), sorted(SURFACES.items()))
def test_label_surface_exact(key: tuple[str, str], surface: str) -> None:
    assert label_surface(key[1], key[0]) == surface


def test_arena_strong() -> None:
    assert render_verdict("A", "arena", strong=True) == "[[A>>B]]"
    assert render_verdict("B", "arena", strong=True) == "[[B>>A]]"
    assert render_verdict("tie", "arena", strong=True) == "[[A=B]]"
    assert label_surface("B", "arena", strong=True) == "B>>A"
    with pytest.raises(ValueError, match="strong"):
        render_verdict("A", "brackets", strong=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_label(fmt: str) -> None:
    for label in labels_for(fmt):
        for strong in [False, True] if fmt == "arena" else [False]:
            text = render_verdict(label, fmt, strong=strong)
            assert parse_verdict(text, fmt) == label
            found, start, end = locate_verdict(text, fmt)
            assert found == label
            assert text[start:end] == label_surface(label, fmt, strong=strong)
            # inside a critique, after a quoted contradicting instruction, with trailing punctuation
            other = [x for x in labels_for(fmt) if x != label][0]
            wrapped = f"The format is {render_verdict(other, fmt)} as asked.\nAfter checking:\n{text}."
            found, start, end = locate_verdict(wrapped, fmt)
            assert found == label and wrapped[start:end] == label_surface(label, fmt, strong=strong)


@pytest.mark.parametrize(
    ("label", "fmt"),
    [
        ("tie", "cj2_choice"),
        ("C", "brackets"),
        ("A>B", "arena"),
        ("C", "winner_json"),
        ("11", "score"),
        ("0", "score"),
        ("Yes", "correctness"),
        ("A", "none"),
        ("a", "brackets"),
    ],
)
def test_render_rejects_invalid_labels(label: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="not valid"):
        render_verdict(label, fmt)
    with pytest.raises(ValueError, match="not valid"):
        label_surface(label, fmt)


@pytest.mark.parametrize(
    "call",
    [
        lambda: parse_verdict("[[A]]", "bracket"),
        lambda: labels_for("json"),
        lambda: single_token_labels(""),
        lambda: locate_verdict("", "Brackets"),
        lambda: render_verdict("A", "choice"),
        lambda: parse_opencompass("x", "json"),
    ],
)
def test_unknown_format_is_a_value_error(call) -> None:
    with pytest.raises(ValueError, match="unknown"):
        call()


def test_non_str_text_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="str"):
        parse_verdict(None, "brackets")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        parse_opencompass(b"[[A]]", "choice")  # type: ignore[arg-type]


OPENCOMPASS_ROWS = [
    ("winner", '{"analysis": "x", "winner": "A"}', "A"),
    ("winner", '"winner": "A" ... "winner": "B"', "B"),  # last match
    ("winner", '{"winner": "C"}', "C"),  # any capital letter
    ("winner", '"胜者": "B"', "B"),
    ("winner", 'winner:"D"', "D"),
    ("winner", "{'winner': 'A'}", None),  # single quotes do not match the regex
    ("winner", '"winner": "a"', None),
    ("winner", '"Winner": "A"', None),  # case-sensitive
    ("winner", '"winner": "[A or B]"', None),
    ("winner", "", None),
    ("choice", '"Choice": "Model A"', "A"),
    ("choice", '"Choice": "Model A" then "Choice": "Model B"', "B"),
    ("choice", '"Choice": "[Model A or Model B]"', '"'),  # no literal marker: first character
    ("choice", "Model B is better", "M"),  # the quirk: first character of the whole output
    ("choice", '"Choice": "Model a"', "a"),
    ("choice", "Choice: Model B", "C"),
    ("choice", "", None),
    ("choice", 'text "Choice": "Model ', None),  # OpenCompass would raise IndexError here
]


@pytest.mark.parametrize(("kind", "text", "expected"), OPENCOMPASS_ROWS)
def test_parse_opencompass(kind: str, text: str, expected: str | None) -> None:
    assert parse_opencompass(text, kind) == expected


ONE_MB = 1_000_000
PATHOLOGICAL = {
    "open-brackets": "[[" * (ONE_MB // 2),
    "valid-then-opens": "[[A]]" + "[[" * (ONE_MB // 2),
    "agreeing-cluster": "[[A]] " * (ONE_MB // 6),
    "open-quotes": '"Choice": "' * (ONE_MB // 11),
    "key-then-spaces": "Choice" + " " * ONE_MB,
    "key-openers": "Rating:" * (ONE_MB // 7),
    "unterminated-value": 'winner: "' + "x" * ONE_MB,
    "stars": "*" * ONE_MB,
    "cjk-keys": "胜者:" * (ONE_MB // 3),
    "plain": "lorem ipsum " * (ONE_MB // 12),
    "mixed-quotes": "“Choice”: ‘" * (ONE_MB // 11),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_megabyte_inputs_are_fast(name: str) -> None:
    text = PATHOLOGICAL[name]
    t0 = time.perf_counter()
    for fmt in FORMATS:
        parse_verdict(text, fmt)
    parse_opencompass(text, "winner")
    parse_opencompass(text, "choice")
    # linear scanning reads 1 MB in well under a second per format; catastrophic backtracking would not
    # finish at all
    assert time.perf_counter() - t0 < 10.0


def test_megabyte_results() -> None:
    assert parse_verdict(PATHOLOGICAL["open-brackets"], "brackets") is None
    assert parse_verdict(PATHOLOGICAL["valid-then-opens"], "brackets") is None
    assert parse_verdict(PATHOLOGICAL["agreeing-cluster"], "brackets") == "A"
    assert parse_verdict("x" * ONE_MB + ' "Choice": "Model B"', "cj2_choice") == "B"


@pytest.mark.parametrize(
    ("text", "fmt", "marker"),
    [
        ('{"Check A": "ok", "Choice": "Model B"}', "cj2_choice", 'Choice": "Model B"'),
        ("A is better. [[A]]", "brackets", "[[A]]"),
        ("no verdict here", "brackets", None),
    ],
)
def test_locate_marker_spans_the_whole_final_marker(text, fmt, marker):
    from cj2.verdict import locate_marker

    found = locate_marker(text, fmt)
    if marker is None:
        assert found is None
        return
    label, start, end = found
    assert label == parse_verdict(text, fmt)
    assert text[start:end] == marker
    lv = locate_verdict(text, fmt)
    assert start <= lv[1] and lv[2] <= end  # the label's span lies inside the marker's


def test_parse_slot_of_a_best_of_n_judgment():
    from cj2.verdict import parse_slot, slot_marker

    assert slot_marker("C") == "[[C]]"
    for text, strict, substring in (
        ("Best: [[C]]", "C", "C"),
        ("Not [[A]]; final verdict [[C]]", "C", "A"),  # the substring reading takes A first
        ("[[C]] or [[D]]", None, "C"),  # contradicting markers side by side
        ("[[C]], [[C]]", "C", "C"),
        ("[[E]]", None, None),  # no fifth slot among four
        ("[[ b ]]", None, None),
        ("no verdict", None, None),
    ):
        assert parse_slot(text, 4) == strict, text
        assert parse_slot(text, 4, reading="substring") == substring, text
    assert parse_slot("[[E]]", 5) == "E"
    with pytest.raises(ValueError, match="reading"):
        parse_slot("[[A]]", 4, reading="loose")
