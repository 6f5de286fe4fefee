"""Verdict-logit scoring (cj2.evaluation.logits) and the training-validation hook (verdict_logit_metrics)."""

from __future__ import annotations

import math

import pytest
import torch

from cj2.data.schema import PairwiseItem
from cj2.data.templates import get_template
from cj2.evaluation import build_embedded, verdict_logit_metrics
from cj2.evaluation.logits import (
    VerdictLogitScorer,
    VerdictSlotError,
    argmax_label,
    prompt_text,
    responses_by_label,
    slot_logits,
    verdict_slot,
)
from cj2.evaluation.placement import balanced_placement, to_original

ITEM = PairwiseItem(id="x", question="What is 6 * 7?", response_a="42", response_b="48", label="A")


@pytest.mark.parametrize("name", ["cj2_short", "cj2_eval", "judgerbenchv2", "mtbench_pair"])
def test_forced_slot_ends_right_before_the_label(tokenizer, name):
    template = get_template(name)
    responses = responses_by_label(template)
    slot = verdict_slot(tokenizer, prompt_text(tokenizer, template.render(ITEM)), responses)
    assert slot.labels == tuple(responses) and len(set(slot.candidate_ids)) == len(slot.labels)
    # every response continues the prefix with its own candidate token
    for label, cand in zip(slot.labels, slot.candidate_ids):
        full = tokenizer(
            prompt_text(tokenizer, template.render(ITEM)) + responses[label], add_special_tokens=False
        )
        ids = full["input_ids"]
        assert ids[: len(slot.prefix_ids)] == slot.prefix_ids and ids[len(slot.prefix_ids)] == cand
    tail = tokenizer.decode(slot.prefix_ids[-4:])
    assert {"cj2_short": "Model", "cj2_eval": "Model", "judgerbenchv2": '"', "mtbench_pair": "[["}[
        name
    ] in tail


def test_responses_after_a_critique():
    template = get_template("cj2_short")
    with_verdict = '{"Check A": "right", "Check B": "wrong", "Choice": "Model B"}'
    got = responses_by_label(template, critique=with_verdict)
    assert got == {"A": with_verdict.replace("Model B", "Model A"), "B": with_verdict}
    got = responses_by_label(template, critique="A looks right.  ")
    assert got == {"A": 'A looks right.\n"Choice": "Model A"', "B": 'A looks right.\n"Choice": "Model B"'}
    with pytest.raises(ValueError, match="single tokens"):
        responses_by_label(get_template("arena_hard"))
    forced = responses_by_label(template, analysis="checked")
    assert forced["B"] == '{\n  "Check A": "checked",\n  "Check B": "checked",\n  "Choice": "Model B"\n}'
    assert responses_by_label(get_template("cj2_eval"))["A"] == '{"Choice": "Model A"}'  # prose: verdict only


def test_slot_errors():
    class CharTokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    with pytest.raises(VerdictSlotError, match="no prefix"):
        verdict_slot(CharTokenizer(), "", {"A": "A", "B": "B"})
    with pytest.raises(VerdictSlotError, match="ends before"):
        verdict_slot(CharTokenizer(), "x", {"A": "x", "B": "xy"})


def test_batched_left_padded_logits_equal_single_forwards(tokenizer, tiny_model):
    template = get_template("cj2_short")
    items = build_embedded(n_queries=1, scenarios=["arithmetic", "dates"]).items[:6]
    slots = [
        verdict_slot(tokenizer, prompt_text(tokenizer, template.render(it)), responses_by_label(template))
        for it in items
    ]
    assert len({len(s.prefix_ids) for s in slots}) > 1  # padding really happens
    batched = slot_logits(tiny_model, slots, pad_token_id=tokenizer.pad_token_id, batch_size=6)
    for slot, got in zip(slots, batched):
        with torch.no_grad():
            logits = tiny_model(input_ids=torch.tensor([slot.prefix_ids])).logits[0, -1]
        assert got == pytest.approx(logits[slot.candidate_ids].tolist(), abs=1e-4)
    assert tiny_model.training  # restored


