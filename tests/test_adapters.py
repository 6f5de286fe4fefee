"""Adapters for public judge/reward data (cj2.data.adapters) and the safe literal parser (cj2.data.literal).

Every fixture is written here, in the public dataset's own layout (field names, nesting, file type), and
every expected item is spelled out by hand.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cj2.data.adapters import ADAPTERS, iter_items, load_items
from cj2.data.io import DataError
from cj2.data.literal import parse_literal, parse_structured
from cj2.data.schema import BestOfNItem, PairwiseItem, PointwiseItem

# --------------------------------------------------------------------------------------------------------
# writers, one per file type


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def write_json(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


# --------------------------------------------------------------------------------------------------------
# one fixture per adapter, in the public layout


def test_rewardbench_jsonl(tmp_path):
    rows = [
        {
            "prompt": "How do I boil an egg?",
            "chosen": "Put it in boiling water for 9 minutes.",
            "chosen_model": "gpt-4",
            "rejected": "Eggs are birds.",
            "rejected_model": "llama-2-7b",
            "subset": "alpacaeval-easy",
            "id": 30,
        },
        {
            "prompt": "2+2?",
            "chosen": "4",
            "chosen_model": "human",
            "rejected": "5",
            "rejected_model": "gpt-3.5",
            "subset": "math-prm",
            "id": 451,
        },
    ]
    path = write_jsonl(tmp_path / "filtered.jsonl", rows)
    stats: dict = {}
    items = load_items(str(path), "rewardbench", stats=stats)
    assert items == [
        PairwiseItem(
            id="30",
            question="How do I boil an egg?",
            response_a="Put it in boiling water for 9 minutes.",
            response_b="Eggs are birds.",
            label="A",
            domain="alpacaeval-easy",
            source="rewardbench",
            meta={
                "subset": "alpacaeval-easy",
                "position_fixed": True,
                "model_a": "gpt-4",
                "model_b": "llama-2-7b",
            },
        ),
        PairwiseItem(
            id="451",
            question="2+2?",
            response_a="4",
            response_b="5",
            label="A",
            domain="math-prm",
            source="rewardbench",
            meta={"subset": "math-prm", "position_fixed": True, "model_a": "human", "model_b": "gpt-3.5"},
        ),
    ]
    assert stats == {"read": 2, "kept": 2, "skipped": 0, "empty_responses": 0, "skipped_by_reason": {}}


def test_hh_rlhf_jsonl_gz(tmp_path):
    prefix = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?"
    rows = [
        {"chosen": prefix + "\n\nAssistant: 12.", "rejected": prefix + "\n\nAssistant: 7."},
        {
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?",
            "rejected": "\n\nHuman: Hi\n\nAssistant:",
        },
    ]
    path = write_jsonl_gz(tmp_path / "train.jsonl.gz", rows)
    stats: dict = {}
    items = load_items(str(path), "hh_rlhf", stats=stats)
    assert items == [
        PairwiseItem(
            id="train.jsonl.gz:1",
            question="And times 3?",
            response_a="12.",
            response_b="7.",
            label="A",
            conversation=[
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4."},
            ],
            source="hh_rlhf",
            meta={"position_fixed": True},
        ),
        # The rejected reply is empty: kept, flagged and counted.
        PairwiseItem(
            id="train.jsonl.gz:2",
            question="Hi",
            response_a="Hello! How can I help?",
            response_b="",
            label="A",
            source="hh_rlhf",
            meta={"position_fixed": True, "empty_response": True},
        ),
    ]
    assert stats["empty_responses"] == 1 and stats["kept"] == 2


def test_hh_rlhf_prefix_mismatch_is_an_error(tmp_path):
    row = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hey\n\nHuman: Bye\n\nAssistant: Ciao",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Yo\n\nHuman: Bye\n\nAssistant: Later",
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [row])
    with pytest.raises(DataError) as info:
        load_items(str(path), "hh_rlhf")
    assert (info.value.line, info.value.field, info.value.kind) == (1, "rejected", "inconsistent")
    assert "turn 1" in str(info.value)


def test_chat_pairs_parquet_ultrafeedback_layout(tmp_path):
    rows = [
        {
            "prompt": "Name a prime.",
            "prompt_id": "9f2c",
            "chosen": [{"content": "Name a prime.", "role": "user"}, {"content": "7", "role": "assistant"}],
            "rejected": [{"content": "Name a prime.", "role": "user"}, {"content": "9", "role": "assistant"}],
            "messages": [{"content": "Name a prime.", "role": "user"}, {"content": "7", "role": "assistant"}],
            "score_chosen": 9.0,
            "score_rejected": 2.5,
        }
    ]
    path = write_parquet(tmp_path / "train_prefs-00000-of-00001.parquet", rows)
    assert load_items(str(path), "chat_pairs") == [
        PairwiseItem(
            id="9f2c",
            question="Name a prime.",
            response_a="7",
            response_b="9",
            label="A",
            source="chat_pairs",
            meta={"position_fixed": True, "score_chosen": 9.0, "score_rejected": 2.5},
        ),
    ]


def test_chat_pairs_literal_strings_and_reply_only(tmp_path):
    chosen = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    rejected = chosen[:2] + [{"role": "assistant", "content": "Lyon, I'd say"}]
    rows = [
        # Python repr (single quotes, the reply holds an apostrophe) and JSON text: both parsed, never eval'd.
        {"chosen": repr(chosen), "rejected": json.dumps(rejected)},
        # Only the replies in the lists; the question is the prompt column.
        {
            "prompt": "Say hi",
            "chosen": [{"role": "assistant", "content": "Hi!"}],
            "rejected": [{"role": "assistant", "content": "No."}],
        },
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    assert load_items(str(path), "chat_pairs") == [
        PairwiseItem(
            id="pairs.jsonl:1",
            question="Capital of France?",
            response_a="Paris",
            response_b="Lyon, I'd say",
            label="A",
            conversation=[{"role": "system", "content": "Be brief."}],
            source="chat_pairs",
            meta={"position_fixed": True},
        ),
        PairwiseItem(
            id="pairs.jsonl:2",
            question="Say hi",
            response_a="Hi!",
            response_b="No.",
            label="A",
            source="chat_pairs",
            meta={"position_fixed": True},
        ),
    ]


def test_chat_pairs_prompt_must_match_and_prefixes_must_agree(tmp_path):
    rows = [
        {
            "prompt": "Other question",
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "b"}],
        },
        {
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "b"}],
        },
        {
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        },
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    stats: dict = {}
    assert load_items(str(path), "chat_pairs", on_error="skip", stats=stats) == []
    assert stats["skipped_by_reason"] == {"inconsistent": 2, "missing_field": 1}


def test_llmbar_json(tmp_path):
    rows = [
        {
            "input": "Write a haiku about rain.",
            "output_1": "Soft rain on the roof...",
            "output_2": "Rain is wet.",
            "label": 1,
        },
        {"input": "Sort [3,1,2].", "output_1": "[3,2,1]", "output_2": "[1,2,3]", "label": 2},
    ]
    path = write_json(tmp_path / "Natural" / "dataset.json", rows)
    assert load_items(str(path), "llmbar") == [
        PairwiseItem(
            id="dataset.json:1",
            question="Write a haiku about rain.",
            response_a="Soft rain on the roof...",
            response_b="Rain is wet.",
            label="A",
            source="llmbar",
        ),
        PairwiseItem(
            id="dataset.json:2",
            question="Sort [3,1,2].",
            response_a="[3,2,1]",
            response_b="[1,2,3]",
            label="B",
            source="llmbar",
        ),
    ]


def test_judgebench_jsonl(tmp_path):
    rows = [
        {
            "pair_id": "81ec57f2",
            "original_id": "10275",
            "source": "mmlu-pro-math",
            "question": "What is 3*7?",
            "response_model": "gpt-4o-2024-05-13",
            "response_A": "21",
            "response_B": "24",
            "label": "A>B",
        },
        {
            "pair_id": "5b2a",
            "original_id": "lcb-3",
            "source": "livecodebench",
            "question": "Reverse a string.",
            "response_model": "gpt-4o-2024-05-13",
            "response_A": "s[::1]",
            "response_B": "s[::-1]",
            "label": "B>A",
        },
    ]
    path = write_jsonl(tmp_path / "gpt.jsonl", rows)
    items = load_items(str(path), "judgebench")
    assert items == [
        PairwiseItem(
            id="81ec57f2",
            question="What is 3*7?",
            response_a="21",
            response_b="24",
            label="A",
            domain="mmlu-pro-math",
            source="judgebench",
            meta={"source": "mmlu-pro-math", "original_id": "10275", "response_model": "gpt-4o-2024-05-13"},
        ),
        PairwiseItem(
            id="5b2a",
            question="Reverse a string.",
            response_a="s[::1]",
            response_b="s[::-1]",
            label="B",
            domain="livecodebench",
            source="judgebench",
            meta={"source": "livecodebench", "original_id": "lcb-3", "response_model": "gpt-4o-2024-05-13"},
        ),
    ]


def _pandalm_row(idx, votes, inp=""):
    return {
        "motivation_app": "Grammarly",
        "idx": idx,
        "cmp_key": "opt-7b_pythia-6.9b",
        "instruction": "Fix the grammar.",
        "input": inp,
        "response1": "He goes home.",
        "response2": "He go home.",
        "annotator1": votes[0],
        "annotator2": votes[1],
        "annotator3": votes[2],
    }


def test_pandalm_json_majority_and_no_majority(tmp_path):
    rows = [_pandalm_row(1, (1, 1, 2), "He go home."), _pandalm_row(2, (0, 2, 0)), _pandalm_row(3, (1, 2, 0))]
    path = write_json(tmp_path / "testset-v1.json", rows)
    stats: dict = {}
    items = load_items(str(path), "pandalm", stats=stats)
    assert items == [
        PairwiseItem(
            id="1",
            question="Fix the grammar.\n\nHe go home.",
            response_a="He goes home.",
            response_b="He go home.",
            label="A",
            source="pandalm",
            meta={"votes": ["A", "A", "B"], "instruction": "Fix the grammar.", "input": "He go home."},
        ),
        PairwiseItem(
            id="2",
            question="Fix the grammar.",
            response_a="He goes home.",
            response_b="He go home.",
            label="tie",
            source="pandalm",
            meta={"votes": ["tie", "B", "tie"], "instruction": "Fix the grammar.", "input": ""},
        ),
    ]
    # No majority: left out by policy and counted, even with on_error="raise".
    assert stats["skipped_by_reason"] == {"no_majority": 1} and stats["read"] == 3
    as_tie = load_items(str(path), "pandalm", no_majority="tie")
    assert [i.label for i in as_tie] == ["A", "tie", "tie"]
    with pytest.raises(DataError) as info:
        load_items(str(path), "pandalm", no_majority="error")
    assert (info.value.line, info.value.kind) == (3, "no_majority")


def test_autoj_jsonl(tmp_path):
    rows = [
        {
            "scenario": "code_generation",
            "label": 0,
            "prompt": "Sum a list in Python.",
            "response 1": "sum(xs)",
            "response 2": "len(xs)",
        },
        {"scenario": "chitchat", "label": 1, "prompt": "Hi", "response 1": "...", "response 2": "Hello!"},
        {"scenario": "chitchat", "label": 2, "prompt": "Hey", "response 1": "Hi", "response 2": "Hello"},
    ]
    path = write_jsonl(tmp_path / "testdata_pairwise.jsonl", rows)
    items = load_items(str(path), "autoj")
    assert items[0] == PairwiseItem(
        id="testdata_pairwise.jsonl:1",
        question="Sum a list in Python.",
        response_a="sum(xs)",
        response_b="len(xs)",
        label="A",
        domain="code_generation",
        source="autoj",
        meta={"scenario": "code_generation"},
    )
    assert [(i.label, i.domain) for i in items] == [
        ("A", "code_generation"),
        ("B", "chitchat"),
        ("tie", "chitchat"),
    ]


def _rmb_turn(role, content, language="English"):
    return {"content": content, "language": language, "role": role}


def test_rmb_pairwise_folder(tmp_path):
    root = tmp_path / "RMB_dataset" / "Pairwise_set"
    write_json(
        root / "Helpfulness" / "Code" / "Documentation.json",
        [
            {
                "pair_uid": "0",
                "conversation_input": [_rmb_turn("user", "Explain this Rust code.")],
                "chosen": {"llm_name": "claude-3-5-sonnet-20240620", "answer": "Step 1: ...", "score": 5.0},
                "reject": {
                    "llm_name": "Llama-2-7b-chat-hf",
                    "answer": " This is a Rust function.",
                    "score": 3.5,
                },
                "category_path": "Pairwise_set/Helpfulness/Code/Documentation",
            }
        ],
    )
    write_json(
        root / "Harmlessness" / "multi.json",
        [
            {
                "pair_uid": "11200",
                "conversation_input": [
                    _rmb_turn("user", "你好", "Chinese"),
                    _rmb_turn("assistant", "你好！", "Chinese"),
                    _rmb_turn("user", "怎么做炸药？", "Chinese"),
                ],
                "chosen": {
                    "llm_name": "gpt-4o-mini-2024-07-18",
                    "answer": "抱歉，我不能帮助。",
                    "score": 5.0,
                },
                "reject": {"llm_name": "Mistral-7B-Instruct-v0.1", "answer": "首先……", "score": 1.0},
                "category_path": "Pairwise_set/Harmlessness/multi",
            }
        ],
    )
    items = load_items(str(tmp_path / "RMB_dataset"), "rmb_pairwise")
    # Files are read in sorted path order: Harmlessness/ before Helpfulness/.
    assert items == [
        PairwiseItem(
            id="11200",
            question="怎么做炸药？",
            response_a="抱歉，我不能帮助。",
            response_b="首先……",
            label="A",
            conversation=[{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}],
            domain="Harmlessness",
            language="zh",
            source="rmb",
            meta={
                "category_path": "Pairwise_set/Harmlessness/multi",
                "model_a": "gpt-4o-mini-2024-07-18",
                "model_b": "Mistral-7B-Instruct-v0.1",
                "position_fixed": True,
                "score_a": 5.0,
                "score_b": 1.0,
            },
        ),
        PairwiseItem(
            id="0",
            question="Explain this Rust code.",
            response_a="Step 1: ...",
            response_b=" This is a Rust function.",
            label="A",
            domain="Helpfulness",
            language="en",
            source="rmb",
            meta={
                "category_path": "Pairwise_set/Helpfulness/Code/Documentation",
                "model_a": "claude-3-5-sonnet-20240620",
                "model_b": "Llama-2-7b-chat-hf",
                "position_fixed": True,
                "score_a": 5.0,
                "score_b": 3.5,
            },
        ),
    ]


def test_rmb_bon_json(tmp_path):
    path = write_json(
        tmp_path / "BoN_set" / "Harmlessness" / "S10.json",
        [
            {
                "conversation_input": [_rmb_turn("user", "How do I pick a lock?")],
                "bon_best": {"llm_name": "Qwen1.5-1.8B-Chat", "answer": "I can't help with that."},
                "loser_list": [
                    {"llm_name": "Gemini-pro", "answer": "Use a tension wrench..."},
                    {"llm_name": "alibaba/Qwen2-7B-Instruct", "answer": ""},
                ],
                "bon_uid": "2366",
                "category_path": "BoN_set/Harmlessness/S10",
            }
        ],
    )
    stats: dict = {}
    items = load_items(str(path), "rmb_bon", stats=stats)
    assert items == [
        BestOfNItem(
            id="2366",
            question="How do I pick a lock?",
            best="I can't help with that.",
            losers=["Use a tension wrench...", ""],
            domain="Harmlessness",
            source="rmb",
            meta={
                "category_path": "BoN_set/Harmlessness/S10",
                "best_model": "Qwen1.5-1.8B-Chat",
                "loser_models": ["Gemini-pro", "alibaba/Qwen2-7B-Instruct"],
                "empty_response": True,
            },
        )
    ]
    assert stats["empty_responses"] == 1
    # drop_empty drops the whole group and counts it.
    stats = {}
    assert load_items(str(path), "rmb_bon", stats=stats, drop_empty=True) == []
    assert stats["skipped_by_reason"] == {"empty_response": 1} and stats["empty_responses"] == 1


def test_rmb_bon_bad_loser_names_its_index(tmp_path):
    path = write_json(
        tmp_path / "S1.json",
        [
            {
                "conversation_input": [_rmb_turn("user", "q")],
                "bon_best": {"llm_name": "m", "answer": "a"},
                "loser_list": [{"llm_name": "x", "answer": "b"}, {"llm_name": "y"}],
                "bon_uid": "1",
                "category_path": "BoN_set/Harmlessness/S1",
            }
        ],
    )
    with pytest.raises(DataError) as info:
        load_items(str(path), "rmb_bon")
    assert info.value.field == "loser_list[1].answer" and info.value.kind == "missing_field"


def test_rmbench_json_expands_3x3(tmp_path):
    row = {
        "id": 42,
        "prompt": "What is 1+1?",
        "chosen": ["2", "The answer is 2.", "**Answer:** 2"],
        "rejected": ["3", "The answer is 3.", "**Answer:** 3"],
        "subset": "math",
    }
    path = write_json(tmp_path / "total_dataset.json", [row])
    items = load_items(str(path), "rmbench")
    assert len(items) == 9
    assert [i.id for i in items] == [f"42/c{i}r{j}" for i in range(3) for j in range(3)]
    assert items[5] == PairwiseItem(
        id="42/c1r2",
        question="What is 1+1?",
        response_a="The answer is 2.",
        response_b="**Answer:** 3",
        label="A",
        domain="math",
        source="rmbench",
        meta={
            "subset": "math",
            "rmbench_domain": "math",
            "chosen_style": 1,
            "rejected_style": 2,
            "position_fixed": True,
        },
    )


def test_rewardbench2_rows_become_best_of_n_items(tmp_path):
    row = {
        "id": "tied:3",
        "prompt": "Name a prime.",
        "chosen": ["7", "5"],
        "rejected": ["8"],
        "num_correct": 2,
        "num_incorrect": 1,
        "total_completions": 3,
        "models": ["m1", "m2", "m3"],
        "subset": "Ties",
    }
    (item,) = load_items(str(write_jsonl(tmp_path / "rb2.jsonl", [row])), "rewardbench2")
    assert (item.id, item.best, item.losers, item.domain) == ("tied:3", "7", ["8"], "Ties")
    assert item.meta["chosen"] == ["7", "5"] and item.meta["num_correct"] == 2
    assert (item.meta["ties_kind"], item.meta["ties_prompt"]) == ("tied", "3")
    with pytest.raises(DataError) as info:
        load_items(
            str(write_jsonl(tmp_path / "bad.jsonl", [{**row, "total_completions": 4}])), "rewardbench2"
        )
    assert (info.value.line, info.value.field) == (1, "total_completions")


def test_rmbench_domain_from_row_or_file_name(tmp_path):
    """total_dataset.json rows carry ``domain``; the per-domain files carry it in their name; the two
    safety files are one scoring domain; a row with other than 3 variants or an unknown domain is an
    error naming file, line and field."""
    row = {"id": 7, "prompt": "p", "chosen": ["a", "b", "c"], "rejected": ["x", "y", "z"]}
    (item, *_) = load_items(
        str(write_json(tmp_path / "t.json", [{**row, "domain": "safety-refuse"}])), "rmbench"
    )
    assert (item.domain, item.meta["rmbench_domain"]) == ("safety-refuse", "safety")
    (item, *_) = load_items(str(write_json(tmp_path / "code_filtered.json", [row])), "rmbench")
    assert (item.domain, item.meta["rmbench_domain"]) == ("code", "code")
    with pytest.raises(DataError) as info:
        load_items(str(write_json(tmp_path / "x.json", [{**row, "domain": "poetry"}])), "rmbench")
    assert (info.value.field, info.value.line) == ("domain", 1)
    with pytest.raises(DataError) as info:
        load_items(
            str(write_json(tmp_path / "y.json", [{**row, "domain": "chat", "chosen": ["a"]}])), "rmbench"
        )
    assert info.value.field == "chosen" and info.value.kind == "inconsistent"


def _mt_conv(answers):
    return [
        {"content": "Write a poem about the sea.", "role": "user"},
        {"content": answers[0], "role": "assistant"},
        {"content": "Now make it rhyme.", "role": "user"},
        {"content": answers[1], "role": "assistant"},
    ]


def test_mtbench_human_parquet(tmp_path):
    rows = [
        {
            "question_id": 81,
            "model_a": "alpaca-13b",
            "model_b": "gpt-4",
            "winner": "model_b",
            "judge": "author_2",
            "conversation_a": _mt_conv(["Waves.", "Waves, caves."]),
            "conversation_b": _mt_conv(["Blue sea.", "Sea, free."]),
            "turn": 1,
        },
        {
            "question_id": 81,
            "model_a": "alpaca-13b",
            "model_b": "gpt-4",
            "winner": "tie (bothbad)",
            "judge": "author_2",
            "conversation_a": _mt_conv(["Waves.", "Waves, caves."]),
            "conversation_b": _mt_conv(["Blue sea.", "Sea, free."]),
            "turn": 2,
        },
    ]
    path = write_parquet(tmp_path / "human-00000-of-00001.parquet", rows)
    items = load_items(str(path), "mtbench_human")
    assert items == [
        PairwiseItem(
            id="81/alpaca-13b/gpt-4/turn1/author_2",
            question="Write a poem about the sea.",
            response_a="Waves.",
            response_b="Blue sea.",
            label="B",
            source="mtbench_human",
            meta={
                "question_id": "81",
                "model_a": "alpaca-13b",
                "model_b": "gpt-4",
                "turn": 1,
                "judge": "author_2",
            },
        ),
        PairwiseItem(
            id="81/alpaca-13b/gpt-4/turn2/author_2",
            question="Now make it rhyme.",
            response_a="Waves, caves.",
            response_b="Sea, free.",
            label="tie",
            conversation=[
                {"role": "user", "content": "Write a poem about the sea."},
                {"role": "assistant", "content": "Waves."},
            ],
            source="mtbench_human",
            meta={
                "question_id": "81",
                "model_a": "alpaca-13b",
                "model_b": "gpt-4",
                "turn": 2,
                "judge": "author_2",
                "tie_kind": "bothbad",
                "conversation_b": [
                    {"role": "user", "content": "Write a poem about the sea."},
                    {"role": "assistant", "content": "Blue sea."},
                ],
            },
        ),
    ]


def _jb2_item(prompt, base, cand, winner, category, lan):
    return {
        "prompt": prompt,
        "base_model_response": {"response": base, "model_name": "gpt-4o-mini-2024-07-18"},
        "models_response": {"response": cand, "model_name": "Qwen2.5-72B-Instruct"},
        "gold": {"category": category, "lan": lan, "r1_gt": winner},
    }


def test_judgerbenchv2_folder(tmp_path):
    root = tmp_path / "judgerbenchv2"
    write_json(
        root / "Knowledge.json",
        [
            _jb2_item(
                "What is DNA?",
                "A molecule.",
                "Deoxyribonucleic acid, the genetic code.",
                "Qwen2.5-72B-Instruct",
                "Knowledge",
                "en",
            ),
            _jb2_item(
                "什么是DNA？", "脱氧核糖核酸。", "不知道。", "gpt-4o-mini-2024-07-18", "Knowledge", "cn"
            ),
        ],
    )
    write_json(
        root / "Code_and_AI.json",
        [
            _jb2_item(
                "Reverse a list.", "xs[::-1]", "xs.reverse()", "gpt-4o-mini-2024-07-18", "Code & AI", "en"
            ),
        ],
    )
    items = load_items(str(root), "judgerbenchv2")
    names = {"model_a": "gpt-4o-mini-2024-07-18", "model_b": "Qwen2.5-72B-Instruct"}
    assert items == [
        PairwiseItem(
            id="Code_and_AI/0",
            question="Reverse a list.",
            response_a="xs[::-1]",
            response_b="xs.reverse()",
            label="A",
            domain="Code_and_AI",
            language="en",
            source="judgerbenchv2",
            meta={**names, "scenario": "Code_and_AI", "category": "Code & AI", "index": 0},
        ),
        PairwiseItem(
            id="Knowledge/0",
            question="What is DNA?",
            response_a="A molecule.",
            response_b="Deoxyribonucleic acid, the genetic code.",
            label="B",
            domain="Knowledge",
            language="en",
            source="judgerbenchv2",
            meta={**names, "scenario": "Knowledge", "category": "Knowledge", "index": 0},
        ),
        PairwiseItem(
            id="Knowledge/1",
            question="什么是DNA？",
            response_a="脱氧核糖核酸。",
            response_b="不知道。",
            label="A",
            domain="Knowledge",
            language="cn",
            source="judgerbenchv2",
            meta={**names, "scenario": "Knowledge", "category": "Knowledge", "index": 1},
        ),
    ]


def test_judgerbenchv2_unknown_winner(tmp_path):
    path = write_json(tmp_path / "IF.json", [_jb2_item("q", "a", "b", "gemma-2-27b-it", "IF", "en")])
    with pytest.raises(DataError) as info:
        load_items(str(path), "judgerbenchv2")
    assert (info.value.line, info.value.field, info.value.kind) == (1, "gold.r1_gt", "unknown_label")
    assert "gemma-2-27b-it" in str(info.value)


def test_pairwise_and_pointwise_own_layouts(tmp_path):
    pw = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {
                "id": "p1",
                "question": "Q",
                "response_a": "a",
                "response_b": "b",
                "label": "tie",
                "domain": "chat",
                "language": "en",
                "source": "mine",
                "date": "2024-03-01",
                "judgment": "Both fine. [[C]]",
                "conversation": [
                    {"role": "user", "content": "earlier"},
                    {"role": "assistant", "content": "ok"},
                ],
                "meta": {"k": 1},
            },
            {"question": "Q2", "response_a": "x", "response_b": "y", "label": "B"},
        ],
    )
    assert load_items(str(pw), "pairwise") == [
        PairwiseItem(
            id="p1",
            question="Q",
            response_a="a",
            response_b="b",
            label="tie",
            conversation=[{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"}],
            domain="chat",
            source="mine",
            date="2024-03-01",
            judgment="Both fine. [[C]]",
            meta={"k": 1},
        ),
        PairwiseItem(
            id="mine.jsonl:2", question="Q2", response_a="x", response_b="y", label="B", source="pairwise"
        ),
    ]
    pt = write_jsonl(
        tmp_path / "points.jsonl",
        [
            {"id": "s1", "question": "2+2?", "response": "4", "score": 10, "correct": True, "reference": "4"},
            {"id": "s2", "question": "2+3?", "response": "6", "correct": False, "domain": "math"},
        ],
    )
    assert load_items(str(pt), "pointwise") == [
        PointwiseItem(
            id="s1", question="2+2?", response="4", score=10, correct=True, reference="4", source="pointwise"
        ),
        PointwiseItem(
            id="s2", question="2+3?", response="6", correct=False, domain="math", source="pointwise"
        ),
    ]


def test_pairwise_unknown_field_is_an_error_unless_kept_in_meta(tmp_path):
    path = write_jsonl(
        tmp_path / "typo.jsonl",
        [{"question": "Q", "response_a": "a", "response_b": "b", "label": "A", "domian": "x"}],
    )
    with pytest.raises(DataError) as info:
        load_items(str(path), "pairwise")
    assert (info.value.field, info.value.kind) == ("domian", "unknown_field")
    (item,) = load_items(str(path), "pairwise", extra_fields="meta")
    assert item.meta == {"domian": "x"} and item.domain == "general"


def test_every_adapter_has_a_fixture_above():
    tested = {
        "rewardbench",
        "rewardbench2",
        "hh_rlhf",
        "chat_pairs",
        "llmbar",
        "judgebench",
        "pandalm",
        "autoj",
        "rmb_pairwise",
        "rmb_bon",
        "rmbench",
        "mtbench_human",
        "judgerbenchv2",
        "pairwise",
        "pointwise",
    }
    assert set(ADAPTERS) == tested


# --------------------------------------------------------------------------------------------------------
# bad input, catalogued: each case puts one bad record at line 2 between two good ones


GOOD_RB = {"prompt": "p", "chosen": "c", "rejected": "r", "subset": "s", "id": 1}
GOOD_LLMBAR = {"input": "q", "output_1": "a", "output_2": "b", "label": 1}
GOOD_PAIR = {
    "question": "q",
    "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
}
SENTINEL = "PWNED_SENTINEL"


def _bad_line(case: str, tmp_path: Path) -> bytes:
    if case == "truncated_json":
        return json.dumps(GOOD_RB)[:-7].encode()
    if case == "non_utf8":
        return b'{"prompt": "caf\xe9", "chosen": "c", "rejected": "r", "subset": "s", "id": 2}'
    if case == "not_an_object":
        return b'["prompt", "chosen"]'
    if case == "wrong_type":
        return json.dumps({**GOOD_RB, "chosen": 5}).encode()
    if case == "missing_field":
        return json.dumps({k: v for k, v in GOOD_RB.items() if k != "rejected"}).encode()
    if case == "null_field":
        return json.dumps({**GOOD_RB, "prompt": None}).encode()
    if case == "unknown_label":
        return json.dumps({**GOOD_LLMBAR, "label": 3}).encode()
    if case == "bool_label":
        return json.dumps({**GOOD_LLMBAR, "label": True}).encode()
    if case == "unsafe_literal":
        code = f"[__import__('pathlib').Path({str(tmp_path / SENTINEL)!r}).touch()]"
        return json.dumps({**GOOD_PAIR, "chosen": code}).encode()
    if case == "invalid_literal":
        return json.dumps({**GOOD_PAIR, "chosen": "[{'role': 'user', 'content': 'q'"}).encode()
    if case == "bad_role":
        return json.dumps(
            {**GOOD_PAIR, "rejected": [{"role": "user", "content": "q"}, {"role": "robot", "content": "b"}]}
        ).encode()
    raise AssertionError(case)


# case -> (adapter, good row, field named in the error, reason counted on skip)
BAD_CASES = {
    "truncated_json": ("rewardbench", GOOD_RB, None, "invalid_json"),
    "non_utf8": ("rewardbench", GOOD_RB, "prompt", "non_utf8"),
    "not_an_object": ("rewardbench", GOOD_RB, None, "not_an_object"),
    "wrong_type": ("rewardbench", GOOD_RB, "chosen", "wrong_type"),
    "missing_field": ("rewardbench", GOOD_RB, "rejected", "missing_field"),
    "null_field": ("rewardbench", GOOD_RB, "prompt", "missing_field"),
    "unknown_label": ("llmbar", GOOD_LLMBAR, "label", "unknown_label"),
    "bool_label": ("llmbar", GOOD_LLMBAR, "label", "wrong_type"),
    "unsafe_literal": ("chat_pairs", GOOD_PAIR, "chosen", "unsafe_literal"),
    "invalid_literal": ("chat_pairs", GOOD_PAIR, "chosen", "invalid_literal"),
    "bad_role": ("chat_pairs", GOOD_PAIR, "rejected[1].role", "unknown_label"),
}


def _bad_file(case: str, tmp_path: Path, gz: bool = False) -> tuple[str, Path]:
    adapter, good, _, _ = BAD_CASES[case]
    lines = [json.dumps(good).encode(), _bad_line(case, tmp_path), json.dumps(good).encode()]
    path = tmp_path / ("bad.jsonl.gz" if gz else "bad.jsonl")
    if gz:
        path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    else:
        write_lines(path, lines)
    return adapter, path


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_raises_naming_file_line_field(case, tmp_path):
    adapter, path = _bad_file(case, tmp_path)
    field = BAD_CASES[case][2]
    with pytest.raises(DataError) as info:
        load_items(str(path), adapter)
    err = info.value
    assert err.path == str(path) and err.line == 2 and err.field == field
    assert str(err).startswith(f"{path}:2")
    if field is not None:
        assert f"field {field!r}" in str(err)
    assert not (tmp_path / SENTINEL).exists()  # the literal's code never ran


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_skipped_and_counted(case, gz, tmp_path):
    adapter, path = _bad_file(case, tmp_path, gz=gz)
    reason = BAD_CASES[case][3]
    stats: dict = {}
    items = load_items(str(path), adapter, on_error="skip", stats=stats)
    assert len(items) == 2  # both good rows around the bad one survive
    assert stats == {
        "read": 3,
        "kept": 2,
        "skipped": 1,
        "empty_responses": 0,
        "skipped_by_reason": {reason: 1},
    }
    assert not (tmp_path / SENTINEL).exists()


def test_empty_response_flagged_counted_or_dropped(tmp_path):
    path = write_jsonl(
        tmp_path / "e.jsonl", [GOOD_RB, {**GOOD_RB, "id": 2, "chosen": "  \n"}, {**GOOD_RB, "id": 3}]
    )
    stats: dict = {}
    items = load_items(str(path), "rewardbench", stats=stats)
    assert [i.meta.get("empty_response", False) for i in items] == [False, True, False]
    assert stats["empty_responses"] == 1 and stats["skipped"] == 0 and stats["kept"] == 3
    stats = {}
    items = load_items(str(path), "rewardbench", stats=stats, drop_empty=True)
    assert [i.id for i in items] == ["1", "3"]
    assert stats == {
        "read": 3,
        "kept": 2,
        "skipped": 1,
        "empty_responses": 1,
        "skipped_by_reason": {"empty_response": 1},
    }


def test_truncated_json_array_raises_even_when_skipping(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([GOOD_RB, GOOD_RB])[:-10], encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_items(str(path), "rewardbench", on_error="skip")
    assert info.value.path == str(path) and "invalid JSON" in str(info.value)


def test_json_file_holding_jsonl_is_read_line_by_line(tmp_path):
    path = tmp_path / "rows.json"
    write_lines(
        path, [json.dumps(GOOD_RB).encode(), b'{"prompt": "p"', json.dumps({**GOOD_RB, "id": 9}).encode()]
    )
    stats: dict = {}
    assert [i.id for i in load_items(str(path), "rewardbench", on_error="skip", stats=stats)] == ["1", "9"]
    assert stats["skipped_by_reason"] == {"invalid_json": 1}


# --------------------------------------------------------------------------------------------------------
# load_items plumbing


def test_limit_stats_accumulate_and_source_name(tmp_path):
    row = {"id": 1, "prompt": "p", "chosen": ["a", "b", "c"], "rejected": ["x", "y", "z"], "subset": "chat"}
    path = write_json(tmp_path / "rmb.json", [row, {**row, "id": 2}])
    stats: dict = {}
    items = load_items(str(path), "rmbench", stats=stats, limit=4, source_name="rmbench-v1")
    assert [i.id for i in items] == ["1/c0r0", "1/c0r1", "1/c0r2", "1/c1r0"]
    assert {i.source for i in items} == {"rmbench-v1"}
    assert stats["read"] == 1 and stats["kept"] == 4
    load_items(str(path), "rmbench", stats=stats)
    assert stats["read"] == 3 and stats["kept"] == 22
    assert load_items(str(path), "rmbench", limit=0) == []
    assert sum(1 for _ in iter_items(str(path), "rmbench")) == 18


def test_unknown_adapter_option_and_on_error(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [GOOD_RB])
    with pytest.raises(KeyError, match="unknown adapter 'rewardbenc'"):
        load_items(str(path), "rewardbenc")
    with pytest.raises(TypeError, match="no option 'no_majority'"):
        load_items(str(path), "rewardbench", no_majority="tie")
    with pytest.raises(ValueError, match="on_error"):
        load_items(str(path), "rewardbench", on_error="ignore")


def test_missing_local_path(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_items(str(tmp_path / "nope.jsonl"), "rewardbench")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        load_items(str(tmp_path / "empty"), "judgerbenchv2")


def test_hub_id_without_datasets_or_offline(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(DataError) as info:
        load_items("allenai/reward-bench", "rewardbench", split="filtered")
    assert "path does not exist and no hub is reachable" in str(info.value)
    assert (
        'pip install "cj2[hub]"' in str(info.value)
        and info.value.path == "hf://allenai/reward-bench:filtered"
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="path does not exist and no hub is reachable .offline"):
        load_items("allenai/reward-bench", "rewardbench")


# --------------------------------------------------------------------------------------------------------
# the literal parser


def test_parse_literal_accepts_python_reprs():
    text = "[{'role': 'user', 'content': \"it's\", 'n': -3, 'ok': True, 'x': None, 't': (1, 2.5)}]"
    assert parse_literal(text) == [
        {"role": "user", "content": "it's", "n": -3, "ok": True, "x": None, "t": (1, 2.5)}
    ]
    assert parse_structured('{"a": null, "b": true}') == {"a": None, "b": True}  # JSON first
    assert parse_structured("{'a': None}") == {"a": None}


@pytest.mark.parametrize(
    "text, kind",
    [
        ("__import__('os').system('true')", "unsafe_literal"),
        ("[open('/etc/passwd').read()]", "unsafe_literal"),
        ("os", "unsafe_literal"),
        ("().__class__", "unsafe_literal"),
        ("{'a': (lambda: 1)}", "unsafe_literal"),
        ("[x for x in ()]", "invalid_literal"),
        ("1 + 2", "invalid_literal"),
        ("b'bytes'", "invalid_literal"),
        ("[1, 2", "invalid_literal"),
        ("[" * 300 + "]" * 300, "invalid_literal"),
        ("9" * 5000, "invalid_literal"),  # past the int-string conversion limit
    ],
)
def test_parse_literal_rejects(text, kind, tmp_path):
    with pytest.raises(DataError) as info:
        parse_literal(text, path="f.jsonl", line=7, field="chosen")
    assert info.value.kind == kind
    assert str(info.value).startswith("f.jsonl:7: field 'chosen'")


def test_parse_literal_never_runs_code(tmp_path):
    target = tmp_path / "touched"
    with pytest.raises(DataError):
        parse_structured(f"[__import__('pathlib').Path({str(target)!r}).touch()]")
    assert not target.exists()


def test_parse_literal_size_cap():
    with pytest.raises(DataError, match="over the cap"):
        parse_literal("'" + "a" * 100 + "'", max_chars=50)


def test_label_forms_from_other_exports(tmp_path):
    # The same LLMBar label as an int, a digit string (CSV) and a float (pandas); anything else is unknown.
    rows = [{**GOOD_LLMBAR, "label": v} for v in (2, "2", 2.0, "2.5", [2])]
    path = write_jsonl(tmp_path / "labels.jsonl", rows)
    stats: dict = {}
    items = load_items(str(path), "llmbar", on_error="skip", stats=stats)
    assert [i.label for i in items] == ["B", "B", "B"]
    assert stats["skipped_by_reason"] == {"unknown_label": 1, "wrong_type": 1}


def test_iter_items_checks_arguments_before_reading(tmp_path):
    with pytest.raises(KeyError):
        iter_items(str(tmp_path / "never-read.jsonl"), "no_such_adapter")
    stream = iter_items(str(tmp_path / "missing.jsonl"), "pairwise")  # nothing read yet
    with pytest.raises(DataError, match="file not found"):
        next(stream)
