"""GPU readiness, checked on the CPU: LoRA, the SLURM launcher, FSDP/DeepSpeed configs, gpu_check.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cj2.runtime import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "cj2" / "conf"
GPU_CHECK = ROOT / "experiments" / "perf" / "gpu_check.sh"
register_resolvers()


def _compose(*overrides: str, hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra_config)


# ------------------------------------------------------------------------------------------------ LoRA
def test_lora_config_composes_into_model_peft():
    cfg = _compose("model=tiny", "+model/peft=lora", "model.peft.r=4")
    peft_cfg = OmegaConf.to_container(cfg.model.peft, resolve=True)
    assert (
        peft_cfg["peft_type"] == "lora" and peft_cfg["r"] == 4 and peft_cfg["target_modules"] == "all-linear"
    )
    assert _compose("model=tiny").model.peft is None  # off unless asked


def test_lora_leaves_only_adapters_trainable(tokenizer):
    pytest.importorskip("peft")
    from cj2.models import apply_peft, load_model

    cfg = OmegaConf.to_container(_compose("model=tiny", "+model/peft=lora", "model.peft.r=4").model.peft)
    lora = apply_peft(load_model("tiny", tokenizer=tokenizer), cfg)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    frozen = [n for n, p in lora.named_parameters() if not p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    # all-linear: q, k, v, o, gate, up, down in each of the 2 layers, an A and a B each
    assert len(trainable) == 2 * 7 * 2
    assert any("embed_tokens" in n for n in frozen) and any("base_layer" in n for n in frozen)


def _base_name(key: str) -> str:
    """Checkpoint key of a LoRA-wrapped model -> the plain model's parameter name."""
    return key.removeprefix("model.").removeprefix("base_model.model.").replace(".base_layer", "")


def test_lora_training_keeps_base_weights_and_export_merges_the_adapters(tmp_path, tokenizer):
    """A short cj2.train run with +model/peft=lora: the adapters change, nothing else does, and the
    exported folder holds W + (alpha / r) B A (merged), loadable without peft."""
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from cj2.models import load_model
    from cj2.train import train
    from tests.test_train import cfg_for

    cfg = cfg_for(
        tmp_path,
        "+model/peft=lora",
        "model.peft.r=4",
        "model.peft.lora_alpha=8",
        "model.peft.lora_dropout=0.0",
        "optimizer.lr=1e-2",
        "export=true",
        "callbacks.generated=null",
    )
    train(cfg)
    assert cfg.trainer.max_steps % cfg.checkpoint_every_n_steps == 0  # so last.ckpt holds the final weights
    state = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    tiny_config = OmegaConf.to_container(cfg.model.tiny_config)
    base = load_model("tiny", tokenizer=tokenizer, seed=int(cfg.seed), tiny_config=tiny_config).state_dict()

    lora_keys = [k for k in state if "lora_" in k]
    assert lora_keys
    assert all(state[k].abs().sum() > 0 for k in lora_keys if "lora_B" in k), (
        "lora_B never trained (starts at 0)"
    )
    for key, value in state.items():
        if "lora_" not in key:
            assert torch.equal(value, base[_base_name(key)]), f"base weight {key} changed"

    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()
    assert not (tmp_path / "hf" / "adapter_config.json").exists()
    assert not any("lora" in k for k in exported)
    scale = 8 / 4  # lora_alpha / r
    merged_layers = 0
    for key in lora_keys:
        if ".lora_A." not in key:
            continue
        a, b = state[key], state[key.replace(".lora_A.", ".lora_B.")]
        name = _base_name(key.split(".lora_A.")[0] + ".weight")
        torch.testing.assert_close(exported[name], base[name] + scale * b @ a, atol=1e-6, rtol=1e-5)
        merged_layers += 1
    assert merged_layers == 2 * 7
    torch.testing.assert_close(exported["model.embed_tokens.weight"], base["model.embed_tokens.weight"])


