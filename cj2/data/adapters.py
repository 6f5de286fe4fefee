"""Adapters: public judge and reward datasets, read in their native layouts, into cj2's schema.

CompassJudger-2 trains on public judge data and public reward data (arXiv 2507.09104, Sec. 3.1) and is
evaluated on RewardBench, JudgeBench, RMB and JudgerBenchV2 (Sec. 4-5). Each of those ships its own
layout; an adapter turns one raw record into schema items (:mod:`cj2.data.schema`) and nothing else:

=================  =====================================================================================
``rewardbench``    RewardBench: ``prompt, chosen, rejected, subset, id`` (chosen is response A)
``hh_rlhf``        HH-RLHF: ``chosen``/``rejected`` whole transcripts; the shared prefix is the dialogue
``chat_pairs``     UltraFeedback-binarized style: ``chosen``/``rejected`` as ``[{role, content}]``
``llmbar``         LLMBar: ``input, output_1, output_2, label`` (1 or 2)
``judgebench``     JudgeBench: ``pair_id, source, question, response_A, response_B, label`` ("A>B"/"B>A")
``pandalm``        PandaLM test set: ``instruction, input, response1, response2, annotator1..3``
``autoj``          Auto-J pairwise: ``scenario, prompt, "response 1", "response 2", label`` (0/1/2)
``rmb_pairwise``   RMB pairwise: ``pair_uid, conversation_input, chosen, reject, category_path``
``rmb_bon``        RMB best-of-N: ``bon_uid, conversation_input, bon_best, loser_list, category_path``
``rmbench``        RM-Bench: ``id, subset, prompt, chosen[3], rejected[3]`` -> the 3x3 pairs
``mtbench_human``  MT-Bench human judgments: ``question_id, model_a, model_b, winner, conversation_a/b,
                   turn``
``judgerbenchv2``  JudgerBenchV2 (Sec. 4): a folder of ``{Scenario}.json``
``pairwise``       cj2's own JSONL of :class:`PairwiseItem` fields
``pointwise``      cj2's own JSONL of :class:`PointwiseItem` fields
=================  =====================================================================================

An adapter is ``fn(row, *, path, line, **options) -> list[item]``. It raises
:class:`~cj2.data.io.DataError` naming file, line and field for a missing field, a wrong type, an
inconsistent record or an unknown label, and :class:`SkipRecord` for a record a stated policy leaves out
(a PandaLM row whose three annotators all disagree). Every ``DataError`` raised here carries ``kind``, a
stable reason code used for the skip counters.

Sources whose better answer always sits in one position (chosen/rejected layouts, RMB, RM-Bench) keep the
label ``"A"`` and set ``meta["position_fixed"] = True``; balancing positions is the mixture's job.

:func:`load_items` reads a file, a folder of files or (with ``datasets`` installed and a hub reachable) a
Hugging Face dataset id, runs an adapter over every record, and fills a stats dict: ``read`` (records
read), ``kept`` (items returned), ``skipped`` with ``skipped_by_reason``, and ``empty_responses``.
"""

from __future__ import annotations

import inspect
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, read_rows
from cj2.data.literal import parse_structured
from cj2.data.schema import PAIRWISE_LABELS, BestOfNItem, PairwiseItem, PointwiseItem

Item = PairwiseItem | PointwiseItem | BestOfNItem
_ROLES = ("system", "user", "assistant")
_DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


class SkipRecord(Exception):
    """A well-formed record that a stated policy leaves out; always counted under ``reason``."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


def _error(kind: str, message: str, *, path, line, field: str | None = None) -> DataError:
    return DataError(message, path=path, line=line, field=field, kind=kind)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _line_id(path, line: int) -> str:
    """An id for records that carry none: the file name and the record's line (stable across machines)."""
    return f"{Path(str(path)).name}:{line}"


