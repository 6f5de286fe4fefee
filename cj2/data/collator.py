"""Tokenising judge records and batching them.

:func:`encode_record` turns one :class:`~cj2.data.schema.TrainRecord` into token ids with

* ``labels``: the token id on every trained response token, ``-100`` on the prompt (and later on padding);
* ``verdict_index``: k, the index of the verdict token in ``input_ids`` (arXiv 2507.09104, Eq. 3/Table 1:
  the answer position k_ij; the logits predicting it sit at k-1), ``-1`` when the record has no verdict;
* ``verdict_target``: the gold verdict token id;
* ``verdict_candidates``: the ids each label of the format tokenises to *in this context* (the label text is
  substituted into the response and re-tokenised, so a leading-space or merged token is handled).

The verdict is found with :func:`cj2.verdict.locate_verdict` (the project's only parser) and mapped to a
token through the tokenizer's offset mapping. :class:`JudgeCollator` pads a list of encoded samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cj2.data.io import DataError, SkipRecord
from cj2.data.schema import PreferenceRecord, TrainRecord
from cj2.verdict import label_surface, labels_for, locate_verdict, single_token_labels

IGNORE_INDEX = -100
OVERLONG_POLICIES = ("truncate_prompt", "drop", "error")
TRUNCATION_MARK = "\n[... truncated ...]\n"


@dataclass
class EncodedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    verdict_index: int = -1
    verdict_target: int = -1
    verdict_candidates: list[int] = field(default_factory=list)
    weight: float = 1.0
    truncated_prompt_tokens: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_response_tokens(self) -> int:
        """Tokens trained by CE (labels shift by one: position 0 is never predicted)."""
        return sum(1 for t in self.labels[1:] if t != IGNORE_INDEX)


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _render_pair(tokenizer, messages, response: str, record_id: str) -> tuple[str, str]:
    """(prompt text, full text) where full = prompt + response + the template's end-of-turn."""
    prompt = render_prompt(tokenizer, messages)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": response}], tokenize=False
    )
    if not full.startswith(prompt) or not full[len(prompt) :].startswith(response):
        raise DataError(
            f"record {record_id!r}: the chat template does not render the prompt followed by the verbatim "
            "response (it rewrites or strips the assistant turn); "
            "use a template that keeps the response as is",
            field="messages",
        )
    return prompt, full