# ----------------------------------------------------------------------------------------------- SLURM
def test_slurm_launcher_composes_and_writes_the_sbatch_script(tmp_path, monkeypatch):
    """hydra/launcher=slurm with the installed hydra-submitit-launcher: the launcher instantiates, a sweep
    becomes one job array, and the sbatch script carries the configured resources (nothing is submitted)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import hydra
    import submitit

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit only checks that srun exists
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    cfg = _compose(
        "hydra/launcher=slurm",
        f"output_root={tmp_path}",
        "run_name=sweep",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.account=proj",
        "hydra.launcher.qos=high",
        "hydra.launcher.array_parallelism=2",
        "+hydra.launcher.additional_parameters.reservation=r1",
        hydra_config=True,
    )
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher_cfg["_target_"] == "hydra_plugins.cj2_submitit.SlurmLauncher"  # reports dead arms
    launcher = hydra.utils.instantiate(launcher_cfg)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)

    seen: dict = {}

    def fake_map_array(executor, fn, *args):
        seen["jobs"] = list(zip(*args))
        seen["script"] = executor._executor._make_submission_file_text("python -m cj2.train", "uid")
        seen["array_parallelism"] = executor._executor.parameters["array_parallelism"]  # the array's %N

        class Job:
            def results(self):
                return ["done"]

        return [Job() for _ in seen["jobs"]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    sweep = [[f"loss={loss}", f"seed={seed}"] for loss in ("sft", "dpo", "margin") for seed in (0, 1)]
    assert launcher.launch(sweep, initial_job_idx=0) == ["done"] * 6
    assert [job[0] for job in seen["jobs"]] == sweep
    assert seen["array_parallelism"] == 2
    script = seen["script"]
    for line in (
        "--partition=gpu",
        "--time=90",
        "--gpus-per-node=8",
        "--ntasks-per-node=8",
        "--nodes=1",
        "--cpus-per-task=8",
        "--mem=512GB",
        "--account=proj",
        "--qos=high",
        "--reservation=r1",
    ):
        assert f"#SBATCH {line}\n" in script, line
    assert str(tmp_path / "sweeps" / "sweep" / ".submitit") in script


# ------------------------------------------------------------------------------------- FSDP, DeepSpeed
def test_fsdp_config_builds_a_strategy_on_cpu(tokenizer):
    """trainer=fsdp composes and its strategy object builds without starting anything: FSDP2 through
    Lightning's ModelParallelStrategy, bf16 compute with fp32 reduce, activation checkpointing, one full
    checkpoint file; the wrap units are exactly the decoder layers. (Training with it on 2 CPU processes:
    tests/test_sharded.py.)"""
    import hydra
    from lightning.pytorch.strategies import ModelParallelStrategy

    from cj2.distributed import FSDP2Strategy, is_decoder_layer
    from cj2.models import load_model

    cfg = _compose("model=tiny", "trainer=fsdp")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "32-true"
    strategy = hydra.utils.instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDP2Strategy) and isinstance(strategy, ModelParallelStrategy)
    assert (strategy.param_dtype, strategy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert strategy.activation_checkpointing and strategy.reshard_after_forward
    assert strategy._save_distributed_checkpoint is False and strategy._tensor_parallel_size == 1
    model = load_model("tiny", tokenizer=tokenizer)
    assert {type(m).__name__ for m in model.modules() if is_decoder_layer(m)} == {"LlamaDecoderLayer"}
    assert sum(is_decoder_layer(m) for m in model.modules()) == 2


def test_deepspeed_config_composes_and_names_the_missing_package():
    import hydra

    cfg = _compose("model=tiny", "trainer=deepspeed")
    strategy_cfg = OmegaConf.to_container(cfg.trainer.strategy)
    assert strategy_cfg == {
        "_target_": "lightning.pytorch.strategies.DeepSpeedStrategy",
        "stage": 3,
        "offload_optimizer": False,
        "offload_parameters": False,
    }
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="(?i)deepspeed"):
            hydra.utils.instantiate(cfg.trainer.strategy)
    else:  # pragma: no cover - only where deepspeed is installed
        strategy = hydra.utils.instantiate(cfg.trainer.strategy)
        assert strategy.config["zero_optimization"]["stage"] == 3


# ------------------------------------------------------------------------------------------- gpu_check
def _gpu_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(GPU_CHECK), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_gpu_check_script_syntax():
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True).returncode == 0
    text = GPU_CHECK.read_text()
    assert "set -euo pipefail" in text and "gpu_check.py" in text


def test_gpu_check_dry_run_on_cpu():
    result = _gpu_check("--cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^\| ([^|]+?) \| (PASS|SKIP|FAIL) \|", result.stdout, flags=re.M))
    assert rows == {
        "environment": "PASS",
        "bf16 forward/backward": "PASS",
        "sdpa == eager (fp32)": "PASS",
        "packed rows, sdpa (fp32)": "PASS",
        "flash_attention_2 (bf16)": "SKIP",
        "chunked CE vs naive": "PASS",
        "FSDP, 1 process (torch.distributed)": "PASS",
        "Lightning FSDP + JudgeModule": "SKIP",
        "training utilisation (MFU)": "PASS",
        "decode throughput (cj2 sampler vs vLLM)": "PASS",
    }
    assert "export_hf folder reloads exactly" in result.stdout
    assert re.search(r"measured bf16 peak [\d.]+ TFLOP/s = MFU [\d.]+%", result.stdout)


@pytest.mark.slow
def test_gpu_check_runs_without_transformers_and_refuses_a_machine_without_cuda():
    result = _gpu_check("--cpu", "--no-transformers", "--only", "bf16", "FSDP", "packed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\| bf16 forward/backward \| PASS", result.stdout, flags=re.M)
    assert re.search(r"^\| FSDP, 1 process \(torch.distributed\) \| PASS", result.stdout, flags=re.M)
    assert re.search(
        r"^\| packed rows, sdpa \(fp32\) \| SKIP \| [\d.]+ \| transformers is not installed",
        result.stdout,
        flags=re.M,
    )
    if not torch.cuda.is_available():
        refused = _gpu_check()
        assert refused.returncode == 2 and "no CUDA device" in refused.stderr
