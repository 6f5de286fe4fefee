"""``python -m cj2.train``: Hydra config -> model, data, objective, callbacks -> Lightning fit -> metrics,
export.

Thin on purpose: ``train(cfg)`` composes the run from config (model, data module, Lightning module,
callbacks in ``conf/callbacks/``, loggers, trainer), fits, validates once more (the final generated
judgments), writes ``metrics.json``, exports and returns the sweep metric (``optimized_metric``, by default
``val/judge_acc``). Every piece it builds works from plain Python too.

A run that raises writes ``failed.json`` (the exception's type, message and traceback) in its folder first,
so a sweep's comparison table lists it as failed. In a Hydra multirun the entry then logs the error and
returns instead of re-raising: the other arms still run, whichever launcher runs them (basic, submitit
local or SLURM), and the sweep ends with the table and a non-zero exit (:mod:`cj2.comparison`).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from cj2.runtime import (
    WANDB_ID_FILE,
    AtomicCheckpointIO,
    entry_run_dir,
    hydra_entry,
    json_safe,
    redact,
    register_resolvers,
    reraise_scrubbed,
    resolve_precision,
    to_plain,
    wandb_logger,
    wandb_run_id,
    wandb_section,
    write_hydra_record,
)

log = logging.getLogger("cj2.train")
register_resolvers()


def build_loggers(
    cfg: DictConfig,
    out: Path,
    resolved: dict[str, Any],
    *,
    resume: bool = False,
    resume_step: int | None = None,
) -> list:
    """The run's loggers (``conf/logger/``): CSV and/or wandb. The CSV log keeps a resumed run's earlier rows
    (:func:`cj2.rundir.run_csv_logger`); the wandb run's id is kept in the run folder (``wandb_run_id``), so
    a run resumed from a checkpoint (``resume``) continues the same wandb run."""
    from cj2.rundir import run_csv_logger

    loggers: list = []
    lcfg = cfg.logger
    if lcfg.get("csv", {}).get("enabled", False):
        loggers.append(run_csv_logger(str(out), resume_step if resume else None))
    if wandb_section(cfg).get("enabled", False):
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        rank_zero = int(getattr(rank_zero_only, "rank", 0) or 0) == 0
        run_id = wandb_run_id(out, resume=resume, save=rank_zero)
        log.info("wandb run id %s (%s)", run_id, out / WANDB_ID_FILE)
        loss_name = cfg.loss.name
        m = OmegaConf.select(cfg, "data.rejection.m", default=None)
        tags = [f"loss={loss_name}"] + ([f"M={m}"] if m is not None else [])
        name = out.name if cfg.get("run_name") is None else str(cfg.run_name)
        loggers.append(
            wandb_logger(
                cfg,
                out,
                config=resolved,
                group=str(cfg.experiment_name),
                job_type=loss_name,
                tags=tags,
                name=name,
                id=run_id,
                resume="allow",
            )
        )
    return loggers


def build_model(cfg: DictConfig) -> tuple[Any, Any]:
    """The model and tokenizer of ``cfg.model``: loaded (or a tiny random one), PEFT adapters applied, the
    bottom layers frozen when ``model.trainable_layers`` is set."""
    from cj2.models import describe, load_model, load_tokenizer

    mcfg = cfg.model
    tokenizer = load_tokenizer(mcfg.name_or_path, trust_remote_code=bool(mcfg.trust_remote_code))
    model = load_model(
        mcfg.name_or_path,
        dtype=mcfg.dtype,
        attn_implementation=mcfg.attn_implementation,
        trust_remote_code=bool(mcfg.trust_remote_code),
        gradient_checkpointing=bool(mcfg.gradient_checkpointing),
        tiny_config=OmegaConf.to_container(mcfg.tiny_config) if mcfg.get("tiny_config") else None,
        seed=int(cfg.seed),
        tokenizer=tokenizer,
    )
    if mcfg.get("peft"):
        from cj2.models import apply_peft

        model = apply_peft(model, to_plain(mcfg.peft))
    if mcfg.get("trainable_layers") is not None:  # after PEFT, so adapters train only in the top layers too
        from cj2.models import freeze_bottom_layers

        freeze_bottom_layers(model, int(mcfg.trainable_layers))
    log.info("model: %s", describe(model))
    return model, tokenizer


def build_callbacks(cfg: DictConfig, loggers: list) -> list[L.Callback]:
    """The callbacks of ``conf/callbacks/`` (evaluations, checkpoint), then the plumbing resume relies on:
    the data position, ``stop_after_steps``, the test-only kill point and, with a logger, the LR monitor."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    from cj2.callbacks import StopAfterSteps
    from cj2.data.datamodule import DataPositionCallback
    from cj2.testing import kill_callbacks  # test-only: CJ2_TEST_KILL_AT=train.step:k, else none

    callbacks = [
        hydra.utils.instantiate(entry, _convert_="all")
        for entry in (cfg.get("callbacks") or {}).values()
        if entry is not None and "_target_" in entry
    ]
    callbacks.append(DataPositionCallback())
    if cfg.get("stop_after_steps"):
        callbacks.append(StopAfterSteps(int(cfg.stop_after_steps)))
    callbacks += kill_callbacks()
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return callbacks


