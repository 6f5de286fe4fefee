"""experiments/knowledge/closed_book_rows.py: closed-book CE rows of training-split questions."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from cj2.data.records import iter_train_records
from cj2.data.tasks.generate import generate_items
from cj2.evaluation.faithfulness import check_truth, reference_of
from cj2.generation.scripted import ScriptedSampler

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "knowledge" / "closed_book_rows.py"
_spec = importlib.util.spec_from_file_location("closed_book_rows", _PATH)
rows_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rows_mod)


@pytest.fixture(scope="module")
def items():
    return generate_items(400, split="train", seed=3, tiers=["easy"])


def test_computed_rows_state_the_truth_of_training_questions_once(items):
    kept, skipped = rows_mod.unique_questions(items, {"compare": 5, "reading": 0})
    rows, rejected = rows_mod.computed_rows(kept)
    assert rows and len(rows) + rejected["reader_rejects"] == len(kept)
    assert sum(skipped.values()) + len(kept) == len(items)  # every item kept or counted
    assert skipped["n_not_a_value"] > 0  # instruction following: a constraint, nothing to state
    assert skipped["over_cap"] > 0
    fams = [r["meta"]["family"] for r in rows]
    assert fams.count("compare") == 5 and "reading" not in fams and "instructions" not in fams
    questions = [r["messages"][0]["content"] for r in rows]
    assert len(set(questions)) == len(questions)
    by_id = {f"closed_book_skill/{it.id}": it for it in kept}
    for r in rows:
        it = by_id[r["id"]]
        assert it.meta["split"] == "train"
        assert r["messages"] == [{"role": "user", "content": it.question}]  # no candidate in view
        ok, why = check_truth(r["response"], reference_of(it))
        assert ok, (r["response"], why)  # the faithfulness reader accepts the stated truth
        assert not r["response"][0].islower() and r["response"].endswith(".")


def test_rows_load_as_ce_only_training_records(items, tmp_path):
    kept, _ = rows_mod.unique_questions(items[:40], {})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows_mod.computed_rows(kept)[0]))
    recs = [rec for _, rec in iter_train_records(path)]
    assert len(recs) == len(rows_mod.computed_rows(kept)[0]) > 0
    assert all(r.verdict is None and r.format == "none" for r in recs)


def test_own_rows_keep_only_answers_the_reader_finds_right(items):
    kept, _ = rows_mod.unique_questions(items, {"reading": 0})
    kept = [it for it in kept if it.meta["family"] in ("small_arithmetic", "compare")][:6]
    right, wrong = kept[:4], kept[4:]
    script = {str(it.id): [rows_mod.computed_answer(it)] for it in right}
    script |= {str(it.id): [f"It is {it.meta['wrong_value']}."] for it in wrong}
    out, counts = rows_mod.own_rows(ScriptedSampler(script), kept, "\nAnswer briefly.")
    assert [r["id"] for r in out] == [f"closed_book_replay/{it.id}" for it in right]
    assert counts["wrong"] == 2
    assert out[0]["messages"][0]["content"].endswith("\nAnswer briefly.")


def test_a_computed_answer_the_reader_rejects_is_counted_not_written(items):
    kept, _ = rows_mod.unique_questions(items, {})
    one = next(it for it in kept if it.meta["family"] == "compare")
    broken = dataclasses.replace(one, id="broken", meta={**one.meta, "check": {"work": ["no idea"]}})
    rows, rejected = rows_mod.computed_rows([one, broken])
    assert [r["id"] for r in rows] == [f"closed_book_skill/{one.id}"] and rejected["reader_rejects"] == 1


def test_cap_must_name_a_count_and_a_training_family():
    with pytest.raises(SystemExit, match="FAMILY=N"):
        rows_mod._caps(["compare"], ["compare"])
    with pytest.raises(SystemExit, match="no training family 'compares'"):
        rows_mod._caps(["compares=3"], ["compare"])
    assert rows_mod._caps(["compare=3"], ["compare"]) == {"compare": 3}
