"""Reward data with a fixed chosen position: RewardBench, RewardBench 2, HH-RLHF and chat-message pairs.

The chosen response is always response A with label ``"A"`` and ``meta["position_fixed"] = True``;
balancing positions is the mixture's job.
"""

from __future__ import annotations

import re
from typing import Any

from cj2.data.adapters.fields import Fields, line_id, split_prompt, split_reply
from cj2.data.schema import BestOfNItem, PairwiseItem


def rewardbench(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RewardBench (``prompt, chosen, rejected, subset, id``; optional ``chosen_model``/``rejected_model``).

    The chosen response is response A with label ``"A"``; ``domain`` is the subset (its section
    weighting is the evaluator's business, arXiv 2507.09104 Table 8).
    """
    f = Fields(row, path, line)
    subset = f.text("subset")
    meta: dict[str, Any] = {"subset": subset, "position_fixed": True}
    for key, name in (("chosen_model", "model_a"), ("rejected_model", "model_b")):
        if f.has(key):
            meta[name] = f.text(key)
    return [
        PairwiseItem(
            id=f.ident("id"),
            question=f.text("prompt"),
            response_a=f.text("chosen"),
            response_b=f.text("rejected"),
            label="A",
            domain=subset,
            language=language,
            source="rewardbench",
            meta=meta,
        )
    ]


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


def _hh_turns(text: str, f: Fields, key: str) -> list[dict[str, str]]:
    if text.startswith(("Human:", "Assistant:")):  # a transcript stripped of its leading blank line
        text = "\n\n" + text
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise f.fail(
            "inconsistent",
            key,
            "expected a transcript of '\\n\\nHuman: ...' / '\\n\\nAssistant: ...' "
            "turns" + (f", found text before the first turn: {parts[0][:40]!r}" if parts[0].strip() else ""),
        )
    # The separator eats "Human:"; the single space after the colon is formatting, not content.
    return [{"role": _HH_ROLE[role], "content": body.strip()} for role, body in zip(parts[1::2], parts[2::2])]


def hh_rlhf(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """HH-RLHF: ``chosen``/``rejected`` are whole transcripts that differ only in the last assistant turn.

    The shared prefix is the dialogue: earlier turns go to ``conversation``, the last human turn is the
    ``question``, and the two final assistant turns are the responses (chosen = A).
    """
    f = Fields(row, path, line)
    chosen = _hh_turns(f.text("chosen"), f, "chosen")
    rejected = _hh_turns(f.text("rejected"), f, "rejected")
    prompt_c, reply_c = split_reply(chosen, f, "chosen", indexed=False)
    prompt_r, reply_r = split_reply(rejected, f, "rejected", indexed=False)
    if prompt_c != prompt_r:
        turn = next(
            (i for i, (a, b) in enumerate(zip(prompt_c, prompt_r)) if a != b),
            min(len(prompt_c), len(prompt_r)),
        )
        raise f.fail(
            "inconsistent",
            "rejected",
            f"the transcripts differ before the last assistant turn "
            f"(first at turn {turn}); only the final assistant turn may differ",
        )
    if not prompt_c:
        raise f.fail("inconsistent", "chosen", "the transcript has no human turn before the reply")
    if prompt_c[-1]["role"] != "user":
        raise f.fail("inconsistent", "chosen", "the turn before the final reply is not a human turn")
    conversation, question = prompt_c[:-1], prompt_c[-1]["content"]
    return [
        PairwiseItem(
            id=line_id(path, line),
            question=question,
            response_a=reply_c,
            response_b=reply_r,
            label="A",
            conversation=conversation,
            language=language,
            source="hh_rlhf",
            meta={"position_fixed": True},
        )
    ]


def chat_pairs(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """Chat-message pairs (UltraFeedback-binarized style): ``chosen``/``rejected`` as ``[{role, content}]``.

    Both lists end with the assistant reply and share everything before it. When the lists hold only the
    reply, the optional ``prompt`` column is the question; when they hold the prompt too, ``prompt`` (if
    present) must equal their last user turn. Lists stored as JSON or Python-literal strings are parsed
    safely. ``prompt_id`` is the id when present.
    """
    f = Fields(row, path, line)
    prefix_c, reply_c = split_reply(f.messages("chosen"), f, "chosen")
    prefix_r, reply_r = split_reply(f.messages("rejected"), f, "rejected")
    if prefix_c != prefix_r:
        raise f.fail(
            "inconsistent", "rejected", "chosen and rejected differ before the final assistant reply"
        )
    prompt = f.opt_text("prompt")
    if prefix_c:
        conversation, question = split_prompt(prefix_c, f, "chosen")
        if prompt is not None and prompt.strip() != question.strip():
            raise f.fail("inconsistent", "prompt", "differs from the last user turn of 'chosen'")
    elif prompt is None:
        raise f.fail("missing_field", "prompt", "missing required field ('chosen' holds only the reply)")
    else:
        conversation, question = [], prompt
    meta: dict[str, Any] = {"position_fixed": True}
    for key in ("score_chosen", "score_rejected"):
        if f.has(key):
            meta[key] = row[key]
    rid = f.ident("prompt_id") if f.has("prompt_id") else line_id(path, line)
    return [
        PairwiseItem(
            id=rid,
            question=question,
            response_a=reply_c,
            response_b=reply_r,
            label="A",
            conversation=conversation,
            language=language,
            source="chat_pairs",
            meta=meta,
        )
    ]


_RB2_SUBSETS = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")


def rewardbench2(row: dict, *, path, line, language: str = "en") -> list[BestOfNItem]:
    """RewardBench 2: ``id, prompt, chosen[], rejected[], num_correct, num_incorrect, total_completions,
    models, subset`` -> one :class:`~cj2.data.schema.BestOfNItem` (``best`` = the first chosen answer,
    ``losers`` = the rejected ones; every chosen answer in ``meta["chosen"]``).

    The counts, where given, must match the lists. Every subset but Ties has one chosen answer; a Ties id
    is ``ref:<n>`` or ``tied:<n>`` (a reference prompt with one correct answer, or its tied twin with
    several), read into ``meta["ties_kind"]`` / ``meta["ties_prompt"]``.
    """
    f = Fields(row, path, line)
    rid, subset = f.ident("id"), f.text("subset")
    if subset not in _RB2_SUBSETS:
        raise f.fail(
            "unknown_label", "subset", f"unknown RewardBench 2 subset {subset!r}; expected {_RB2_SUBSETS}"
        )
    chosen, rejected = f.text_list("chosen"), f.text_list("rejected")
    for key, values in (("num_correct", chosen), ("num_incorrect", rejected)):
        if f.has(key) and f.raw(key) != len(values):
            raise f.fail("inconsistent", key, f"is {f.raw(key)!r} but the list holds {len(values)} answers")
    if f.has("total_completions") and f.raw("total_completions") != len(chosen) + len(rejected):
        raise f.fail(
            "inconsistent", "total_completions", "differs from the number of chosen + rejected answers"
        )
    meta: dict[str, Any] = {"subset": subset, "chosen": chosen, "num_correct": len(chosen)}
    if f.has("models"):
        meta["models"] = row["models"]
    if subset == "Ties":
        kind, sep, pid = rid.rpartition(":")
        if not sep or kind not in ("ref", "tied") or not pid:
            raise f.fail("inconsistent", "id", f"a Ties id is 'ref:<n>' or 'tied:<n>', got {rid!r}")
        meta.update(ties_kind=kind, ties_prompt=pid)
    elif len(chosen) != 1:
        raise f.fail("inconsistent", "chosen", f"subset {subset!r} has one chosen answer, got {len(chosen)}")
    return [
        BestOfNItem(
            id=rid,
            question=f.text("prompt"),
            best=chosen[0],
            losers=rejected,
            domain=subset,
            language=language,
            source="rewardbench2",
            meta=meta,
        )
    ]
