"""The Judge API: cj2.Judge.from_pretrained(...).judge(question, a, b)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import cj2
from cj2.data.templates import get_template
from cj2.generation import ScriptedSampler
from cj2.judge import Judge, resolve_template, split_critique


def test_import_cj2_stays_light():
    code = "import sys, cj2; assert 'torch' not in sys.modules; cj2.Judge; print('ok')"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "ok\n"
    )


def test_templates_follow_the_format():
    assert resolve_template().name == "cj2_short"
    assert resolve_template("winner_json").name == "judgerbenchv2"
    assert resolve_template(None, "cj2_eval").format == "cj2_choice"
    with pytest.raises(ValueError, match="not 'brackets'"):
        resolve_template("brackets", "cj2_eval")
    with pytest.raises(ValueError, match="pointwise"):
        resolve_template(None, "correctness")


def test_split_critique():
    text = '{\n  "Check A": "17 * 3 = 51, right",\n  "Choice": "Model A"\n}'
    assert split_critique(text, "cj2_choice") == ("A", '{\n  "Check A": "17 * 3 = 51, right",')
    assert split_critique("no verdict here", "cj2_choice") == (None, "no verdict here")


def test_judge_with_scripted_outputs_and_verdict_probabilities(tokenizer, tiny_model):
    outputs = {
        0: ['{"Check A": "51 is right", "Check B": "41 is wrong", "Choice": "Model A"}'],
        1: ["I am not sure."],
    }
    judge = Judge(get_template("cj2_short"), ScriptedSampler(outputs), model=tiny_model, tokenizer=tokenizer)
    assert judge.supports_logits and judge.format == "cj2_choice"
    first, second = judge.judge_batch(
        [
            ("What is 17 * 3?", "51", "41"),
            {"question": "What is 2 + 2?", "response_a": "4", "response_b": "5"},
        ]
    )
    assert first.verdict == "A" and first.critique.startswith('{"Check A": "51 is right"')
    assert math.isclose(sum(first.probs.values()), 1.0) and first.prob == first.probs["A"]
    assert second.verdict is None and second.prob is None and second.critique == "I am not sure."
    assert second.probs is not None  # P(label) after the critique closed by the canonical marker
    probs = judge.verdict_probs_for([cj2.judge._as_item(("q", "a", "b"), 0)])
    assert math.isclose(sum(probs[0].values()), 1.0)


def test_judge_without_a_local_model_has_no_probabilities():
    judge = Judge.from_sampler(ScriptedSampler(lambda m, k, j, s: "[[B]]"), format="brackets")
    result = judge.judge("q", "a", "b")
    assert (result.verdict, result.prob, result.probs) == ("B", None, None)
    assert not judge.supports_logits
    with pytest.raises(ValueError, match="no local model"):
        judge.verdict_probs_for([])


def test_from_pretrained_tiny_end_to_end():
    judge = cj2.Judge.from_pretrained("tiny", max_new_tokens=4, device="cpu")
    result = judge.judge("What is 2 + 2?", "4", "5")
    assert isinstance(result, cj2.JudgeResult)
    assert result.n_tokens is not None and result.n_tokens <= 4
    assert result.verdict in (None, "A", "B")


def test_an_exported_judge_is_prompted_with_the_template_it_was_trained_on(tokenizer, tiny_model, tmp_path):
    from cj2.evaluation.backends import trained_template
    from cj2.models.export import JUDGE_CARD, export_hf, read_judge_card

    out = export_hf(
        tiny_model,
        tokenizer,
        tmp_path / "judge",
        judge_card={"template": "cj2_direct", "format": "cj2_choice"},
    )
    assert read_judge_card(out) == {"template": "cj2_direct", "format": "cj2_choice"}
    judge = Judge.from_pretrained(str(out), max_new_tokens=2, device="cpu")
    assert judge.template.name == "cj2_direct"
    # an explicit template or format still wins over the card
    assert Judge.from_pretrained(str(out), template="cj2_short", device="cpu").template.name == "cj2_short"
    assert Judge.from_pretrained(str(out), format="cj2_choice", device="cpu").template.name == "cj2_short"
    assert trained_template({"name_or_path": str(out)}) == "cj2_direct"
    assert trained_template({"name_or_path": "smollm2_135m"}) is None
    (out / JUDGE_CARD).write_text("[1, 2]")
    with pytest.raises(ValueError, match="judge card"):
        read_judge_card(out)
