"""Semi-online RFT: the policy as the sampler, rounds every K steps, adaptive M, resume inside a round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_train import ROOT, TINY_RUN, cfg_for

ROUNDS = [
    "data.rejection.m=2",
    "data.rejection.draws=2",
    "data.rejection.rounds=3",
    "data.rejection.round_steps=2",
    "data.rejection.shard_size=2",
    "data.builtin.n_train=6",
    "data.builtin.templates=[cj2_check]",
    "trainer.max_steps=6",
    "checkpoint_every_n_steps=1",
    "callbacks.generated=null",
    "callbacks.verdict_logits=null",
]
POLICY = [
    "+data.rejection.generator.batch_size=8",
    "data.rejection.generator.backend=policy",
    "data.rejection.sampling.max_new_tokens=12",
]


def _policy_overrides():
    # a plain backend=policy override: the data defaults carry no teacher keys for it to inherit
    return list(POLICY)


def test_simulated_rounds_switch_the_data_every_k_steps(tmp_path, monkeypatch):
    """rounds=3, round_steps=2: round 0 is the gold data, rounds 1 and 2 are drawn at steps 2 and 4 (new
    seeds each round) and cached in the run folder; metrics.json has each round's pass@M and spurious share,
    and training ends at max_steps on the last round's data."""
    import cj2.models
    from cj2.train import train

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    seen = []
    import cj2.data.datamodule as dm_mod

    real = dm_mod.JudgeDataModule._build_round

    def spy(self, r):
        real(self, r)
        seen.append((r, self.trainer.global_step, sorted(rec.id for rec in self.train_records())))

    monkeypatch.setattr(dm_mod.JudgeDataModule, "_build_round", spy)
    train(cfg_for(tmp_path, *ROUNDS, "data.rejection.filter=faithful"))
    assert [(r, step) for r, step, _ in seen] == [(0, 0), (1, 2), (2, 4)]
    gold, r1, r2 = (ids for _, _, ids in seen)
    assert not any("#s" in i for i in gold) and all("#s" in i for i in r1 + r2) and r1 != r2
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["rounds"] == 3 and metrics["filter"] == "faithful"
    for r in (1, 2):
        assert 0.0 <= metrics[f"rft/round{r}/pass_at_m"] <= 1.0
        assert 0.0 <= metrics[f"rft/round{r}/spurious_share"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "rft_rounds").iterdir()) == ["round_1", "round_2"]
    logged = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert "rft/pass_at_m" in logged[0] and "rft/round" in logged[0]


def test_policy_round_draws_with_the_model_being_trained(tmp_path, tiny_model, tokenizer):
    """backend=policy: the candidates come from an HFSampler over the very model object handed in (its
    current weights), M per prompt, keyed by round and step; nothing kept is a count, not an error."""
    import cj2.generation.hf as hf
    from cj2.curation.rft_data import BuiltinRFT
    from cj2.data.tasks import generate_items

    rft = BuiltinRFT.from_config(
        {
            "m": 2,
            "draws": 2,
            "generator": {"backend": "policy", "batch_size": 4},
            "sampling": {"max_new_tokens": 6},
        }
    )
    assert rft.semi_online and rft.needs_model and rft.rounds == 1 and rft.first == "policy"
    models = []
    real = hf.HFSampler.__init__

    def spy(self, model, *a, **k):
        models.append((model, k))
        real(self, model, *a, **k)

    items = generate_items(3, split="train", seed=0, tiers=["easy"])
    hf.HFSampler.__init__, saved = spy, hf.HFSampler.__init__
    try:
        records, _, info = rft.round_data(
            0,
            items,
            templates="cj2_check",
            seed=0,
            folder=tmp_path,
            policy=tiny_model,
            tokenizer=tokenizer,
            step=5,
        )
    finally:
        hf.HFSampler.__init__ = saved
    assert len(models) == 1 and models[0][0] is tiny_model and models[0][1] == {"batch_size": 4}
    stats = info["stats"]
    assert stats["prompts"] == 3 and stats["samples"] == 6 and len(records) == stats["kept"]
    manifest = json.loads(next((tmp_path / "round_0").glob("*/manifest.json")).read_text())
    assert manifest["material"]["generator"]["step"] == 5 and manifest["material"]["generator"]["round"] == 0
    with pytest.raises(ValueError, match="policy"):
        rft.offline(items, templates="cj2_check", seed=0)