class _Fields:
    """Typed access to one raw record (or a nested object in it); every failure names file, line, field."""

    def __init__(self, row: Any, path, line: int, prefix: str = ""):
        self.row, self.path, self.line, self.prefix = row, path, line, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, kind: str, key: str | None, message: str) -> DataError:
        return _error(
            kind, message, path=self.path, line=self.line, field=None if key is None else self.name(key)
        )

    def has(self, key: str) -> bool:
        return self.row.get(key) is not None

    def raw(self, key: str) -> Any:
        if self.row.get(key) is None:  # parquet fills absent columns with null: same as missing
            raise self.fail("missing_field", key, "missing required field")
        return self.row[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail("wrong_type", key, f"expected a string, got {_type_name(value)}")
        return value

    def opt_text(self, key: str, default: str | None = None) -> str | None:
        return self.text(key) if self.has(key) else default

    def ident(self, key: str) -> str:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail("wrong_type", key, f"expected a string or integer id, got {_type_name(value)}")
        return str(value)

    def structured(self, key: str, want: type) -> Any:
        """A list/dict field, given natively or as a JSON / Python-literal string (parsed safely)."""
        value = self.raw(key)
        if isinstance(value, str):
            value = parse_structured(value, path=self.path, line=self.line, field=self.name(key))
        if isinstance(value, tuple) and want is list:
            value = list(value)
        if not isinstance(value, want):
            raise self.fail("wrong_type", key, f"expected a {want.__name__}, got {_type_name(value)}")
        return value

    def record(self, key: str) -> _Fields:
        return _Fields(self.structured(key, dict), self.path, self.line, f"{self.name(key)}.")

    def text_list(self, key: str) -> list[str]:
        values = self.structured(key, list)
        if not values:
            raise self.fail("wrong_type", key, "expected a non-empty list of strings")
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.fail("wrong_type", f"{key}[{i}]", f"expected a string, got {_type_name(value)}")
        return values

    def messages(self, key: str, values: list | None = None) -> list[dict[str, str]]:
        """A ``[{role, content}, ...]`` list; extra keys per message (RMB's ``language``) are dropped.

        ``values`` is the field's already-parsed list, when the caller needed it too.
        """
        values = self.structured(key, list) if values is None else values
        if not values:
            raise self.fail("wrong_type", key, "expected a non-empty list of {role, content} messages")
        out = []
        for i, msg in enumerate(values):
            where = f"{key}[{i}]"
            if isinstance(msg, str):
                msg = parse_structured(msg, path=self.path, line=self.line, field=self.name(where))
            if not isinstance(msg, dict):
                raise self.fail(
                    "wrong_type", where, f"expected a {{role, content}} object, got {_type_name(msg)}"
                )
            sub = _Fields(msg, self.path, self.line, f"{self.name(where)}.")
            role, content = sub.text("role"), sub.text("content")
            if role not in _ROLES:
                raise sub.fail("unknown_label", "role", f"role {role!r} is not one of {_ROLES}")
            out.append({"role": role, "content": content})
        return out

    def label(self, key: str, mapping: dict[Any, str]) -> str:
        """Map a native label to ``A``/``B``/``tie``; ints also match their decimal string form."""
        value = self.raw(key)
        # A float label (1.0) comes from pandas exports; it matches its int key in the mapping.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail("wrong_type", key, f"expected one of {list(mapping)}, got {_type_name(value)}")
        if value in mapping:
            return mapping[value]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and int(value) in mapping:
            return mapping[int(value)]
        raise self.fail("unknown_label", key, f"unknown label {value!r}; expected one of {list(mapping)}")


def _split_prompt(messages: list[dict[str, str]], f: _Fields, key: str) -> tuple[list[dict[str, str]], str]:
    """(earlier turns, last user turn) of a prompt that must end with a user message."""
    if messages[-1]["role"] != "user":
        raise f.fail(
            "inconsistent",
            f"{key}[{len(messages) - 1}].role",
            f"the prompt must end with a user turn, not {messages[-1]['role']!r}",
        )
    return messages[:-1], messages[-1]["content"]


def _split_reply(
    messages: list[dict[str, str]], f: _Fields, key: str, *, indexed: bool = True
) -> tuple[list[dict[str, str]], str]:
    """(prompt turns, final assistant reply) of a dialogue that must end with an assistant message.

    ``indexed=False`` names the field itself in errors (an HH transcript is one string, not a list).
    """
    if messages[-1]["role"] != "assistant":
        raise f.fail(
            "inconsistent",
            f"{key}[{len(messages) - 1}].role" if indexed else key,
            f"expected the dialogue to end with an assistant reply, not {messages[-1]['role']!r}",
        )
    return messages[:-1], messages[-1]["content"]


# --------------------------------------------------------------------------------------------------------
# Reward data with a fixed chosen position


def rewardbench(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RewardBench (``prompt, chosen, rejected, subset, id``; optional ``chosen_model``/``rejected_model``).

    The chosen response is response A with label ``"A"``; ``domain`` is the subset (its section
    weighting is the evaluator's business, arXiv 2507.09104 Table 8).
    """
    f = _Fields(row, path, line)
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


def _hh_turns(text: str, f: _Fields, key: str) -> list[dict[str, str]]:
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
    f = _Fields(row, path, line)
    chosen = _hh_turns(f.text("chosen"), f, "chosen")
    rejected = _hh_turns(f.text("rejected"), f, "rejected")
    prompt_c, reply_c = _split_reply(chosen, f, "chosen", indexed=False)
    prompt_r, reply_r = _split_reply(rejected, f, "rejected", indexed=False)
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
            id=_line_id(path, line),
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
    f = _Fields(row, path, line)
    prefix_c, reply_c = _split_reply(f.messages("chosen"), f, "chosen")
    prefix_r, reply_r = _split_reply(f.messages("rejected"), f, "rejected")
    if prefix_c != prefix_r:
        raise f.fail(
            "inconsistent", "rejected", "chosen and rejected differ before the final assistant reply"
        )
    prompt = f.opt_text("prompt")
    if prefix_c:
        conversation, question = _split_prompt(prefix_c, f, "chosen")
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
    rid = f.ident("prompt_id") if f.has("prompt_id") else _line_id(path, line)
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


# --------------------------------------------------------------------------------------------------------
# Pairwise judge benchmarks with an explicit label


def llmbar(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """LLMBar: ``input, output_1, output_2, label`` with label 1 (output_1 better) or 2."""
    f = _Fields(row, path, line)
    return [
        PairwiseItem(
            id=_line_id(path, line),
            question=f.text("input"),
            response_a=f.text("output_1"),
            response_b=f.text("output_2"),
            label=f.label("label", {1: "A", 2: "B"}),
            language=language,
            source="llmbar",
        )
    ]


def judgebench(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """JudgeBench: ``pair_id, source, question, response_A, response_B, label`` ("A>B" or "B>A").

    ``domain`` is JudgeBench's ``source`` (e.g. ``mmlu-pro-math``, ``livecodebench``).
    """
    f = _Fields(row, path, line)
    origin = f.text("source")
    meta: dict[str, Any] = {"source": origin}
    for key in ("original_id", "response_model"):
        if f.has(key):
            meta[key] = row[key]
    return [
        PairwiseItem(
            id=f.ident("pair_id"),
            question=f.text("question"),
            response_a=f.text("response_A"),
            response_b=f.text("response_B"),
            label=f.label("label", {"A>B": "A", "B>A": "B"}),
            domain=origin,
            language=language,
            source="judgebench",
            meta=meta,
        )
    ]


_PANDALM_VOTE = {1: "A", 2: "B", 0: "tie"}


def pandalm(row: dict, *, path, line, language: str = "en", no_majority: str = "skip") -> list[PairwiseItem]:
    """PandaLM test set: ``instruction, input, response1, response2, annotator1..3`` (1, 2, or 0 = tie).

    The label is the majority of the three votes. When all three differ there is no majority:
    ``no_majority="skip"`` (default) leaves the row out, counted under ``no_majority``; ``"tie"`` keeps it
    as a tie; ``"error"`` raises. The question is the instruction, then the input after a blank line.
    """
    if no_majority not in ("skip", "tie", "error"):
        raise ValueError(f"pandalm: no_majority={no_majority!r}; expected 'skip', 'tie' or 'error'")
    f = _Fields(row, path, line)
    votes = [f.label(f"annotator{i}", _PANDALM_VOTE) for i in (1, 2, 3)]
    label, count = Counter(votes).most_common(1)[0]
    if count < 2:
        if no_majority == "skip":
            raise SkipRecord("no_majority", "the three annotators all disagree")
        if no_majority == "error":
            raise f.fail("no_majority", "annotator3", f"no majority among the votes {votes}")
        label = "tie"
    instruction, extra = f.text("instruction"), f.opt_text("input", "")
    question = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    rid = f.ident("idx") if f.has("idx") else _line_id(path, line)
    return [
        PairwiseItem(
            id=rid,
            question=question,
            response_a=f.text("response1"),
            response_b=f.text("response2"),
            label=label,
            language=language,
            source="pandalm",
            meta={"votes": votes, "instruction": instruction, "input": extra},
        )
    ]


def autoj(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """Auto-J pairwise: ``scenario, prompt, "response 1", "response 2", label``.

    Label 0: the first response is better, 1: the second, 2: tie.
    """
    f = _Fields(row, path, line)
    scenario = f.text("scenario")
    return [
        PairwiseItem(
            id=_line_id(path, line),
            question=f.text("prompt"),
            response_a=f.text("response 1"),
            response_b=f.text("response 2"),
            label=f.label("label", {0: "A", 1: "B", 2: "tie"}),
            domain=scenario,
            language=language,
            source="autoj",
            meta={"scenario": scenario},
        )
    ]


# --------------------------------------------------------------------------------------------------------
# RMB (arXiv 2507.09104, Table 7) and RM-Bench


_LANGUAGE_NAMES = {"english": "en", "chinese": "zh"}


def _rmb_common(f: _Fields, language: str) -> tuple[list[dict[str, str]], str, str, str, dict[str, Any]]:
    raw_turns = f.structured("conversation_input", list)
    conversation, question = _split_prompt(
        f.messages("conversation_input", raw_turns), f, "conversation_input"
    )
    last = raw_turns[-1]
    if isinstance(last, dict) and isinstance(last.get("language"), str):
        # RMB tags each turn with a language name; map the two it uses to codes, keep any other name as is.
        language = _LANGUAGE_NAMES.get(last["language"].lower(), last["language"])
    category_path = f.text("category_path")
    parts = [p for p in category_path.split("/") if p]
    # "Pairwise_set/Helpfulness/Code/..." -> "Helpfulness": RMB reports help and harm separately.
    domain = parts[1] if len(parts) > 1 else (parts[0] if parts else "general")
    return conversation, question, language, domain, {"category_path": category_path}


def _rmb_answer(f: _Fields, key: str) -> tuple[str, str, Any]:
    """(answer, llm_name, score or None) of one RMB ``{llm_name, answer[, score]}`` object."""
    sub = f.record(key)
    score = sub.row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise sub.fail("wrong_type", "score", f"expected a number, got {_type_name(score)}")
    return sub.text("answer"), sub.text("llm_name"), score


def rmb_pairwise(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RMB pairwise: ``pair_uid, conversation_input, chosen{llm_name, answer}, reject{...}, category_path``.

    RMB's own loader always puts the chosen answer first with winner A (arXiv 2507.09104, Sec. 5.3 notes);
    the adapter keeps that order (``meta["position_fixed"]``). ``domain`` is the second component of
    ``category_path`` (Helpfulness / Harmlessness).
    """
    f = _Fields(row, path, line)
    conversation, question, language, domain, meta = _rmb_common(f, language)
    chosen, chosen_model, chosen_score = _rmb_answer(f, "chosen")
    rejected, rejected_model, rejected_score = _rmb_answer(f, "reject")
    meta.update(model_a=chosen_model, model_b=rejected_model, position_fixed=True)
    if chosen_score is not None or rejected_score is not None:  # RMB's annotation scores, kept for analysis
        meta.update(score_a=chosen_score, score_b=rejected_score)
    return [
        PairwiseItem(
            id=f.ident("pair_uid"),
            question=question,
            response_a=chosen,
            response_b=rejected,
            label="A",
            conversation=conversation,
            domain=domain,
            language=language,
            source="rmb",
            meta=meta,
        )
    ]


def rmb_bon(row: dict, *, path, line, language: str = "en") -> list[BestOfNItem]:
    """RMB best-of-N: ``bon_uid, conversation_input, bon_best{llm_name, answer}, loser_list, category_path``.

    A group counts as won only if the best response beats every loser (arXiv 2507.09104, Sec. 5.3 notes).
    """
    f = _Fields(row, path, line)
    conversation, question, language, domain, meta = _rmb_common(f, language)
    best, best_model, _ = _rmb_answer(f, "bon_best")
    losers_raw = f.structured("loser_list", list)
    if not losers_raw:
        raise f.fail("wrong_type", "loser_list", "expected a non-empty list of {llm_name, answer}")
    losers, loser_models = [], []
    for i, loser in enumerate(losers_raw):
        # Give each loser its own field name ("loser_list[2].answer") for errors.
        answer, model, _ = _rmb_answer(_Fields({f"loser_list[{i}]": loser}, path, line), f"loser_list[{i}]")
        losers.append(answer)
        loser_models.append(model)
    meta.update(best_model=best_model, loser_models=loser_models)
    return [
        BestOfNItem(
            id=f.ident("bon_uid"),
            question=question,
            best=best,
            losers=losers,
            conversation=conversation,
            domain=domain,
            language=language,
            source="rmb",
            meta=meta,
        )
    ]


def rmbench(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RM-Bench: ``id, subset, prompt, chosen, rejected`` with one response per style variant (3 each).

    Expands to every (chosen style i, rejected style j) pair, ids ``f"{id}/c{i}r{j}"``; RM-Bench's
    easy/normal/hard accuracies are read off this matrix by the evaluator.
    """
    f = _Fields(row, path, line)
    rid, subset, prompt = f.ident("id"), f.text("subset"), f.text("prompt")
    chosen, rejected = f.text_list("chosen"), f.text_list("rejected")
    return [
        PairwiseItem(
            id=f"{rid}/c{i}r{j}",
            question=prompt,
            response_a=c,
            response_b=r,
            label="A",
            domain=subset,
            language=language,
            source="rmbench",
            meta={"subset": subset, "chosen_style": i, "rejected_style": j, "position_fixed": True},
        )
        for i, c in enumerate(chosen)
        for j, r in enumerate(rejected)
    ]


# --------------------------------------------------------------------------------------------------------
# MT-Bench human judgments and JudgerBenchV2


_MTBENCH_WINNER = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie"}


def _nth_user_turn(messages: list[dict[str, str]], turn: int, f: _Fields, key: str) -> int:
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if turn > len(users):
        raise f.fail("inconsistent", "turn", f"turn {turn} but {key!r} has {len(users)} user turn(s)")
    idx = users[turn - 1]
    if idx + 1 >= len(messages) or messages[idx + 1]["role"] != "assistant":
        raise f.fail("inconsistent", key, f"user turn {turn} has no assistant reply after it")
    return idx


def mtbench_human(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """MT-Bench human judgments: ``question_id, model_a, model_b, winner, conversation_a/b, turn``.

    The question is user turn ``turn`` (1-based), the responses each model's reply to it, and
    ``conversation`` the turns before it as model A saw them. On turn 2 the two models' earlier replies
    differ; model B's history is kept in ``meta["conversation_b"]``. ``winner`` "tie (bothbad)" is a tie
    with ``meta["tie_kind"] = "bothbad"``.
    """
    f = _Fields(row, path, line)
    turn = f.raw("turn")
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise f.fail("wrong_type", "turn", f"expected a positive integer, got {turn!r}")
    label = f.label("winner", _MTBENCH_WINNER)
    conv_a, conv_b = f.messages("conversation_a"), f.messages("conversation_b")
    ia, ib = (
        _nth_user_turn(conv_a, turn, f, "conversation_a"),
        _nth_user_turn(conv_b, turn, f, "conversation_b"),
    )
    question = conv_a[ia]["content"]
    if conv_b[ib]["content"] != question:
        raise f.fail("inconsistent", "conversation_b", f"user turn {turn} differs from conversation_a's")
    qid, model_a, model_b = f.ident("question_id"), f.text("model_a"), f.text("model_b")
    meta: dict[str, Any] = {"question_id": qid, "model_a": model_a, "model_b": model_b, "turn": turn}
    judge = f.opt_text("judge")
    if judge is not None:
        meta["judge"] = judge
    if row["winner"] == "tie (bothbad)":
        meta["tie_kind"] = "bothbad"
    if conv_b[:ib] != conv_a[:ia]:
        meta["conversation_b"] = conv_b[:ib]
    rid = f"{qid}/{model_a}/{model_b}/turn{turn}/" + (judge if judge is not None else f"line{line}")
    return [
        PairwiseItem(
            id=rid,
            question=question,
            response_a=conv_a[ia + 1]["content"],
            response_b=conv_b[ib + 1]["content"],
            label=label,
            conversation=conv_a[:ia],
            language=language,
            source="mtbench_human",
            meta=meta,
        )
    ]


_JUDGERBENCH_LANGS = ("cn", "en")


def judgerbenchv2(row: dict, *, path, line, scenario: str | None = None) -> list[PairwiseItem]:
    """JudgerBenchV2 (arXiv 2507.09104, Sec. 4): one item of a ``{Scenario}.json`` file.

    ``prompt``, ``base_model_response{response, model_name}`` (the reference model, GPT-4o-mini),
    ``models_response{response, model_name}`` (the candidate) and ``gold{category, lan, r1_gt}``. Response
    A is the reference, B the candidate; the label names the side whose model ``gold.r1_gt`` names.
    ``domain`` is the scenario (the file stem unless ``scenario`` is given), ``language`` is ``gold.lan``
    (``"cn"`` or ``"en"``), and ``meta["index"]`` the item's position in its file (the benchmark assigns A/B
    positions in file order, Sec. 4.4 of the notes).
    """
    f = _Fields(row, path, line)
    base, cand, gold = f.record("base_model_response"), f.record("models_response"), f.record("gold")
    model_a, model_b = base.text("model_name"), cand.text("model_name")
    winner = gold.text("r1_gt")
    if model_a == model_b:
        raise f.fail(
            "inconsistent", "models_response.model_name", f"same model as the reference ({model_a!r})"
        )
    if winner not in (model_a, model_b):
        raise gold.fail(
            "unknown_label", "r1_gt", f"winner {winner!r} names neither {model_a!r} nor {model_b!r}"
        )
    lan = gold.text("lan")
    if lan not in _JUDGERBENCH_LANGS:
        raise gold.fail(
            "unknown_label", "lan", f"unknown language {lan!r}; expected one of {_JUDGERBENCH_LANGS}"
        )
    name = scenario if scenario is not None else Path(str(path)).name.split(".")[0]
    meta = {
        "model_a": model_a,
        "model_b": model_b,
        "scenario": name,
        "category": gold.text("category"),
        "index": line - 1,
    }
    return [
        PairwiseItem(
            id=f"{name}/{line - 1}",
            question=f.text("prompt"),
            response_a=base.text("response"),
            response_b=cand.text("response"),
            label="A" if winner == model_a else "B",
            domain=name,
            language=lan,
            source="judgerbenchv2",
            meta=meta,
        )
    ]


# --------------------------------------------------------------------------------------------------------
# cj2's own layouts


def _own_common(f: _Fields, known: tuple[str, ...], extra_fields: str, default_source: str) -> dict[str, Any]:
    if extra_fields not in ("error", "meta"):
        raise ValueError(f"extra_fields={extra_fields!r}; expected 'error' or 'meta'")
    extras = {k: v for k, v in f.row.items() if k not in known}
    if extras and extra_fields == "error":
        key = sorted(extras)[0]
        raise f.fail(
            "unknown_field",
            key,
            f"unknown field (known: {', '.join(known)}); "
            "pass extra_fields='meta' to keep unknown fields in meta",
        )
    meta = dict(f.structured("meta", dict)) if f.has("meta") else {}
    if extras:
        meta.update(extras)
    out: dict[str, Any] = {
        "id": f.ident("id") if f.has("id") else _line_id(f.path, f.line),
        "question": f.text("question"),
        "conversation": f.messages("conversation") if f.has("conversation") else [],
        "domain": f.opt_text("domain", "general"),
        "language": f.opt_text("language", "en"),
        "source": f.opt_text("source", default_source),
        "date": f.opt_text("date"),
        "judgment": f.opt_text("judgment"),
        "meta": meta,
    }
    return out


_PAIRWISE_FIELDS = (
    "id",
    "question",
    "response_a",
    "response_b",
    "label",
    "conversation",
    "domain",
    "language",
    "source",
    "date",
    "judgment",
    "meta",
)


def pairwise(row: dict, *, path, line, extra_fields: str = "error") -> list[PairwiseItem]:
    """cj2's own pairwise JSONL: the :class:`PairwiseItem` fields (``id`` optional: file:line).

    Unknown fields are an error (a typo such as ``respnse_a`` must not pass silently); with
    ``extra_fields="meta"`` they are kept in ``meta``.
    """
    f = _Fields(row, path, line)
    common = _own_common(f, _PAIRWISE_FIELDS, extra_fields, "pairwise")
    label = f.label("label", {name: name for name in PAIRWISE_LABELS})
    return [
        PairwiseItem(response_a=f.text("response_a"), response_b=f.text("response_b"), label=label, **common)
    ]


_POINTWISE_FIELDS = (
    "id",
    "question",
    "response",
    "score",
    "correct",
    "conversation",
    "reference",
    "domain",
    "language",
    "source",
    "date",
    "judgment",
    "meta",
)


def pointwise(row: dict, *, path, line, extra_fields: str = "error") -> list[PointwiseItem]:
    """cj2's own pointwise JSONL: the :class:`PointwiseItem` fields.

    ``score`` is a number and ``correct`` a boolean; either, both or neither may be present.
    """
    f = _Fields(row, path, line)
    common = _own_common(f, _POINTWISE_FIELDS, extra_fields, "pointwise")
    score = row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise f.fail("wrong_type", "score", f"expected a number, got {_type_name(score)}")
    correct = row.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise f.fail("wrong_type", "correct", f"expected true or false, got {_type_name(correct)}")
    return [
        PointwiseItem(
            response=f.text("response"),
            score=score,
            correct=correct,
            reference=f.opt_text("reference"),
            **common,
        )
    ]


ADAPTERS: dict[str, Callable[..., list]] = {
    "rewardbench": rewardbench,
    "hh_rlhf": hh_rlhf,
    "chat_pairs": chat_pairs,
    "llmbar": llmbar,
    "judgebench": judgebench,
    "pandalm": pandalm,
    "autoj": autoj,
    "rmb_pairwise": rmb_pairwise,
    "rmb_bon": rmb_bon,
    "rmbench": rmbench,
    "mtbench_human": mtbench_human,
    "judgerbenchv2": judgerbenchv2,
    "pairwise": pairwise,
    "pointwise": pointwise,
}


# --------------------------------------------------------------------------------------------------------
# Reading sources


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in _DATA_SUFFIXES if name.endswith(s)), path.suffix.lower())


def _data_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and _suffix(p) in _DATA_SUFFIXES
    )
    if not files:
        raise _error(
            "not_found", f"folder holds no data files ({', '.join(_DATA_SUFFIXES)})", path=root, line=None
        )
    return files


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = ("1", "true", "yes", "on")


def _hub_rows(source: str, split: str, name: str | None) -> Iterator[tuple[str, int, dict]]:
    """Rows of a Hugging Face dataset id; any failure says the path does not exist and no hub is reachable."""
    prefix = "path does not exist and no hub is reachable"
    if any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        raise _error("not_found", f"{prefix} (offline mode is set)", path=source, line=None)
    try:
        import datasets  # optional: only needed for hub ids
    except ImportError:
        raise _error(
            "not_found",
            f"{prefix} to read it as a dataset id (the `datasets` package is not "
            "installed: pip install datasets)",
            path=source,
            line=None,
        ) from None
    try:
        dataset = datasets.load_dataset(source, name, split=split)
    except Exception as err:  # noqa: BLE001 -- network, auth, missing dataset: all mean "cannot read it"
        raise _error(
            "not_found",
            f"{prefix} that serves it as a dataset id ({type(err).__name__}: {err})",
            path=source,
            line=None,
        ) from None
    label = f"hf://{source}" + (f"/{name}" if name else "") + f"[{split}]"
    for i, row in enumerate(dataset, start=1):
        yield label, i, row


def _source_rows(
    source: str, *, tolerant: bool, split: str, name: str | None
) -> Iterator[tuple[str, int, dict | DataError]]:
    path = Path(os.path.expanduser(str(source)))
    if not path.exists():
        text = str(source)
        looks_local = text.startswith((".", "/", "~")) or _suffix(path) in _DATA_SUFFIXES or "\\" in text
        if looks_local or not _HUB_ID.match(text):
            raise _error("not_found", "file not found", path=source, line=None)
        yield from _hub_rows(text, split, name)
        return
    for file in _data_files(path):
        # A JSON array or parquet file that cannot be parsed is lost as a whole: that always raises.
        for line, row in read_rows(file, bad_lines="yield" if tolerant else "raise"):
            yield str(file), line, row


def _empty(item: Item) -> bool:
    if isinstance(item, PairwiseItem):
        texts = [item.response_a, item.response_b]
    elif isinstance(item, PointwiseItem):
        texts = [item.response]
    else:
        texts = [item.best, *item.losers]
    return any(not t.strip() for t in texts)


def _reason(err: DataError) -> str:
    # Every error raised inside the skip loop comes from this module or literal.py, which set ``kind``.
    return getattr(err, "kind", None) or "invalid"


def _adapter_options(adapter: str, fn: Callable, options: dict[str, Any]) -> None:
    params = inspect.signature(fn).parameters
    allowed = [
        p
        for p, spec in params.items()
        if spec.kind is inspect.Parameter.KEYWORD_ONLY and p not in ("path", "line")
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"adapter {adapter!r} has no option {unknown[0]!r}; its options: "
            f"{', '.join(allowed) or 'none'} (and load_items' drop_empty, split, name, source_name)"
        )


def iter_items(
    source: str | os.PathLike,
    adapter: str,
    *,
    on_error: str = "raise",
    stats: dict | None = None,
    limit: int | None = None,
    drop_empty: bool = False,
    split: str = "train",
    name: str | None = None,
    source_name: str | None = None,
    **options: Any,
) -> Iterator[Item]:
    """Stream the items of ``source`` read with ``adapter``; see :func:`load_items`.

    Arguments are checked when this is called; records are read as the iterator is consumed.
    """
    if adapter not in ADAPTERS:
        raise KeyError(f"unknown adapter {adapter!r}; known: {', '.join(sorted(ADAPTERS))}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit}; expected a non-negative integer or None")
    fn = ADAPTERS[adapter]
    _adapter_options(adapter, fn, options)
    st = stats if stats is not None else {}
    for key in ("read", "kept", "skipped", "empty_responses"):
        st.setdefault(key, 0)
    st.setdefault("skipped_by_reason", {})
    return _generate(
        fn,
        source,
        st,
        on_error=on_error,
        limit=limit,
        drop_empty=drop_empty,
        split=split,
        name=name,
        source_name=source_name,
        options=options,
    )


def _generate(
    fn: Callable,
    source,
    st: dict,
    *,
    on_error: str,
    limit: int | None,
    drop_empty: bool,
    split: str,
    name: str | None,
    source_name: str | None,
    options: dict[str, Any],
) -> Iterator[Item]:
    by_reason = st["skipped_by_reason"]

    def skip(reason: str) -> None:
        st["skipped"] += 1
        by_reason[reason] = by_reason.get(reason, 0) + 1

    if limit == 0:
        return
    kept = 0
    for path, line, row in _source_rows(source, tolerant=on_error == "skip", split=split, name=name):
        st["read"] += 1
        try:
            if isinstance(row, DataError):
                raise row
            items = fn(row, path=path, line=line, **options)
        except SkipRecord as policy:
            skip(policy.reason)
            continue
        except DataError as err:
            if on_error == "raise":
                raise
            skip(_reason(err))
            continue
        for item in items:
            if source_name is not None:
                item.source = source_name
            if _empty(item):
                # Flagged, not silently dropped: an empty reply is a legitimate (bad) response to judge.
                item.meta["empty_response"] = True
                st["empty_responses"] += 1
                if drop_empty:
                    skip("empty_response")
                    continue
            st["kept"] += 1
            kept += 1
            yield item
            if limit is not None and kept >= limit:
                return


def load_items(
    source: str | os.PathLike,
    adapter: str,
    *,
    on_error: str = "raise",
    stats: dict | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Item]:
    """Read judge items from ``source`` with the named adapter (see :data:`ADAPTERS`).

    ``source`` is a file (``.json``, ``.jsonl``, ``.jsonl.gz``, ``.json.gz``, ``.parquet``), a folder (all
    data files under it, sorted; JudgerBenchV2 and RMB ship folders of ``.json``), or a Hugging Face
    dataset id when the path does not exist (``datasets`` installed and a hub reachable; ``split`` and
    ``name`` pick the split and config).

    ``on_error="raise"``: the first bad record raises :class:`DataError` naming ``file:line: field``.
    ``on_error="skip"``: bad records are skipped and counted in ``stats["skipped"]`` and
    ``stats["skipped_by_reason"][reason]`` (``invalid_json``, ``non_utf8``, ``missing_field``,
    ``wrong_type``, ``unknown_label``, ``inconsistent``, ``unsafe_literal``, ...). A file that cannot be
    parsed at all (a truncated JSON array) raises either way. Records a policy leaves out (PandaLM
    ``no_majority``) are always counted as skipped.

    Items with an empty response get ``meta["empty_response"] = True`` and are counted in
    ``stats["empty_responses"]``; ``drop_empty=True`` also drops them (reason ``empty_response``).
    ``stats["read"]`` counts source records, ``stats["kept"]`` returned items (RM-Bench gives 9 per record).
    Counters are added to, so one dict can collect several calls. ``limit`` stops after that many items;
    ``source_name`` overrides every item's ``source``. Other ``options`` go to the adapter (e.g.
    ``language``, PandaLM's ``no_majority``, JudgerBenchV2's ``scenario``); an unknown option is an error.
    """
    return list(iter_items(source, adapter, on_error=on_error, stats=stats, limit=limit, **options))
