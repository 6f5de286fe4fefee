"""Rejection sampling with faithfulness: the spurious status, filter=outcome|faithful, adaptive drawing."""

from __future__ import annotations

import json

import pytest

from cj2.curation.prompts import build_prompts
from cj2.curation.rejection import Adaptive, filter_candidates, rejection_sample
from cj2.curation.settings import RejectionSettings
from cj2.data.tasks import build_judgment, generate_items
from cj2.generation import SamplingParams
from cj2.generation.simulated import SimulatedTeacher

SIM = {"backend": "simulated"}


def _prompts(n=16):
    return build_prompts(generate_items(n, seed=0, tiers=["easy"]), ["cj2_check"], seed=0)


def test_spurious_is_checked_after_pass_and_only_with_a_computed_truth():
    item = generate_items(2, seed=0, tiers=["easy"])[0]
    sound = build_judgment(item, "cj2_check")
    slipped = json.loads(sound)
    slipped["Truth"] = "The answer is " + item.meta["wrong_value"] + "."  # a right verdict, wrong truth
    slipped = json.dumps(slipped)
    wrong = build_judgment(item, "cj2_check", verdict="A" if item.label == "B" else "B")
    samples = [(sound, "stop"), (slipped, "stop"), (wrong, "stop"), (slipped, "stop")]
    got = [c.status for c in filter_candidates(samples, item.label, "cj2_choice", item)]
    assert got == ["pass", "spurious", "wrong", "duplicate"]
    # without the item (data without a computed truth) the same texts are outcome-only
    got = [c.status for c in filter_candidates(samples, item.label, "cj2_choice")]
    assert got == ["pass", "pass", "wrong", "duplicate"]


def test_faithful_filter_drops_spurious_candidates_and_counts_them(tmp_path):
    prompts = _prompts()
    draws = rejection_sample(
        prompts,
        SimulatedTeacher(p_flawed_given_correct=0.5),
        SamplingParams(seed=1),
        draws=4,
        folder_root=tmp_path,
        generator_config={**SIM, "p_flawed_given_correct": 0.5},
    )
    outcome, faithful = draws.select(4), draws.select(4, filter="faithful")
    st = outcome.stats
    assert st["status"]["spurious"] > 0 and st["filter"] == "outcome"
    assert st["spurious_share"] == st["status"]["spurious"] / (
        st["status"]["pass"] + st["status"]["spurious"]
    )
    assert st["kept"] == st["status"]["pass"] + st["status"]["spurious"] and st["kept_spurious"] > 0
    assert faithful.stats["kept"] == st["status"]["pass"] and faithful.stats["kept_spurious"] == 0
    assert {r.id for r in faithful.records} < {r.id for r in outcome.records}
    assert all(r.meta["status"] == "pass" for r in faithful.records)
    # every spurious candidate is one the simulated teacher wrote with a flawed check
    rows = [r for rs in draws.rows.values() for r in rs if r["status"] == "spurious"]
    assert rows and all(r["meta"]["flawed"] for r in rows)
    with pytest.raises(ValueError, match="filter"):
        draws.select(4, filter="strict")


def test_adaptive_drawing_stops_early_counts_saved_draws_and_drops_easy_prompts(tmp_path):
    prompts = _prompts()
    teacher = SimulatedTeacher()
    full = rejection_sample(
        prompts, teacher, SamplingParams(seed=3), draws=6, folder_root=tmp_path / "f", generator_config=SIM
    )
    ad = Adaptive(max_keep=1, max_failures=2)
    early = rejection_sample(
        prompts,
        teacher,
        SamplingParams(seed=3),
        draws=6,
        folder_root=tmp_path / "a",
        generator_config=SIM,
        adaptive=ad,
    )
    sel = early.select(6, max_keep=1)
    for p in prompts:
        statuses = [r["status"] for r in early.rows[p.id]]
        kept = [s == "pass" or s == "spurious" for s in statuses]
        # it stopped exactly when a candidate passed or two failed in a row (or at 6 draws)
        assert len(statuses) == 6 or ad.done(statuses)
        assert not any(ad.done(statuses[:k]) for k in range(1, len(statuses)))
        assert sum(kept) <= 1
    n_drawn = sum(len(r) for r in early.rows.values())
    assert sel.stats["samples"] == n_drawn and sel.stats["draws_saved"] == 6 * len(prompts) - n_drawn > 0
    assert full.select(6, max_keep=1).stats["draws_saved"] == 0
    # a rerun is a cache hit with the same rows; drop_all_pass leaves out prompts that passed every draw
    again = rejection_sample(
        prompts,
        teacher,
        SamplingParams(seed=3),
        draws=6,
        folder_root=tmp_path / "a",
        generator_config=SIM,
        adaptive=ad,
    )
    assert again.cache_hit and again.rows == early.rows
    easy = [p.id for p in prompts if all(r["status"] in ("pass", "spurious") for r in early.rows[p.id])]
    dropped = early.select(6, max_keep=1, drop_all_pass=True)
    assert easy and dropped.stats["dropped_all_pass"] == len(easy)
    assert not {r.meta["prompt_id"] for r in dropped.records} & set(easy)


def test_settings_read_the_section_once_with_defaults_and_clear_errors():
    s = RejectionSettings.from_config({"m": 4})
    assert (s.m, s.draws, s.filter, s.adaptive, s.weight, s.shard_size) == (
        4,
        4,
        "outcome",
        None,
        "uniform",
        64,
    )
    s = RejectionSettings.from_config({"m": 2, "draws": 8, "max_keep": 1, "adaptive": {"enabled": True}})
    assert s.adaptive == Adaptive(max_keep=1, max_failures=None, filter="outcome")
    with pytest.raises(ValueError, match="data.rejection.m=9"):
        RejectionSettings.from_config({"m": 9, "draws": 8}, where="data.rejection")
    with pytest.raises(ValueError, match="adaptive.enabled needs"):
        RejectionSettings.from_config({"m": 2, "adaptive": {"enabled": True}})
    with pytest.raises(ValueError, match="filter"):
        RejectionSettings.from_config({"m": 2, "filter": "strict"})
