"""Pairwise judge sets whose records carry the verdict: the native label is mapped to ``A``/``B``/``tie``.

LLMBar, JudgeBench, PandaLM (majority of three annotators), Auto-J, MT-Bench human judgments (one item per
judged turn) and JudgerBenchV2 (arXiv 2507.09104, Sec. 4: the winner is named by model).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cj2.data.adapters.fields import Fields, line_id
from cj2.data.io import SkipRecord
from cj2.data.schema import PairwiseItem


def llmbar(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """LLMBar: ``input, output_1, output_2, label`` with label 1 (output_1 better) or 2."""
    f = Fields(row, path, line)
    return [
        PairwiseItem(
            id=line_id(path, line),
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
    f = Fields(row, path, line)
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
    f = Fields(row, path, line)
    votes = [f.label(f"annotator{i}", _PANDALM_VOTE) for i in (1, 2, 3)]
    label, count = Counter(votes).most_common(1)[0]
    if count < 2:
        if no_majority == "skip":
            raise SkipRecord("no_majority", detail="the three annotators all disagree")
        if no_majority == "error":
            raise f.fail("no_majority", "annotator3", f"no majority among the votes {votes}")
        label = "tie"
    instruction, extra = f.text("instruction"), f.opt_text("input", "")
    question = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    rid = f.ident("idx") if f.has("idx") else line_id(path, line)
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
    f = Fields(row, path, line)
    scenario = f.text("scenario")
    return [
        PairwiseItem(
            id=line_id(path, line),
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
# MT-Bench human judgments and JudgerBenchV2


_MTBENCH_WINNER = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie"}


def _nth_user_turn(messages: list[dict[str, str]], turn: int, f: Fields, key: str) -> int:
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
    f = Fields(row, path, line)
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
    f = Fields(row, path, line)
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
