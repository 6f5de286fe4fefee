"""Judge prompt templates: the registry, prompts, answers in each verdict format, the seeded draw."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

import cj2.data.templates as templates_module
from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.templates import (
    STYLE_NOTE,
    TEMPLATES,
    JudgeTemplate,
    criterion_for,
    get_template,
    sample_template,
    template_names,
)
from cj2.verdict import labels_for, locate_verdict, parse_verdict

EXPECTED = {  # name: (format, kind)
    "cj2_critical": ("cj2_choice", "pairwise"),
    "cj2_eval": ("cj2_choice", "pairwise"),
    "mtbench_pair": ("brackets", "pairwise"),
    "arena_hard": ("arena", "pairwise"),
    "judgerbenchv2": ("winner_json", "pairwise"),
    "pointwise_score": ("score", "pointwise"),
    "cj2_rating": ("score", "pointwise"),
    "correctness": ("correctness", "pointwise"),
    "cj2_critique": ("correctness", "pointwise"),
    "cj2_short": ("cj2_choice", "pairwise"),
    "cj2_check": ("cj2_choice", "pairwise"),
    "cj2_direct": ("cj2_choice", "pairwise"),
}
CRITICAL_KEYS = [
    "User's Demand",
    "Strengths of Model A",
    "Weaknesses of Model A",
    "Strengths of Model B",
    "Weaknesses of Model B",
    "Reasoning",
]


def pair(**kw) -> PairwiseItem:
    base = dict(
        id="t/1",
        question="What is 17 * 3 + 8?",
        response_a="17 * 3 = 51; 51 + 8 = 59. It is 59.",
        response_b="The answer is 58.",
        label="A",
        domain="arithmetic",
    )
    base.update(kw)
    return PairwiseItem(**base)


def point(**kw) -> PointwiseItem:
    base = dict(id="p/1", question="Convert 2.5 km to m.", response="250 m", correct=False)
    base.update(kw)
    return PointwiseItem(**base)


def item_for(t: JudgeTemplate):
    return pair() if t.kind == "pairwise" else point()


def text_of(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def sections_for(t: JudgeTemplate, language: str = "en"):
    keys = t.response_keys(language)
    # Quotes, a backslash and a newline: json.dumps must keep the object intact.
    return {k: f'{k}: says "59", not 5\\8;\nsecond line' for k in keys} if keys else "A gives 59; B gives 58."


# ------------------------------------------------------------------ registry


def test_registry_has_the_templates_with_their_formats_and_kinds():
    assert {n: (t.format, t.kind) for n, t in TEMPLATES.items() if n in EXPECTED} == EXPECTED
    assert set(EXPECTED) <= set(TEMPLATES)
    assert all(t.name == n for n, t in TEMPLATES.items())


def test_template_names_by_kind():
    assert set(template_names("pointwise")) == {
        "pointwise_score",
        "cj2_rating",
        "correctness",
        "cj2_critique",
    }
    assert set(template_names("pairwise")) == {n for n, (_, k) in EXPECTED.items() if k == "pairwise"}
    with pytest.raises(ValueError, match="kind"):
        template_names("listwise")


def test_get_template_unknown_name_lists_known_ones():
    assert get_template("cj2_short") is TEMPLATES["cj2_short"]
    with pytest.raises(KeyError) as err:
        get_template("nope")
    assert "nope" in str(err.value) and "cj2_critical" in str(err.value) and "arena_hard" in str(err.value)


def test_template_rejects_bad_definitions():
    with pytest.raises(ValueError, match="kind"):
        JudgeTemplate(name="x", format="brackets", kind="listwise", prompt="$question")
    with pytest.raises(ValueError, match="format"):
        JudgeTemplate(name="x", format="stars", kind="pairwise", prompt="$question")
    with pytest.raises(ValueError, match="none"):
        JudgeTemplate(name="x", format="none", kind="pairwise", prompt="$question")


def test_critical_template_asks_for_the_seven_keys_in_order():
    content = text_of(get_template("cj2_critical").render(pair()))
    positions = [content.index(f'"{k}"') for k in CRITICAL_KEYS] + [content.index('"Choice"')]
    assert positions == sorted(positions)
    assert get_template("cj2_critical").keys == tuple(CRITICAL_KEYS)


# ------------------------------------------------------------------- prompts


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_holds_question_and_responses(name):
    t = TEMPLATES[name]
    item = item_for(t)
    messages = t.render(item)
    assert [m["role"] for m in messages] in (["user"], ["system", "user"])
    assert all(set(m) == {"role", "content"} for m in messages)
    content = text_of(messages)
    assert item.question in messages[-1]["content"]
    if t.kind == "pairwise":
        a, b = content.index(item.response_a), content.index(item.response_b)
        assert a < b  # A is shown before B
    else:
        assert item.response in messages[-1]["content"]
    assert "$" not in content  # every placeholder was filled


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_style_note_is_inserted_only_when_asked(name):
    t = TEMPLATES[name]
    plain = text_of(t.render(item_for(t)))
    styled = text_of(t.render(item_for(t), style_note=STYLE_NOTE))
    assert STYLE_NOTE not in plain
    assert STYLE_NOTE + "." in styled  # the note gets its full stop
    assert len(styled) > len(plain)


def test_style_note_is_the_papers_sentence():
    assert STYLE_NOTE.startswith("Beyond this, users prefer a more detailed response")
    assert STYLE_NOTE.endswith("have completed the user's request")


def test_pointwise_prompt_shows_the_reference_when_there_is_one():
    t = get_template("correctness")
    assert "2500 m" in text_of(t.render(point(reference="2500 m")))
    assert "Reference" not in text_of(t.render(point()))


def test_earlier_turns_are_shown_before_the_question():
    item = pair(
        conversation=[{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
    )
    content = get_template("cj2_eval").render(item)[-1]["content"]
    assert content.index("Hi there") < content.index("Hello!") < content.index(item.question)


def test_template_refuses_an_item_of_the_other_kind():
    with pytest.raises(TypeError, match="pairwise"):
        get_template("cj2_short").render(point())
    with pytest.raises(TypeError, match="pointwise"):
        get_template("correctness").render(pair())


def test_judgerbenchv2_english_and_chinese_variants():
    t = get_template("judgerbenchv2")
    en = t.render(pair(language="en"))[-1]["content"]
    cn = t.render(pair(language="cn"))[-1]["content"]
    zh = t.render(pair(language="zh"))[-1]["content"]
    assert '"analysis"' in en and "[User's question starts]" in en and "分析" not in en
    assert '"分析"' in cn and "[用户问题开始]" in cn and "[模型A的回答开始]" in cn and '"analysis"' not in cn
    assert zh == cn
    assert criterion_for("arithmetic", "en") in en and criterion_for("arithmetic", "cn") in cn
    assert t.response_keys("cn") == ("分析",) and t.response_keys("en") == ("analysis",)
    response = t.render_response({"分析": "A 正确"}, "A", language="cn")
    assert json.loads(response) == {"分析": "A 正确", "winner": "A"}
    assert parse_verdict(response, "winner_json") == "A"


def test_judgerbenchv2_criterion_depends_on_domain_with_generic_fallback():
    sentences = {
        criterion_for(d)
        for d in (
            "Knowledge",
            "Longtext",
            "Reason & Analysis",
            "safe",
            "Hallucination",
            "chatQA",
            "IF",
            "LanTask",
            "Creation",
            "Code & AI",
        )
    }
    assert len(sentences) == 10
    assert criterion_for("Code_and_AI") == criterion_for("code & ai")
    assert criterion_for("something else") == criterion_for(None) == criterion_for("")
    assert criterion_for("something else") not in sentences
    t = get_template("judgerbenchv2")
    assert criterion_for("Creation") in t.render(pair(domain="Creation"))[-1]["content"]
    assert criterion_for("Knowledge", "cn") != criterion_for("Knowledge", "en")


# ----------------------------------------------------------------- responses


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_response_ends_in_the_verdict_for_every_label(name):
    t = TEMPLATES[name]
    for label in labels_for(t.format):
        response = t.render_response(sections_for(t), label)
        assert parse_verdict(response, t.format) == label
        found = locate_verdict(response, t.format)
        assert found is not None
        # Nothing after the verdict but the closing of its marker / object.
        assert len(response) - found[2] <= 4, response[found[2] :]


@pytest.mark.parametrize("name", [n for n, t in TEMPLATES.items() if t.keys])
def test_json_responses_are_valid_json_with_the_keys_in_order(name):
    t = TEMPLATES[name]
    sections = sections_for(t)
    for label in labels_for(t.format):
        response = t.render_response(sections, label)
        obj = json.loads(response)
        keys = list(obj)
        assert keys[:-1] == list(t.keys)
        assert [obj[k] for k in t.keys] == [sections[k] for k in t.keys]  # escaped, round-trips exactly
        assert len(keys) == len(t.keys) + 1  # the verdict entry is the last one


def test_cj2_eval_response_ends_with_a_choice_dict():
    response = get_template("cj2_eval").render_response("Model A is right.", "B")
    last = response.strip().splitlines()[-1]
    assert json.loads(last) == {"Choice": "Model B"}


def test_short_and_critical_responses_have_exactly_their_keys():
    short = json.loads(get_template("cj2_short").render_response({"Check A": "ok", "Check B": "no"}, "A"))
    assert short == {"Check A": "ok", "Check B": "no", "Choice": "Model A"}
    crit = json.loads(get_template("cj2_critical").render_response({k: k for k in CRITICAL_KEYS}, "B"))
    assert list(crit) == CRITICAL_KEYS + ["Choice"] and crit["Choice"] == "Model B"


def test_render_response_rejects_bad_sections_and_labels():
    t = get_template("cj2_short")
    with pytest.raises(ValueError, match="Check B"):
        t.render_response({"Check A": "x"}, "A")
    with pytest.raises(ValueError, match="unexpected"):
        t.render_response({"Check A": "x", "Check B": "y", "Extra": "z"}, "A")
    with pytest.raises(ValueError, match="mapping"):
        t.render_response("just text", "A")
    with pytest.raises(ValueError):
        t.render_response({"Check A": "x", "Check B": "y"}, "tie")  # cj2_choice has no tie
    with pytest.raises(ValueError):
        get_template("pointwise_score").render_response("fine", "11")


def test_single_key_template_takes_a_plain_string():
    response = get_template("correctness").render_response("The value is right.", "yes")
    assert json.loads(response) == {"Analysis": "The value is right.", "Correct": "yes"}


def test_render_response_refuses_an_analysis_that_breaks_the_final_verdict():
    # "[[A]] or" right before the closing [[B]]: side by side the final verdict is ambiguous.
    with pytest.raises(ValueError, match="interferes"):
        get_template("mtbench_pair").render_response("I hesitated between [[A]] or", "B")
    # An earlier, separate mention is fine: the last marker counts.
    response = get_template("mtbench_pair").render_response("At first [[A]] looked better. Then not.", "B")
    assert parse_verdict(response, "brackets") == "B"


def test_prose_mapping_sections_are_joined_as_lines():
    response = get_template("arena_hard").render_response({"Mine": "59", "Compare": "A right"}, "A")
    assert response.startswith("Mine: 59\nCompare: A right\n\n")
    assert response.endswith("My final verdict is [[A>B]].")


def test_no_verdict_marker_is_spelled_in_the_templates_module():
    # Exactly one module (cj2.verdict) knows what a verdict looks like.
    source = Path(templates_module.__file__).read_text(encoding="utf-8")
    for marker in (
        '"Choice": "Model',
        "[[A]]",
        "[[B]]",
        "[[C]]",
        "[[A>B]]",
        "[[A=B]]",
        '"winner": "',
        "Rating: [[",
        '"Correct": "',
    ):
        assert marker not in source, marker


# ---------------------------------------------------------------- the draw


def test_sample_template_is_a_pure_function_of_seed_and_id():
    names = ["cj2_critical", "mtbench_pair", "arena_hard", "judgerbenchv2", "cj2_eval"]
    ids = [f"item-{i}" for i in range(300)]
    first = [sample_template(7, i, names).name for i in ids]
    backwards = [sample_template(7, i, names).name for i in reversed(ids)][::-1]
    assert first == backwards  # independent of call order
    assert first == [sample_template(7, i, list(names)).name for i in ids]
    other_seed = [sample_template(8, i, names).name for i in ids]
    assert first != other_seed
    counts = Counter(first)
    assert set(counts) == set(names)  # covers every name
    assert min(counts.values()) >= 30  # roughly uniform: expected 60 each


def test_sample_template_single_name_and_errors():
    assert sample_template(0, "x", ["cj2_short"]).name == "cj2_short"
    with pytest.raises(ValueError):
        sample_template(0, "x", [])
    with pytest.raises(KeyError, match="unknown"):
        sample_template(0, "x", ["cj2_short", "unknown"])
    with pytest.raises(TypeError):
        sample_template("0", "x", ["cj2_short"])


def test_sample_template_with_a_generator_consumes_it():
    names = ["cj2_short", "cj2_eval"]
    first = sample_template(random.Random(3), "x", names).name
    rng = random.Random(3)
    draws = [sample_template(rng, "x", names).name for _ in range(50)]
    assert draws[0] == first  # the same generator state gives the same draw
    assert set(draws) == set(names)  # and the generator moves on
