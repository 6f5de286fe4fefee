"""Sharded training (``trainer=fsdp``: FSDP2 through Lightning's ModelParallelStrategy) on 2 CPU processes
(gloo), against one process on the same global batch; checkpoint, kill and resume; export; in-loop
evaluations; LoRA and bf16 mixed precision. The sharding helpers themselves in one process (world size 1).

Tolerances (fp32): per-step losses within a relative 1e-5, final weights within an absolute 1e-6 (the
reduce-scatter sums gradients in another order than one process accumulating them; observed ~1e-8).
Resume and export are exact (atol 1e-6 and 0), the evaluations of the same weights equal (abs 1e-6).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cj2.testing import ENV as KILL_ENV
from tests.test_train import ROOT, TINY_RUN

FSDP_FP32 = [
    "trainer=fsdp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.strategy.param_dtype=null",  # fp32 throughout: comparable with one process
    "trainer.strategy.reduce_dtype=null",
]
STEP_LOSSES = "+callbacks.step_losses._target_=cj2.testing.step_losses"
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-6


def _args(root: Path, name: str, *overrides: str) -> list[str]:
    """TINY_RUN with ``overrides`` replacing its entries of the same key."""
    keys = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    base = [a for a in TINY_RUN if a.split("=", 1)[0] not in keys]
    return [sys.executable, "-m", "cj2.train", *base, *overrides, f"output_root={root}", f"run_name={name}"]


def _train(root: Path, name: str, *overrides: str, env: dict | None = None) -> Path:
    r = subprocess.run(
        _args(root, name, *overrides), cwd=root, env=env or ENV, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return root / "runs" / name


def _step_losses(run: Path, world: int, accumulate: int) -> list[float]:
    """The loss of every optimizer step: the micro-batch shares summed over the step and the ranks."""
    per_rank = [json.loads((run / f"step_losses.rank{r}.json").read_text()) for r in range(world)]
    steps = len(per_rank[0]) // accumulate
    return [sum(sum(s[k * accumulate : (k + 1) * accumulate]) for s in per_rank) for k in range(steps)]


def _ckpt_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def _hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.detach() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> Path:
    """4 steps of the tiny model on 2 sharded CPU processes, fp32, activation checkpointing (the default),
    checkpoint every 2 steps, exported."""
    root = tmp_path_factory.mktemp("fsdp")
    return _train(root, "fsdp", *FSDP_FP32, STEP_LOSSES, "export=true")


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process_on_the_same_global_batch(fsdp_run, tmp_path):
    # One process sees the same micro-batches as the two ranks together when it accumulates two of them.
    single = _train(tmp_path, "single", STEP_LOSSES, "trainer.accumulate_grad_batches=2")
    a, b = _step_losses(fsdp_run, world=2, accumulate=1), _step_losses(single, world=1, accumulate=2)
    assert len(a) == len(b) == 4
    assert a == pytest.approx(b, rel=LOSS_RTOL)
    assert a[-1] < a[0]  # it trains
    ma, mb = _metrics(fsdp_run), _metrics(single)
    assert ma["global_step"] == mb["global_step"] == 4
    assert ma["val/loss"] == pytest.approx(mb["val/loss"], rel=LOSS_RTOL)
    wa, wb = _ckpt_weights(fsdp_run), _ckpt_weights(single)
    assert wa.keys() == wb.keys()  # a sharded run's last.ckpt is one full state dict, named as unsharded
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=WEIGHT_ATOL, msg=k)
    assert not list(fsdp_run.parent.glob("fsdp*/**/rank1*"))


@pytest.mark.slow
def test_fsdp_export_gathers_one_full_folder(fsdp_run):
    """Every rank takes part in the gather, rank 0 writes one HF folder equal to the trained weights."""
    assert sorted(p.name for p in fsdp_run.parent.iterdir()) == ["fsdp"]
    hf = _hf_weights(fsdp_run / "hf")
    ckpt = {k.removeprefix("model."): v for k, v in _ckpt_weights(fsdp_run).items()}
    assert hf.keys() <= ckpt.keys() and "model.embed_tokens.weight" in hf
    for k, v in hf.items():
        torch.testing.assert_close(v, ckpt[k], rtol=0, atol=0, msg=k)
    assert json.loads((fsdp_run / "hf" / "cj2_judge.json").read_text())["template"] == "cj2_check"


@pytest.mark.slow
def test_fsdp_in_loop_evaluations_equal_one_process_on_the_same_weights(fsdp_run, tmp_path):
    """val/judge_acc and val/verdict_logit_acc come back under sharding, equal to one process scoring the
    same weights (the exported folder, trained one step with lr 1e-30: the same items, the same weights)."""
    hf = fsdp_run / "hf"
    single = _train(
        tmp_path,
        "same_weights",
        f"model.name_or_path={hf}",
        "model.tiny_config=null",
        "optimizer.lr=1e-30",  # lr=0 is refused; 1e-30 moves no weight of this size in fp32
        "trainer.max_steps=1",
    )
    ma, mb = _metrics(fsdp_run), _metrics(single)
    keys = [k for k in ma if k.startswith(("val/verdict_logit", "val/jbv2", "val/judge_acc"))]
    assert "val/judge_acc" in keys and "val/verdict_logit_acc" in keys
    assert ma["val/verdict_logit_n"] == 24  # each item once, though every rank scored them all
    for k in keys:
        if ma[k] is None or mb.get(k) is None:
            assert ma[k] is None and mb.get(k) is None, k
        else:
            assert ma[k] == pytest.approx(mb[k], abs=1e-6), k
    gen_a = (fsdp_run / "generations_latest.jsonl").read_text()
    assert gen_a and gen_a == (single / "generations_latest.jsonl").read_text()


@pytest.mark.slow
def test_fsdp_sigkill_then_resume_equals_uninterrupted(fsdp_run, tmp_path):
    """Both ranks SIGKILL themselves after step 2 (its checkpoint on disk, cj2.testing): no polling race.
    ``ckpt_path=last`` resumes the sharded run and ends where the uninterrupted one (the fixture) ended."""
    run = tmp_path / "runs" / "fsdp"
    proc = subprocess.Popen(
        _args(tmp_path, "fsdp", *FSDP_FP32, STEP_LOSSES),
        cwd=tmp_path,
        env={**ENV, KILL_ENV: "train.step:2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        try:  # the other rank, if it outlived rank 0
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-3000:]
    assert not (run / "metrics.json").exists()
    assert torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 2

    _train(tmp_path, "fsdp", *FSDP_FP32, STEP_LOSSES, "ckpt_path=last")
    assert _step_losses(run, 2, 1) == pytest.approx(_step_losses(fsdp_run, 2, 1)[2:], rel=1e-6)
    ma, mb = _metrics(fsdp_run), _metrics(run)
    assert ma["global_step"] == mb["global_step"] == 4
    for key in ("val/loss", "val/loss_ce", "val/verdict_logit_acc", "val/judge_acc"):
        assert ma[key] == pytest.approx(mb[key], abs=1e-6), key
    wa, wb = _ckpt_weights(fsdp_run), _ckpt_weights(run)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=WEIGHT_ATOL, msg=k)


@pytest.mark.slow
def test_fsdp_lora_bf16_trains_and_exports_merged_adapters(tmp_path):
    """LoRA under sharding with bf16 compute and bf16 gradient reduce-scatter (gloo supports both on CPU):
    it trains, and the export holds the adapters merged into the gathered base weights."""
    from peft import LoraConfig, get_peft_model

    from cj2.models import load_model, load_tokenizer

    run = _train(
        tmp_path,
        "lora",
        "trainer=fsdp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy.param_dtype=bfloat16",
        "trainer.strategy.reduce_dtype=bfloat16",
        "+model/peft=lora",
        STEP_LOSSES,
        "export=true",
    )
    losses = _step_losses(run, 2, 1)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    state = {k.removeprefix("model."): v for k, v in _ckpt_weights(run).items()}
    assert all(v.dtype == torch.float32 for v in state.values())  # sharded weights keep their dtype
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)  # the adapters trained (B starts at 0)

    tokenizer = load_tokenizer("tiny")
    tiny = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128}
    tiny |= {"num_attention_heads": 4, "num_key_value_heads": 2}
    base = load_model("tiny", tokenizer=tokenizer, tiny_config=tiny, seed=0)
    cfg = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(base, cfg)
    missing, unexpected = peft_model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if "lora" in k or "layers" in k]
    merged = peft_model.merge_and_unload().state_dict()
    exported = _hf_weights(run / "hf")
    assert not any("lora" in k for k in exported)
    for k, v in exported.items():
        torch.testing.assert_close(v, merged[k], rtol=0, atol=1e-6, msg=k)
    w = "model.layers.0.self_attn.q_proj"
    base_w = state[f"base_model.model.{w}.base_layer.weight"]
    assert not torch.equal(exported[f"{w}.weight"], base_w)  # merged, not the bare base


# ---------------------------------------------------------------------------------- one process, world 1
@pytest.fixture
def world_of_one(tmp_path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def test_shard_model_units_checkpointing_mixed_precision_and_gathering(world_of_one, tiny_model, tokenizer):
    """Decoder layers and the root become FSDP2 units with parameter names unchanged; each layer's forward
    runs again in backward (activation checkpointing); the gathered weights compute in bf16 while the
    sharded ones and their gradients stay fp32; gathered() and full_model() give the full weights."""
    import copy

    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    from cj2.distributed import full_model, gathered, is_fsdp2, shard_model
    from cj2.module import _hidden_through_root

    plain = copy.deepcopy(tiny_model)
    names = list(tiny_model.state_dict())
    model = shard_model(
        tiny_model,
        world_of_one,
        param_dtype="bfloat16",
        reduce_dtype="float32",
        activation_checkpointing=True,
    )
    assert shard_model(model, world_of_one) is model and is_fsdp2(model)
    units = [type(m).__name__ for m in model.modules() if isinstance(m, FSDPModule)]
    assert units == ["FSDPLlamaForCausalLM", "FSDPLlamaDecoderLayer", "FSDPLlamaDecoderLayer"]
    assert list(model.state_dict()) == names
    assert all(isinstance(p, DTensor) and p.dtype == torch.float32 for p in model.parameters())

    calls = []
    layer = model.model.layers[0]
    layer.register_forward_pre_hook(lambda mod, args: calls.append(torch.is_grad_enabled()))
    ids = tokenizer("a judge reads both answers", return_tensors="pt")["input_ids"]
    hidden = _hidden_through_root(model, {"input_ids": ids, "use_cache": False})
    assert hidden.dtype == torch.bfloat16 and hidden.shape[:2] == ids.shape
    weight = model.get_output_embeddings().weight  # the root keeps its weights gathered after forward
    assert not isinstance(weight, DTensor) and weight.dtype == torch.bfloat16
    (hidden.float() @ weight.float().T).logsumexp(-1).mean().backward()
    assert calls == [True, True]  # the forward, then its recomputation in the backward
    grads = [p.grad for p in model.parameters()]
    assert all(isinstance(g, DTensor) and g.dtype == torch.float32 for g in grads)

    with gathered(model):
        assert not any(isinstance(p, DTensor) for p in model.parameters())
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)  # no resharding in between
        assert not any(isinstance(p, DTensor) for p in model.parameters())
    assert all(isinstance(p, DTensor) for p in model.parameters())

    full = full_model(model)
    assert not is_fsdp2(full) and list(full.state_dict()) == names
    for (k, a), b in zip(full.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)  # not stepped: the initial weights