def build_trainer(cfg: DictConfig, out: Path, callbacks: list, loggers: list, precision: str) -> L.Trainer:
    tcfg = to_plain(cfg.trainer)
    tcfg.pop("precision", None)
    return hydra.utils.instantiate(
        tcfg,
        callbacks=callbacks,
        logger=loggers or False,
        precision=precision,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(out),
        _convert_="all",
    )


def run_metrics(cfg: DictConfig, trainer: L.Trainer, module, dm, val: dict, precision: str, t0: float):
    """What ``metrics.json`` holds: the final validation, every evaluation callback's results and untrained
    baseline, the run's facts and the data statistics (rejection sampling's at top level)."""
    metrics: dict[str, Any] = dict(val)
    for cb in trainer.callbacks:
        if hasattr(cb, "summary"):
            metrics.update(cb.summary())
    metrics.update(
        {
            "global_step": trainer.global_step,
            "wall_time_s": round(time.time() - t0, 1),
            "loss": cfg.loss.name,
            "seed": int(cfg.seed),
            "precision": precision,
            "skipped_nonfinite": module.skipped_nonfinite,
            "data_stats": dm.stats,
        }
    )
    metrics.update(dm.stats.get("rft_metrics", {}))  # M, rft/keep_rate, rft/pass_at_m, ... (top level)
    from cj2.comparison import arm_keys

    # the keys the comparison files an arm under (M, filter, arm, pair_orders, fallback where set); rounds is
    # rft_metrics' (the rounds run), loss and seed are above
    keys = arm_keys(cfg)
    metrics.update({k: v for k, v in keys.items() if k not in ("loss", "seed", "rounds")})
    return metrics


def trained_template(cfg: DictConfig) -> str:
    """The template the judge is trained on, for its card: the first of ``data.builtin.templates``; with
    no built-in data (the prompts of record files come rendered), the generated evaluation's template."""
    names = OmegaConf.select(cfg, "data.builtin.templates", default=None) if cfg.data.get("builtin") else None
    names = [names] if isinstance(names, str) else list(names or [])
    if names:
        return str(names[0])
    return str(OmegaConf.select(cfg, "callbacks.generated.template", default="cj2_check"))


def export(cfg: DictConfig, module, tokenizer, out: Path, is_global_zero: bool = True) -> None:
    """``<run>/hf``: a plain Hugging Face folder with ``cj2_judge.json`` (the template it was trained on).

    Call it on every rank: a model sharded with FSDP2 is gathered (every rank taking part) into a full copy
    on rank 0, which alone writes the folder (PEFT adapters merged, as unsharded)."""
    from cj2.data.templates import get_template
    from cj2.distributed import full_model, is_fsdp2
    from cj2.models.export import export_hf

    model = full_model(module.model) if is_fsdp2(module.model) else module.model
    if not is_global_zero:
        return
    tpl = get_template(trained_template(cfg))
    card = {"template": tpl.name, "format": tpl.format, "loss": str(cfg.loss.name), "run": str(out.name)}
    export_hf(model, tokenizer, out / "hf", judge_card=card)


