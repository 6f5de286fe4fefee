"""The collator: labels, verdict index, candidates, truncation and skips, with exact tensors."""

from __future__ import annotations

import pytest
import torch

from cj2.data.collator import IGNORE_INDEX, JudgeCollator, encode_preference, encode_record
from cj2.data.io import DataError, SkipRecord
from cj2.data.schema import PreferenceRecord, TrainRecord
from cj2.verdict import render_verdict


def rec(response, verdict="B", fmt="cj2_choice", content="Which answer is right?", rid="r1"):
    return TrainRecord(
        id=rid,
        messages=[{"role": "user", "content": content}],
        response=response,
        verdict=verdict,
        format=fmt,
        source="test",
    )


def test_labels_mask_prompt_and_verdict_index(tokenizer):
    r = rec('A miscounts. {"Choice": "Model B"}')
    s = encode_record(r, tokenizer, max_length=256, need_verdict_tokens=True)
    prompt = tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + r.response + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert s.input_ids == full_ids
    assert s.labels == [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    # the verdict token is " B" (leading space), right after ": "Model"
    assert tokenizer.convert_ids_to_tokens([s.input_ids[s.verdict_index]]) == ["ĠB"]
    assert s.verdict_target == tokenizer.convert_tokens_to_ids("ĠB")
    assert s.verdict_candidates == tokenizer.convert_tokens_to_ids(["ĠA", "ĠB"])
    assert tokenizer.decode(s.input_ids[s.verdict_index - 3 : s.verdict_index]).endswith('"Model')


@pytest.mark.parametrize(
    "fmt,label,cands",
    [
        ("brackets", "tie", ["A", "B", "C"]),
        ("winner_json", "A", ["A", "B"]),
        ("correctness", "no", ["yes", "no"]),
    ],
)
def test_candidates_per_format(tokenizer, fmt, label, cands):
    r = rec("Checked both. " + render_verdict(label, fmt), verdict=label, fmt=fmt)
    s = encode_record(r, tokenizer, max_length=256, need_verdict_tokens=True)
    assert tokenizer.convert_ids_to_tokens(s.verdict_candidates) == cands
    assert s.verdict_target in s.verdict_candidates


def test_score_and_arena_refuse_verdict_objective(tokenizer):
    r = rec("Fine. " + render_verdict("10", "score"), verdict="10", fmt="score")
    with pytest.raises(ValueError, match="share a first token"):
        encode_record(r, tokenizer, max_length=256, need_verdict_tokens=True)
    s = encode_record(r, tokenizer, max_length=256)  # CE-only training still works
    assert s.verdict_index > 0


def test_last_marker_counts_and_mismatch_is_skipped(tokenizer):
    r = rec('The prompt asks for "Choice": "Model A" style. {"Choice": "Model B"}', verdict="B")
    s = encode_record(r, tokenizer, max_length=256)
    text = tokenizer.decode(s.input_ids[: s.verdict_index + 1])
    assert text.endswith('{"Choice": "Model B')
    with pytest.raises(SkipRecord) as e:
        encode_record(rec('{"Choice": "Model A"}', verdict="B"), tokenizer, max_length=256)
    assert e.value.reason == "verdict_mismatch"
    with pytest.raises(SkipRecord) as e:
        encode_record(rec("I cannot decide."), tokenizer, max_length=256)
    assert e.value.reason == "verdict_not_found"


def test_format_none_trains_ce_only(tokenizer):
    r = rec("Paris is the capital.", verdict=None, fmt="none")
    s = encode_record(r, tokenizer, max_length=256)
    assert s.verdict_index == -1 and s.verdict_candidates == []
    assert s.n_response_tokens > 0


def test_overlong_truncates_prompt_never_response(tokenizer):
    long_q = "Question: " + " ".join(f"word{i}" for i in range(400)) + " End of question."
    r = rec('Check. {"Choice": "Model A"}', verdict="A", content=long_q)
    s = encode_record(r, tokenizer, max_length=128)
    assert len(s) <= 128 and s.truncated_prompt_tokens > 0
    text = tokenizer.decode(s.input_ids)
    assert "truncated" in text and text.rstrip().endswith('{"Choice": "Model A"}<|im_end|>')
    assert "Question: word0" in text and "End of question." in text  # head and tail kept
    with pytest.raises(SkipRecord) as e:
        encode_record(r, tokenizer, max_length=128, overlong="drop")
    assert e.value.reason == "overlong"
    with pytest.raises(DataError, match="max_length"):
        encode_record(r, tokenizer, max_length=128, overlong="error")
    huge = rec("word " * 300 + '{"Choice": "Model A"}', verdict="A")
    with pytest.raises(SkipRecord) as e:  # the response alone does not fit: dropped, never cut
        encode_record(huge, tokenizer, max_length=128)
    assert e.value.reason == "overlong"


def test_collator_exact_tensors(tokenizer):
    a = encode_record(rec('{"Choice": "Model A"}', verdict="A", rid="a"), tokenizer, max_length=256)
    b = encode_record(
        rec("no verdict here", verdict=None, fmt="none", content="Hi", rid="b"), tokenizer, max_length=256
    )
    batch = JudgeCollator(pad_token_id=7)([a, b])
    T = max(len(a), len(b))
    assert batch["input_ids"].shape == (2, T)
    assert batch["input_ids"][1, len(b) :].eq(7).all() and batch["labels"][1, len(b) :].eq(IGNORE_INDEX).all()
    assert batch["attention_mask"].sum(1).tolist() == [len(a), len(b)]
    assert batch["labels"][0].tolist() == a.labels + [IGNORE_INDEX] * (T - len(a))
    assert batch["verdict_index"].tolist() == [a.verdict_index, -1]
    assert batch["verdict_target"].tolist() == [a.verdict_target, -1]
    assert batch["verdict_candidates"].tolist() == [a.verdict_candidates, [-1, -1]]
    assert batch["ids"] == ["a", "b"]
    padded = JudgeCollator(pad_token_id=7, pad_to_multiple_of=64)([a])
    assert padded["input_ids"].shape[1] % 64 == 0
    assert torch.equal(padded["input_ids"][0, : len(a)], torch.tensor(a.input_ids))


def test_preference_pair_shares_prompt(tokenizer):
    p = PreferenceRecord(
        id="p",
        messages=[{"role": "user", "content": "Q"}],
        chosen='ok {"Choice": "Model A"}',
        rejected='bad {"Choice": "Model B"}',
        format="cj2_choice",
    )
    c, r = encode_preference(p, tokenizer, max_length=256)
    n_prompt = c.labels.index(next(t for t in c.labels if t != IGNORE_INDEX))
    assert c.input_ids[:n_prompt] == r.input_ids[:n_prompt] and c.id == "p:chosen"


def test_template_that_rewrites_response_is_a_clear_error(tokenizer):
    class Stripping:
        def __init__(self, tok):
            self.tok = tok

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            msgs = [dict(m, content=m["content"].strip()) for m in messages]
            return self.tok.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=add_generation_prompt
            )

    r = rec('  padded {"Choice": "Model A"}', verdict="A")
    with pytest.raises(DataError, match="verbatim"):
        encode_record(r, Stripping(tokenizer), max_length=256)