def _encode_text(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _token_at(offsets: Sequence[tuple[int, int]], char_pos: int) -> int:
    for i, (s, e) in enumerate(offsets):
        if s <= char_pos < e:
            return i
    return -1


def _truncate_messages(
    tokenizer, messages: list[dict[str, str]], n_tokens: int
) -> list[dict[str, str]] | None:
    """Cut ``n_tokens`` from the middle of the longest user message (the question/responses block).

    The head and the tail of the message are kept, so the instructions at the top and the requested output
    format at the bottom of a judge prompt survive; the cut is marked with ``TRUNCATION_MARK``.
    """
    user_idx = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not user_idx:
        return None
    i = max(user_idx, key=lambda j: len(messages[j]["content"]))
    ids = tokenizer(messages[i]["content"], add_special_tokens=False)["input_ids"]
    cut = n_tokens + len(tokenizer(TRUNCATION_MARK, add_special_tokens=False)["input_ids"]) + 2
    if len(ids) - cut < 16:
        return None
    keep_head = (len(ids) - cut) // 2
    keep_tail = len(ids) - cut - keep_head
    content = (
        tokenizer.decode(ids[:keep_head]) + TRUNCATION_MARK + tokenizer.decode(ids[len(ids) - keep_tail :])
    )
    out = [dict(m) for m in messages]
    out[i]["content"] = content
    return out


def encode_record(
    record: TrainRecord,
    tokenizer,
    *,
    max_length: int,
    overlong: str = "truncate_prompt",
    need_verdict_tokens: bool = False,
) -> EncodedSample:
    """Tokenise a training record; raises :class:`SkipRecord` for records that are skipped and counted.

    Skip reasons: ``verdict_not_found`` (no parseable verdict in the response), ``verdict_mismatch`` (the
    response's verdict differs from the gold ``verdict``), ``overlong`` (longer than ``max_length`` even after
    prompt truncation, or ``overlong="drop"``), ``verdict_not_single_token`` (only when
    ``need_verdict_tokens``: the format's labels do not tokenise to distinct single tokens here).

    Over-long records (``overlong="truncate_prompt"``, the default) lose tokens from the middle of the longest
    user message only: the response, and so the verdict, is never cut.
    """
    if overlong not in OVERLONG_POLICIES:
        raise ValueError(f"overlong={overlong!r}; expected one of {OVERLONG_POLICIES}")
    if need_verdict_tokens and record.format != "none" and not single_token_labels(record.format):
        raise ValueError(
            f"record {record.id!r}: format {record.format!r} has labels that share a first token, so a "
            "verdict objective (margin/dpo/temperature) cannot apply; train it with loss=sft (CE only)"
        )
    messages = record.messages
    truncated = 0
    for _attempt in range(4):
        prompt, full = _render_pair(tokenizer, messages, record.response, record.id)
        prompt_ids, _ = _encode_text(tokenizer, prompt)
        ids, offsets = _encode_text(tokenizer, full)
        if ids[: len(prompt_ids)] != prompt_ids:
            raise DataError(
                f"record {record.id!r}: the tokenised prompt is not a token prefix of the tokenised "
                "prompt+response (the tokenizer merges across the boundary)",
                field="messages",
            )
        excess = len(ids) - max_length
        if excess <= 0:
            break
        if overlong == "error":
            raise DataError(
                f"record {record.id!r}: {len(ids)} tokens > max_length={max_length}", field="messages"
            )
        new_messages = None if overlong == "drop" else _truncate_messages(tokenizer, messages, excess)
        if new_messages is None:
            raise SkipRecord("overlong", record.id, f"{len(ids)} tokens > max_length={max_length}")
        truncated += excess
        messages = new_messages
    else:
        raise SkipRecord("overlong", record.id, "prompt truncation did not converge")

    labels = [IGNORE_INDEX] * len(prompt_ids) + ids[len(prompt_ids) :]
    sample = EncodedSample(
        id=record.id, input_ids=ids, labels=labels, weight=record.weight, truncated_prompt_tokens=truncated
    )
    if record.format == "none":
        return sample

    found = locate_verdict(record.response, record.format)
    if found is None:
        raise SkipRecord("verdict_not_found", record.id, f"no {record.format} verdict in the response")
    label, start, end = found
    if label != record.verdict:
        raise SkipRecord(
            "verdict_mismatch", record.id, f"response says {label!r}, gold is {record.verdict!r}"
        )
    char_start, char_end = len(prompt) + start, len(prompt) + end
    k = _token_at(offsets, char_start)
    if k < len(prompt_ids):
        raise SkipRecord("verdict_not_found", record.id, "the verdict does not map to a response token")
    candidates: list[int] = []
    clean = True
    for cand in labels_for(record.format):
        if cand == label:
            candidates.append(ids[k])
            continue
        alt = full[:char_start] + label_surface(cand, record.format) + full[char_end:]
        alt_ids, _ = _encode_text(tokenizer, alt)
        if alt_ids[:k] != ids[:k] or len(alt_ids) <= k:
            clean = False
            continue
        candidates.append(alt_ids[k])
    if need_verdict_tokens and (not clean or len(set(candidates)) != len(candidates)):
        raise SkipRecord(
            "verdict_not_single_token",
            record.id,
            f"{record.format} labels do not tokenise to distinct single tokens in this context",
        )
    sample.verdict_index = k
    sample.verdict_target = ids[k]
    sample.verdict_candidates = candidates
    return sample


def encode_preference(
    record: PreferenceRecord, tokenizer, *, max_length: int, overlong: str = "truncate_prompt"
) -> tuple[EncodedSample, EncodedSample]:
    """Encode a preference record as (chosen, rejected) samples sharing the prompt (sequence DPO)."""
    out = []
    for name, text in (("chosen", record.chosen), ("rejected", record.rejected)):
        rec = TrainRecord(
            id=f"{record.id}:{name}",
            messages=record.messages,
            response=text,
            verdict=None,
            format="none",
            source=record.source,
        )
        out.append(encode_record(rec, tokenizer, max_length=max_length, overlong=overlong))
    return out[0], out[1]


class JudgeCollator:
    """Right-pads encoded samples into the batch dict every objective reads.

    Keys: ``input_ids``, ``attention_mask``, ``labels`` (``-100`` on prompt and padding), ``verdict_index``,
    ``verdict_target``, ``verdict_candidates`` (``-1`` padded), ``weights``, ``ids``.
    With ``pad_to_multiple_of``
    the length is rounded up (tensor-core friendly on GPU).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, samples: Sequence[EncodedSample]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        T = max(len(s) for s in samples)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            T = (T + m - 1) // m * m
        B = len(samples)
        C = max([len(s.verdict_candidates) for s in samples] + [1])
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
        cands = torch.full((B, C), -1, dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s)
            input_ids[i, :n] = torch.tensor(s.input_ids)
            attention[i, :n] = 1
            labels[i, :n] = torch.tensor(s.labels)
            if s.verdict_candidates:
                cands[i, : len(s.verdict_candidates)] = torch.tensor(s.verdict_candidates)
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "verdict_index": torch.tensor([s.verdict_index for s in samples], dtype=torch.long),
            "verdict_target": torch.tensor([s.verdict_target for s in samples], dtype=torch.long),
            "verdict_candidates": cands,
            "weights": torch.tensor([s.weight for s in samples], dtype=torch.float32),
            "ids": [s.id for s in samples],
        }