def train(cfg: DictConfig) -> float | None:
    """Train one run (see the module docstring).

    Before anything is written: the config is checked (:func:`cj2.confcheck.check_config`), the run folder
    locked (:class:`cj2.rundir.RunLock`) and claimed (:func:`cj2.rundir.claim`: a fresh start never
    replaces a run), and a resume checked against its checkpoint (:func:`cj2.rundir.check_resume`). A start
    refused there leaves the folder as it was; a run that fails later writes ``failed.json`` first."""
    from cj2.comparison import FAILED_FILE, arm_keys, write_failure
    from cj2.confcheck import check_config
    from cj2.rundir import RunLock, claim, global_rank_from_env, run_contents

    out = entry_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    owner = global_rank_from_env() == 0  # the other ranks of a DDP run train in rank 0's folder
    lock: RunLock | None = None
    accepted = False
    try:
        if owner:
            lock = RunLock(out).acquire()
        check_config(cfg, "train")
        resolved = run_config(cfg)
        if owner:
            ckpt_path = claim(out, cfg.get("ckpt_path"), overwrite=bool(cfg.get("overwrite", False)))
        else:
            last = out / "last.ckpt"
            ckpt_path = (
                str(last) if cfg.get("ckpt_path") == "last" and last.exists() else cfg.get("ckpt_path")
            )
        resume_step = _check_resume(ckpt_path, resolved)
        accepted = True
        if owner:
            (out / FAILED_FILE).unlink(missing_ok=True)  # a rerun in the same folder: its own outcome only
            if not (out / ".hydra").exists():
                write_hydra_record(out, cfg)
        return _train(cfg, out, resolved, ckpt_path, resume_step)
    except Exception as err:
        # only in a folder this process owns, and not beside a run that a refused start leaves alone
        if lock is not None and (accepted or not run_contents(out)):
            try:
                keys = arm_keys(cfg)
            except Exception:  # noqa: BLE001 - the config itself may be what failed
                keys = {}
            write_failure(
                out, type(err).__name__, str(err), keys=keys, details=traceback.format_exc(), by="cj2.train"
            )
        reraise_scrubbed(err)
        raise
    finally:
        if lock is not None:
            lock.release()


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as saved (``config.yaml``, the checkpoint, wandb): resolved, secrets redacted, and the
    content fingerprint of its data files under ``data.content`` (a resume compares it)."""
    from cj2.data.datamodule import file_list
    from cj2.rundir import data_fingerprint

    resolved = redact(to_plain(cfg))
    data = resolved.get("data") or {}
    files = {k: file_list(data.get(k), f"data.{k}") for k in ("train_files", "val_files", "preference_files")}
    data["content"] = data_fingerprint({k: v for k, v in files.items() if v})
    return resolved


def _check_resume(ckpt_path: str | None, resolved: dict[str, Any]) -> float | None:
    if ckpt_path is None:
        return None
    from cj2.rundir import check_resume

    step = check_resume(str(ckpt_path), resolved)
    log.info("resuming from %s (step %s)", ckpt_path, step)
    return step


def _train(
    cfg: DictConfig, out: Path, resolved: dict[str, Any], ckpt_path: str | None, resume_step: float | None
) -> float | None:
    from cj2.data.datamodule import JudgeDataModule
    from cj2.data.io import atomic_write_json, atomic_write_text
    from cj2.distributed import is_fsdp2
    from cj2.module import JudgeModule
    from cj2.testing import fail_arm  # test-only: CJ2_TEST_FAIL_ARM=<key>=<value>[:kill], else nothing

    t0 = time.time()
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
    L.seed_everything(int(cfg.seed), workers=True)
    fail_arm(cfg)

    model, tokenizer = build_model(cfg)
    module = JudgeModule(
        model,
        to_plain(cfg.loss),
        hydra.utils.instantiate(cfg.optimizer),
        hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        tokenizer=tokenizer,
        on_nonfinite=cfg.on_nonfinite,
        run_config=resolved,
    )
    from cj2.curation.rft_data import BuiltinRFT

    data_kwargs = to_plain(cfg.data)
    dm = JudgeDataModule(
        tokenizer,
        **{k: v for k, v in data_kwargs.items() if k != "rejection"},
        rft=BuiltinRFT.from_config(data_kwargs.get("rejection")),  # RFT data: drawn once or by rounds
        seed=int(cfg.seed),
        accumulate_grad_batches=int(cfg.trainer.accumulate_grad_batches),
        preference=module.objective.needs_reference,
        need_verdict_tokens=module.objective.uses_verdict,
    )
    precision = resolve_precision(
        cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "auto"))
    )
    loggers = build_loggers(cfg, out, resolved, resume=ckpt_path is not None, resume_step=resume_step)
    trainer = build_trainer(cfg, out, build_callbacks(cfg, loggers), loggers, precision)
    model.train()  # from_pretrained returns eval mode; Lightning keeps the mode it finds
    metrics: dict[str, Any] = {}
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        val = trainer.validate(module, datamodule=dm, verbose=False)  # + the final generated judgments
        metrics = run_metrics(cfg, trainer, module, dm, val[0] if val else {}, precision, t0)
        if trainer.is_global_zero:
            atomic_write_json(out / "metrics.json", json_safe(metrics))
        if cfg.get("export", False) and (trainer.is_global_zero or is_fsdp2(module.model)):
            export(cfg, module, tokenizer, out, trainer.is_global_zero)  # sharded: every rank gathers
        if trainer.is_global_zero:
            log.info("run folder: %s", out)
    except Exception as err:
        _name_record_places(err, dm)
        raise
    finally:
        _finish_wandb(loggers)
    value = metrics.get(cfg.optimized_metric)
    return None if value is None else float(value)


def _name_record_places(err: Exception, dm: Any) -> None:
    """A non-finite loss names its records' ids; add the file and line each came from."""
    from cj2.module import NonFiniteLossError

    if not isinstance(err, NonFiniteLossError):
        return
    ids = getattr(err, "record_ids", None)
    if ids is None:  # the ids are in the message: "record ids: ['a', 'b']"
        import ast
        import re

        m = re.search(r"record ids: (\[.*?\])", str(err))
        try:
            ids = ast.literal_eval(m.group(1)) if m else []
        except (ValueError, SyntaxError):
            ids = []
    if ids:
        raise NonFiniteLossError(f"{err}\nrecords: {dm.describe_records(ids)}") from err


def _finish_wandb(loggers: list) -> None:
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()


@hydra_entry("train")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not _in_multirun():
        return train(cfg)
    try:
        return train(cfg)
    except Exception:  # the arm's failed.json has it; the table lists it; the sweep exits non-zero at the end
        log.exception("this sweep arm failed; the other arms go on (failed.json in %s)", entry_run_dir(cfg))
        return None


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not inside a Hydra run
        return False


if __name__ == "__main__":
    main()
