"""Training survives SIGKILL (resume gives the uninterrupted result), reproduces, guards non-finite losses."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cj2.testing import ENV as KILL_ENV
from tests.test_train import ROOT, TINY_RUN, cfg_for

VOLATILE = ("wall_time_s",)


def _metrics(path: Path) -> dict:
    m = json.loads((path / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in VOLATILE}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def _cmd(root: Path, name: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cj2.train",
        *TINY_RUN,
        "trainer.max_steps=8",
        "checkpoint_every_n_steps=1",
        "data.builtin.n_train=40",
        "callbacks.generated.n_items=2",
        f"output_root={root}",
        f"run_name={name}",
        *extra,
    ]


ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_equals_uninterrupted(tmp_path):
    ref = subprocess.run(_cmd(tmp_path, "ref"), env=ENV, capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "runs" / "killed"
    # The child kills itself (cj2.testing) at the start of the batch after step kill_after, when that step's
    # checkpoint is on disk: no polling, so the kill always lands mid-run and at the step chosen.
    seed = random.randrange(2**32)
    kill_after = random.Random(seed).randint(2, 6)
    why = f"kill_after={kill_after} (seed {seed})"
    proc = subprocess.Popen(
        _cmd(tmp_path, "killed"),
        env={**ENV, KILL_ENV: f"train.step:{kill_after}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=900)
    finally:
        try:  # the child's own helpers (data workers), if any outlived it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (why, err.decode(errors="replace")[-3000:])
    assert not (run / "metrics.json").exists(), why
    step = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert step == kill_after, why

    resumed = subprocess.run(
        _cmd(tmp_path, "killed", "ckpt_path=last"), env=ENV, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _metrics(tmp_path / "runs" / "ref"), _metrics(run)
    assert a["global_step"] == b["global_step"] == 8, why
    for key in ("val/loss", "val/loss_ce", "val/verdict_acc_tf", "val/judge_acc"):
        assert a[key] == pytest.approx(b[key], abs=1e-5), (key, why)
    wa, wb = _weights(tmp_path / "runs" / "ref"), _weights(run)
    for k in wa:  # identical weights: no batch was repeated or skipped
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=f"{k} ({why})")
    # the CSV keeps the rows logged before the kill: every step's training loss once, as uninterrupted
    ca, cb = _loss_rows(tmp_path / "runs" / "ref"), _loss_rows(run)
    assert len(ca) == 8 and [s for s, _ in ca] == [s for s, _ in cb], (ca, cb, why)
    assert [v for _, v in ca] == pytest.approx([v for _, v in cb], abs=1e-5), why


def _loss_rows(run: Path) -> list[tuple[str, float]]:
    import csv

    with open(run / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    key = next(k for k in rows[0] if k.startswith("train/loss"))
    return [(r["step"], float(r[key])) for r in rows if r.get(key)]


def test_same_config_and_seed_give_the_same_metrics(tmp_path, margin_tiny_run, monkeypatch):
    """A second run of the default config (the first is the session's shared run) gives the same metrics,
    its untrained baselines computed afresh too."""
    import cj2.models
    from cj2.train import train

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    train(cfg_for(tmp_path / "b", "loss=margin"))
    assert _metrics(margin_tiny_run[0]) == _metrics(tmp_path / "b")


def test_nonfinite_loss_stops_with_record_ids_or_is_skipped_and_counted(tokenizer, tiny_model):
    from cj2.data.datamodule import JudgeDataModule
    from cj2.module import JudgeModule, NonFiniteLossError

    dm = JudgeDataModule(
        tokenizer, builtin={"n_train": 4, "n_val": 0}, batch_size=4, need_verdict_tokens=True
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        tiny_model.get_output_embeddings().weight[0, 0] = float("nan")

    class FakeTrainer:
        accumulate_grad_batches, world_size, global_step = 1, 1, 0

    for policy in ("stop", "skip"):
        module = JudgeModule(tiny_model, {"name": "margin"}, on_nonfinite=policy)
        module.log = lambda *a, **k: None
        object.__setattr__(module, "_trainer", FakeTrainer())
        if policy == "stop":
            with pytest.raises(NonFiniteLossError) as err:
                module.training_step(batch, 0)
            assert batch["ids"][0] in str(err.value)
        else:
            assert module.training_step(batch, 0) is None
            assert module.skipped_nonfinite == 1


def test_checkpoint_io_is_atomic_and_weights_only(tmp_path, monkeypatch):
    from cj2.runtime import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, path)
    assert io.load_checkpoint(path)["global_step"] == 3

    def boom(*a, **k):
        raise KeyboardInterrupt  # a kill in the middle of the write

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "global_step": 4}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["global_step"] == 3  # the old checkpoint is intact
    assert not list(tmp_path.glob("*.tmp"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception):  # noqa: B017 - any unpickling refusal
        io.load_checkpoint(tmp_path / "evil.ckpt")