def _run(args, cwd, env_extra=None):
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("CJ2_TEST_KILL_AT", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "cj2.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_policy_rounds_killed_inside_a_rounds_sampling_resume_to_the_uninterrupted_run(tmp_path):
    """The policy samples round 1 at step 2; the run is SIGKILLed after the first shard of
    round 1 is listed, resumed with ckpt_path=last (step 2: it redraws only the unlisted shards with the same
    weights) and ends with the weights and round statistics of a run never interrupted."""
    cache = {"CJ2_CACHE_DIR": str(tmp_path / "cache")}
    short = ["data.rejection.rounds=2", "trainer.max_steps=4"]  # round 1 drawn by the policy at step 2
    base = [a for a in TINY_RUN if not a.startswith("logger")] + [
        "logger=csv",
        *ROUNDS,
        *short,
        *_policy_overrides(),
    ]
    full = _run([*base, "run_name=full", f"output_root={tmp_path}"], tmp_path, cache)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _run(
        [*base, "run_name=part", f"output_root={tmp_path}"],
        tmp_path,
        {**cache, "CJ2_TEST_KILL_AT": "rejection.shard_listed:1"},
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    part = tmp_path / "runs" / "part"
    assert torch.load(part / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 2
    assert (
        len(json.loads(next((part / "rft_rounds" / "round_1").glob("*/manifest.json")).read_text())["shards"])
        == 1
    )
    resumed = _run([*base, "run_name=part", f"output_root={tmp_path}", "ckpt_path=last"], tmp_path, cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "runs" / "full" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(part / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4
    # the policy's draws count toward the processed-token budget once, also when round 1 was drawn in two goes
    assert a["cj2"]["processed_tokens"] == b["cj2"]["processed_tokens"]
    assert a["cj2"]["processed_tokens"]["generated"] > 0
    assert a["cj2"]["counted_generation"] == b["cj2"]["counted_generation"] == ["rft_round1"]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6, msg=k)
    ma = json.loads((tmp_path / "runs" / "full" / "metrics.json").read_text())
    mb = json.loads((part / "metrics.json").read_text())
    rounds = {k: v for k, v in ma.items() if k.startswith("rft/round")}
    assert rounds and rounds == {k: v for k, v in mb.items() if k.startswith("rft/round")}
    for r in (1,):  # the same candidates, drawn once in full and in two goes in part
        shards = [
            sorted(Path(d).glob(f"rft_rounds/round_{r}/*/shards/*.jsonl"))
            for d in (tmp_path / "runs" / "full", part)
        ]
        assert [p.read_text() for p in shards[0]] == [p.read_text() for p in shards[1]] and shards[0]


@pytest.mark.slow
def test_policy_rounds_under_fsdp_draw_with_gathered_weights_on_both_ranks(tmp_path):
    """trainer=fsdp on 2 CPU processes: round 1 is drawn by the sharded policy with its weights gathered on
    every rank, each rank drawing its share of the shards (worker manifests), then both read the merge; the
    run ends (no hang) with the round's numbers."""
    from tests.test_sharded import FSDP_FP32

    keys = {"trainer.max_steps", "data.rejection.rounds"}
    overrides = [*ROUNDS, "data.rejection.rounds=2", "trainer.max_steps=4", *_policy_overrides(), *FSDP_FP32]
    overrides = [o for o in overrides if o.split("=", 1)[0] not in keys] + [
        "data.rejection.rounds=2",
        "trainer.max_steps=4",
    ]
    args = [a for a in TINY_RUN if not a.startswith("logger")] + ["logger=csv", *overrides]
    r = _run(
        [*args, "run_name=fsdp", f"output_root={tmp_path}"],
        tmp_path,
        {"CJ2_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    run = tmp_path / "runs" / "fsdp"
    folder = next((run / "rft_rounds" / "round_1").glob("*/manifest.json")).parent
    workers = sorted(p.name for p in (folder / "workers").glob("*.json"))
    assert workers == ["0000-of-0002.json", "0001-of-0002.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 3  # 6 prompts, 2 per shard
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["rft/round1/pass_at_m"] is not None


def test_round_zero_from_the_teacher_and_rotating_round_prompts(tmp_path):
    """first=teacher: round 0 is rejection sampling by the teacher generator (no model needed); gold is
    None (the data module then uses the gold records); round_prompts=N draws a slice that rotates."""
    from cj2.curation.rft_data import BuiltinRFT
    from cj2.data.tasks import generate_items

    items = generate_items(5, split="train", seed=0, tiers=["easy"])
    cfg = {"m": 2, "draws": 2, "rounds": 3, "round_steps": 1, "generator": {"backend": "policy"}}
    teacher = BuiltinRFT.from_config({**cfg, "first": "teacher", "round_prompts": 2})
    records, _, info = teacher.round_data(0, items, templates="cj2_check", seed=0, folder=tmp_path)
    assert info["stats"]["prompts"] == 2 and records and all("#s" in r.id for r in records)
    assert [i.id for i in teacher.round_items(2, items)] == [items[4].id, items[0].id]
    gold = BuiltinRFT.from_config(cfg)
    assert gold.round_data(0, items, templates="cj2_check", seed=0, folder=tmp_path) is None
    with pytest.raises(ValueError, match="needs the model"):
        gold.round_data(1, items, templates="cj2_check", seed=0, folder=tmp_path)
    with pytest.raises(ValueError, match="round_steps"):
        BuiltinRFT.from_config({"m": 2, "rounds": 2})
    with pytest.raises(ValueError, match="do not apply"):
        BuiltinRFT.from_config({"m": 2, "generator": {"backend": "policy", "name_or_path": "x"}})


def test_pair_orders_and_gold_fallback_per_question(tmp_path):
    """pair_orders keeps a question's judgments only where both orders kept one; fallback=gold gives every
    prompt that lost its data its gold judgment (and gold preference pair); both counted. Checked against the
    plain selection of the same draws (the simulated teacher, 70 % of verdicts right: some questions win
    one order only)."""
    import dataclasses

    from cj2.curation.rft_data import BuiltinRFT
    from cj2.data.schema import SWAP_SUFFIX, pair_key
    from cj2.data.tasks import build_preference_records, build_records, generate_items

    items = []
    for it in generate_items(20, split="train", seed=0, tiers=["easy"]):
        items += [it, dataclasses.replace(it.swapped(), id=it.id + SWAP_SUFFIX)]
    base = {
        "m": 2,
        "draws": 2,
        "rounds": 2,
        "round_steps": 1,
        "first": "teacher",
        "teacher": {"backend": "simulated", "p_correct": 0.7},
        "cache_dir": str(tmp_path / "cache"),
    }

    def items_ids(its):
        return [i.id for i in its]

    def draw(its=items, **extra):
        rft = BuiltinRFT.from_config({**base, **extra})
        return rft.round_data(0, its, templates="cj2_check", seed=0, folder=tmp_path / "rounds")

    plain, plain_prefs, plain_info = draw()
    kept = {}
    for r in plain:
        kept.setdefault(pair_key(r.id), set()).add(r.meta["prompt_id"])
    both = {q for q, ids in kept.items() if len(ids) == 2}
    one_sided = {q for q, ids in kept.items() if len(ids) == 1}
    assert both and one_sided  # the draws hold both kinds of question, so the filter has work to do

    paired, paired_prefs, info = draw(pair_orders=True)
    assert {pair_key(r.id) for r in paired} == both
    assert [r.id for r in paired] == [r.id for r in plain if pair_key(r.id) in both]
    assert [p.id for p in paired_prefs] == [p.id for p in plain_prefs if pair_key(p.id) in both]
    assert info["stats"]["paired_dropped"] == len(plain) - len(paired) > 0
    assert info["stats"]["questions"] == 20 and info["stats"]["questions_both_kept"] == len(both)

    golds = {r.id: r for r in build_records(items, "cj2_check", seed=0)}
    gold_prefs = {p.id: p for p in build_preference_records(items, "cj2_check", seed=0)}
    covered = {r.meta["prompt_id"] for r in plain}
    for pair, expect_covered in ((False, covered), (True, {r.meta["prompt_id"] for r in paired})):
        full, prefs, info = draw(pair_orders=pair, fallback="gold")
        fallback = [r for r in full if r.meta["status"] == "gold"]
        assert [r.id for r in full[: len(full) - len(fallback)]] == [
            r.id for r in (paired if pair else plain)
        ]
        assert sorted(r.id for r in fallback) == sorted(i.id for i in items if i.id not in expect_covered)
        for r in fallback:  # the gold judgment as the data module writes it, marked as a fallback
            g = golds[r.id]
            assert (r.response, r.verdict, r.messages) == (g.response, g.verdict, g.messages)
        gold_pairs = [p for p in prefs if p.meta.get("status") == "gold"]  # loss=dpo trains on these
        assert sorted(p.id for p in gold_pairs) == sorted(r.id for r in fallback)
        assert all(p.chosen == gold_prefs[p.id].chosen for p in gold_pairs)
        assert info["stats"]["gold_fallback"] == len(fallback) > 0
        assert info["stats"]["records"] == len(full)
    assert plain_info["stats"].get("gold_fallback") is None  # off by default: the plain selection, untouched

    # drop_all_pass leaves out the prompts whose every candidate passed: they did not fail, so they get no
    # gold, and their question stays whole; where the other order failed, the question is gold in both orders
    drop = {"adaptive": {"drop_all_pass": True}}
    all_pass = covered - {r.meta["prompt_id"] for r in draw(**drop)[0]}
    failed = set(items_ids(items)) - covered
    whole = {pair_key(i) for i in items_ids(items)} - {pair_key(i) for i in failed}
    no_data = {i for i in all_pass if pair_key(i) in whole}
    assert no_data and all_pass - no_data  # both cases occur in these draws
    full, _, info = draw(pair_orders=True, fallback="gold", **drop)
    assert info["stats"]["dropped_all_pass"] == len(all_pass)
    assert {r.meta["prompt_id"] for r in full} == set(items_ids(items)) - no_data
    assert {r.meta["prompt_id"] for r in full if r.meta["status"] == "gold"} == {
        i for i in items_ids(items) if pair_key(i) not in whole
    }

    with pytest.raises(ValueError, match="one order only"):
        draw(its=items[:-1], pair_orders=True)
    with pytest.raises(ValueError, match="even"):
        BuiltinRFT.from_config({**base, "pair_orders": True, "round_prompts": 3})
    with pytest.raises(ValueError, match="fallback"):
        BuiltinRFT.from_config({**base, "fallback": "teacher"})