def test_argmax_label_and_probabilities(tokenizer, tiny_model):
    assert argmax_label({"A": 0.3, "B": 0.7}) == "B" and argmax_label({"A": 0.5, "B": 0.5}) == "A"
    assert argmax_label(None) is None
    scorer = VerdictLogitScorer(tiny_model, tokenizer, get_template("cj2_short"), batch_size=2)
    probs = scorer.score_items([ITEM, ITEM.swapped()])
    assert all(p is not None and math.isclose(sum(p.values()), 1.0) for p in probs)
    tight = VerdictLogitScorer(tiny_model, tokenizer, get_template("cj2_short"), max_length=20)
    assert tight.score_items([ITEM]) == [None] and tight.skipped == {"overlong": 1}


class AlwaysA(torch.nn.Module):
    """A 'model' whose next-token logits favour one token id everywhere."""

    def __init__(self, favoured: int, vocab: int):
        super().__init__()
        self.favoured, self.vocab = favoured, vocab
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"max_position_embeddings": 4096})()

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
        length = logits_to_keep or input_ids.shape[1]
        logits = torch.zeros(input_ids.shape[0], length, self.vocab)
        logits[..., self.favoured] = 3.0
        return type("Out", (), {"logits": logits})()


def test_verdict_logit_metrics_of_a_judge_that_always_says_A(tokenizer):
    """Always "A" as shown: right exactly on the items whose shown gold is A; P(A) = e^3 / (e^3 + 1)."""
    template = get_template("cj2_short")
    bench = build_embedded(n_queries=2, scenarios=["arithmetic", "strings"])
    slot = verdict_slot(
        tokenizer, prompt_text(tokenizer, template.render(ITEM)), responses_by_label(template)
    )
    model = AlwaysA(slot.candidate_ids[0], len(tokenizer))
    metrics = verdict_logit_metrics(model, tokenizer, bench, "cj2_short", prefix="val", both_orders=True)
    placement = balanced_placement([it.id for it in bench.items], 0)
    expected = sum(to_original("A", placement[it.id]) == it.label for it in bench.items) / len(bench.items)
    assert metrics["val/verdict_logit_acc"] == pytest.approx(expected)
    assert metrics["val/verdict_logit_n"] == len(bench.items)
    assert (
        metrics["val/verdict_logit_swap_consistency"] == 0.0
    )  # the same position both ways: never consistent
    assert metrics["val/verdict_logit_position_bias"] == 1.0
    p = math.exp(3) / (math.exp(3) + 1)
    assert metrics["val/verdict_logit_p_gold"] == pytest.approx(expected * p + (1 - expected) * (1 - p))
    # its judge wins: every candidate wins exactly when it was shown in position A
    assert 0 <= metrics["val/jbv2_final"] <= 100 and metrics["val/jbv2_accuracy"] == pytest.approx(
        100 * expected
    )
    assert set(metrics) >= {
        "val/jbv2_rank_diff",
        "val/jbv2_score_diff",
        "val/jbv2_normalized_diff",
        "val/jbv2_kendall_tau",
        "val/verdict_logit_ece",
        "val/verdict_logit_brier",
    }


def test_verdict_logit_metrics_on_the_tiny_model(tokenizer, tiny_model):
    bench = build_embedded(n_queries=1, scenarios=["arithmetic"])
    out = verdict_logit_metrics(tiny_model, tokenizer, bench.items, get_template("cj2_short"), prefix="v")
    assert 0.0 <= out["v/verdict_logit_acc"] <= 1.0 and all(isinstance(v, float) for v in out.values())
    assert tiny_model.training
    plain = [
        PairwiseItem(id=str(i), question="q", response_a="a", response_b="b", label="A") for i in range(2)
    ]
    out = verdict_logit_metrics(tiny_model, tokenizer, plain, "cj2_short")
    assert "val/jbv2_final" not in out and out["val/verdict_logit_n"] == 2.0
