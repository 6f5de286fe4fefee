"""The simulated teacher: judgments of built-in items with configured rates of wrong verdicts and
flawed checks."""

from __future__ import annotations

import pytest

from cj2.data.tasks import generate_items, pointwise_views
from cj2.data.templates import get_template
from cj2.generation import SamplingParams, build_sampler, sample_seed
from cj2.generation.simulated import SimulatedTeacher
from cj2.verdict import parse_verdict

ITEMS = generate_items(100, seed=0)
PROMPTS = [get_template("cj2_critical").render(item) for item in ITEMS]
LONG = SamplingParams(max_new_tokens=4096, seed=0)


def _draw(teacher, n=16, items=ITEMS, prompts=PROMPTS, params=LONG):
    return teacher.generate(prompts, n, params, items=items)


def test_rates_match_the_configuration():
    teacher = SimulatedTeacher(p_correct=0.7, p_flawed_given_correct=0.2, p_sound_given_wrong=0.25)
    samples = [(item, s) for item, row in zip(ITEMS, _draw(teacher)) for s in row]
    assert len(samples) == 1600
    right = [s for item, s in samples if parse_verdict(s.text, "cj2_choice") == item.label]
    wrong = [s for item, s in samples if parse_verdict(s.text, "cj2_choice") not in (item.label, None)]
    assert len(right) + len(wrong) == 1600  # every judgment parses
    # Binomial standard errors: about 0.011, 0.011 and 0.019; the bounds are about 3.5 of them.
    assert abs(len(right) / 1600 - 0.7) < 0.04
    assert abs(sum(s.meta["flawed"] for s in right) / len(right) - 0.2) < 0.04
    assert abs(sum(not s.meta["flawed"] for s in wrong) / len(wrong) - 0.25) < 0.07
    for item, s in samples:
        assert s.meta["verdict"] == parse_verdict(s.text, "cj2_choice")
        assert s.meta["verdict_correct"] == (s.meta["verdict"] == item.label)
        assert s.finish_reason == "stop"


@pytest.mark.parametrize(
    ("kwargs", "right", "flawed"),
    [
        ({"p_correct": 1.0, "p_flawed_given_correct": 0.0}, True, False),
        ({"p_correct": 1.0, "p_flawed_given_correct": 1.0}, True, True),
        ({"p_correct": 0.0, "p_sound_given_wrong": 0.0}, False, True),
        ({"p_correct": 0.0, "p_sound_given_wrong": 1.0}, False, False),
    ],
)
def test_extreme_rates(kwargs, right, flawed):
    out = _draw(SimulatedTeacher(**kwargs), n=2, items=ITEMS[:10], prompts=PROMPTS[:10])
    for item, row in zip(ITEMS, out):
        for s in row:
            assert (parse_verdict(s.text, "cj2_choice") == item.label) is right
            assert s.meta["flawed"] is flawed


def test_judgments_vary_and_are_a_pure_function_of_seed_key_and_index():
    teacher = SimulatedTeacher(p_correct=1.0, p_flawed_given_correct=0.0)
    batch = _draw(teacher, n=4, items=ITEMS[:6], prompts=PROMPTS[:6])
    assert len({s.text for s in batch[0]}) > 1  # same verdict, different wording
    # One prompt at a time (a resumed run) gives the same samples, with the item ids as keys.
    for i in (5, 2):
        alone = teacher.generate([PROMPTS[i]], 4, LONG, items=[ITEMS[i]])[0]
        assert [s.text for s in alone] == [s.text for s in batch[i]]
        assert [s.seed for s in alone] == [sample_seed(0, ITEMS[i].id, j) for j in range(4)]
    other_seed = teacher.generate(
        PROMPTS[:1], 4, SamplingParams(max_new_tokens=4096, seed=1), items=ITEMS[:1]
    )
    assert [s.text for s in other_seed[0]] != [s.text for s in batch[0]]


def test_stops_and_truncation_apply():
    teacher = SimulatedTeacher()
    cut = teacher.generate(
        PROMPTS[:3], 2, SamplingParams(max_new_tokens=4096, stop_on_verdict="cj2_choice"), items=ITEMS[:3]
    )
    full = _draw(teacher, n=2, items=ITEMS[:3], prompts=PROMPTS[:3])
    for cut_row, full_row in zip(cut, full):
        for c, f in zip(cut_row, full_row):
            assert f.text.endswith('"\n}') and c.text == f.text[:-2]  # the closing brace is cut
            assert c.finish_reason == "verdict" and c.meta == f.meta
    short = teacher.generate(PROMPTS[:1], 1, SamplingParams(max_new_tokens=5), items=ITEMS[:1])[0][0]
    assert (short.finish_reason, short.n_tokens, parse_verdict(short.text, "cj2_choice")) == (
        "length",
        5,
        None,
    )


def test_templates_per_prompt_and_pointwise_items():
    views = pointwise_views(ITEMS[0]) + pointwise_views(ITEMS[1])
    templates = ["correctness", "pointwise_score", "correctness", "pointwise_score"]
    teacher = SimulatedTeacher(p_correct=1.0, p_flawed_given_correct=0.0)
    out = teacher.generate(
        [[{"role": "user", "content": "judge"}]] * 4, 2, LONG, items=views, templates=templates
    )
    for view, name, row in zip(views, templates, out):
        fmt = get_template(name).format
        for s in row:
            verdict = parse_verdict(s.text, fmt)
            if fmt == "correctness":
                assert verdict == ("yes" if view.correct else "no")
            else:
                assert (int(verdict) >= 6) == view.correct
    wrong = SimulatedTeacher(p_correct=0.0).generate(
        [[{"role": "user", "content": "judge"}]] * 4, 1, LONG, items=views, templates=templates
    )
    for view, name, row in zip(views, templates, wrong):
        verdict = parse_verdict(row[0].text, get_template(name).format)
        says_correct = verdict == "yes" if name == "correctness" else int(verdict) >= 6
        assert says_correct != view.correct


def test_configuration_and_call_errors():
    with pytest.raises(ValueError, match="p_correct=1.5"):
        SimulatedTeacher(p_correct=1.5)
    with pytest.raises(KeyError, match="unknown judge template 'nope'"):
        SimulatedTeacher(template="nope")
    teacher = build_sampler({"backend": "simulated", "p_correct": 0.5})
    assert isinstance(teacher, SimulatedTeacher) and teacher.p_correct == 0.5 and teacher.needs_items
    with pytest.raises(ValueError, match="needs the item of each prompt"):
        teacher.generate(PROMPTS[:1], 1, LONG)
    with pytest.raises(ValueError, match="items has 2 entries for 1 prompts"):
        teacher.generate(PROMPTS[:1], 1, LONG, items=ITEMS[:2])
