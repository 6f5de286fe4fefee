"""Test-only kill points: make a run SIGKILL itself at a point the test chooses.

A kill test that polls a child and signals it races the child: a short run can finish between two polls
and the kill lands after the end (or, on a loaded machine, long after the point the test meant). Instead
the test sets ``CJ2_TEST_KILL_AT="<name>:<k>"`` in the child's environment, and the child kills itself
with SIGKILL (no cleanup, no ``finally``, no flush: what a pre-emption does) at the named point once its
counter reaches ``k``. The points, each placed right after something was made durable:

* ``evaluate.rows``: rows written (fsynced) to ``judgments.jsonl`` / ``verdict_logits.jsonl``, counted over
  all modes of the run (:func:`cj2.evaluation.runner.run_mode`);
* ``rejection.shard_written``: rejection-sampling shards written atomically but not yet listed in the
  manifest; ``rejection.shard_listed``: shards listed in the manifest (:func:`cj2.curation.rejection.
  rejection_sample`);
* ``train.step``: optimizer steps, compared with ``trainer.global_step`` at the start of the next batch,
  i.e. after step ``k`` and the checkpoint saved at its end (:func:`kill_callbacks`, added by
  :mod:`cj2.train`).

``CJ2_TEST_FAIL_ARM`` (:func:`fail_arm`) makes chosen arms of a sweep fail at the start of training.
``CJ2_TEST_FLIP_ADVANTAGE=1`` (:func:`advantage_sign`) flips the sign of GRPO's advantages, so a test can
show that its learning check fails when the policy gradient points the wrong way.

Never set the variable outside tests. When it is unset a kill point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import Any

ENV = "CJ2_TEST_KILL_AT"
TRAIN_STEP = "train.step"

_counts: Counter[str] = Counter()


def kill_target(name: str) -> int | None:
    """The ``k`` of ``CJ2_TEST_KILL_AT`` when it names the point ``name``, else None."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    point, sep, k = spec.rpartition(":")
    if not sep or not point or not k.strip().isdigit() or int(k) < 1:
        raise ValueError(f"{ENV}={spec!r}: expected '<point>:<k>' with an integer k >= 1")
    return int(k) if point == name else None


def _die(name: str, k: int) -> None:
    sys.stderr.write(f"{ENV}: SIGKILL at {name}:{k} (pid {os.getpid()})\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_point(name: str, n: int = 1) -> None:
    """Count ``n`` more events at the point ``name``; SIGKILL this process once the count reaches ``k``.

    Test-only (see the module docstring). The counts live in this process and start at zero, so a resumed
    run (started without the variable) is never killed.
    """
    if not os.environ.get(ENV):
        return
    k = kill_target(name)
    if k is None:
        return
    _counts[name] += n
    if _counts[name] >= k:
        _die(name, k)


def kill_callbacks() -> list[Any]:
    """``[callback]`` that SIGKILLs training after ``k`` optimizer steps when ``CJ2_TEST_KILL_AT`` names
    ``train.step:k``, else ``[]``. Test-only.

    It fires at the start of the first batch that finds ``trainer.global_step >= k``: step ``k`` is done,
    and so is the checkpoint Lightning saved at its end (checkpoint callbacks run last in a batch's end).
    """
    if not os.environ.get(ENV):
        return []
    k = kill_target(TRAIN_STEP)
    if k is None:
        return []
    import lightning as L

    class KillAtStep(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step >= k:
                _die(TRAIN_STEP, k)

    return [KillAtStep()]


FAIL_ARM_ENV = "CJ2_TEST_FAIL_ARM"


def fail_arm(cfg: Any) -> None:
    """Make one arm of a sweep fail, deterministically, at the start of training. Test-only.

    ``CJ2_TEST_FAIL_ARM`` holds ``;``-separated ``<config key>=<value>[:raise|:kill]`` entries: a run whose
    ``<config key>`` (e.g. ``loss.name``) equals ``<value>`` raises ``RuntimeError`` (``raise``, the default)
    or SIGKILLs itself (``kill``: no cleanup, what an out-of-memory kill or a node failure does). Runs that
    match no entry are left alone. When the variable is unset this costs one environment lookup.
    """
    spec = os.environ.get(FAIL_ARM_ENV)
    if not spec:
        return
    from omegaconf import OmegaConf

    for entry in filter(None, (e.strip() for e in spec.split(";"))):
        cond, how = entry, "raise"
        if entry.rsplit(":", 1)[-1] in ("raise", "kill"):
            cond, how = entry.rsplit(":", 1)
        key, sep, value = cond.partition("=")
        if not sep or not key:
            raise ValueError(f"{FAIL_ARM_ENV}={spec!r}: expected '<key>=<value>[:raise|:kill]' entries")
        if str(OmegaConf.select(cfg, key.strip(), default=None)) != value.strip():
            continue
        if how == "kill":
            _die(f"{FAIL_ARM_ENV} {cond}", 1)
        raise RuntimeError(f"{FAIL_ARM_ENV}: test failure of the arm with {cond}")


def step_losses() -> Any:
    """Test-only Lightning callback (``+callbacks.step_losses._target_=cj2.testing.step_losses``) that
    records every micro-batch's share of its optimizer step's loss, as the objective computed it (normalised
    by the whole step's totals: the shares of one step, summed over its micro-batches and ranks, are the
    step's loss), and writes them in order to ``<run>/step_losses.rank<r>.json`` at the end of fit."""
    import json
    from pathlib import Path

    import lightning as L

    class StepLosses(L.Callback):
        def __init__(self) -> None:
            self.shares: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            # Lightning hands back the returned loss divided by accumulate_grad_batches; JudgeModule returned
            # the objective's loss times accumulate_grad_batches * world_size.
            self.shares.append(float(outputs["loss"]) / trainer.world_size)

        def on_fit_end(self, trainer, pl_module) -> None:
            path = Path(trainer.default_root_dir) / f"step_losses.rank{trainer.global_rank}.json"
            path.write_text(json.dumps(self.shares))

    return StepLosses()


FLIP_ADVANTAGE_ENV = "CJ2_TEST_FLIP_ADVANTAGE"


def advantage_sign() -> float:
    """-1.0 when ``CJ2_TEST_FLIP_ADVANTAGE=1`` (test-only: GRPO then pushes towards low rewards), else 1.0."""
    return -1.0 if os.environ.get(FLIP_ADVANTAGE_ENV) == "1" else 1.0
