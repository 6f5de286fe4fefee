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
    CONF_MODULE,
    WANDB_ID_FILE,
    AtomicCheckpointIO,
    entry_run_dir,
    json_safe,
    redact,
    register_resolvers,
    reraise_scrubbed,
    resolve_precision,
    to_plain,
    wandb_mode,
    wandb_run_id,
)

log = logging.getLogger("cj2.train")
register_resolvers()


def _resolve_ckpt(ckpt_path: str | None, out: Path) -> str | None:
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = out / "last.ckpt"
        if last.exists():
            log.info("resuming from %s", last)
            return str(last)
        log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
        return None
    if not Path(ckpt_path).exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r} does not exist")
    return str(ckpt_path)


def build_loggers(cfg: DictConfig, out: Path, resolved: dict[str, Any], *, resume: bool = False) -> list:
    """The run's loggers (``conf/logger/``): CSV and/or wandb. The wandb run's id is kept in the run folder
    (``wandb_run_id``), so a run resumed from a checkpoint (``resume``) continues the same wandb run."""
    loggers: list = []
    lcfg = cfg.logger
    if lcfg.get("csv", {}).get("enabled", False):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=str(out), name="csv", version=""))
    wcfg = lcfg.get("wandb", {})
    if wcfg.get("enabled", False):
        from lightning.fabric.utilities.rank_zero import rank_zero_only
        from lightning.pytorch.loggers import WandbLogger

        rank_zero = int(getattr(rank_zero_only, "rank", 0) or 0) == 0
        run_id = wandb_run_id(out, resume=resume, save=rank_zero)
        log.info("wandb run id %s (%s)", run_id, out / WANDB_ID_FILE)
        mode = wandb_mode(wcfg.get("mode"))
        loss_name = cfg.loss.name
        m = OmegaConf.select(cfg, "data.rejection.m", default=None)
        tags = [f"loss={loss_name}"] + ([f"M={m}"] if m is not None else [])
        name = out.name if cfg.get("run_name") is None else str(cfg.run_name)
        loggers.append(
            WandbLogger(
                project=wcfg.get("project", "cj2"),
                entity=wcfg.get("entity"),
                mode=mode,
                save_dir=str(out),
                group=str(cfg.experiment_name),
                job_type=loss_name,
                tags=tags,
                name=name,
                config=resolved,
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
    m = OmegaConf.select(cfg, "data.rejection.m", default=None)
    if m is not None:
        metrics["M"] = int(m)
        metrics["filter"] = str(OmegaConf.select(cfg, "data.rejection.filter", default=None) or "outcome")
    return metrics


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
    tpl = get_template(str(OmegaConf.select(cfg, "callbacks.generated.template", default="cj2_check")))
    card = {"template": tpl.name, "format": tpl.format, "loss": str(cfg.loss.name), "run": str(out.name)}
    export_hf(model, tokenizer, out / "hf", judge_card=card)


def train(cfg: DictConfig) -> float | None:
    """Train one run (see the module docstring); on an exception, ``failed.json`` in the run folder first."""
    from cj2.comparison import FAILED_FILE, arm_keys, write_failure

    out = entry_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / FAILED_FILE).unlink(missing_ok=True)  # a rerun in the same folder: its own outcome only
    try:
        return _train(cfg, out)
    except Exception as err:
        try:
            keys = arm_keys(cfg)
        except Exception:  # noqa: BLE001 - the config itself may be what failed
            keys = {}
        write_failure(
            out, type(err).__name__, str(err), keys=keys, details=traceback.format_exc(), by="cj2.train"
        )
        raise


def _train(cfg: DictConfig, out: Path) -> float | None:
    from cj2.data.datamodule import JudgeDataModule
    from cj2.data.io import atomic_write_json
    from cj2.distributed import is_fsdp2
    from cj2.module import JudgeModule
    from cj2.testing import fail_arm  # test-only: CJ2_TEST_FAIL_ARM=<key>=<value>[:kill], else nothing

    t0 = time.time()
    resolved = redact(to_plain(cfg))
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
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

    data_cfg = to_plain(cfg.data)
    dm = JudgeDataModule(
        tokenizer,
        **{k: v for k, v in data_cfg.items() if k != "rejection"},
        rft=BuiltinRFT.from_config(data_cfg.get("rejection")),  # RFT data: drawn once or by rounds
        seed=int(cfg.seed),
        accumulate_grad_batches=int(cfg.trainer.accumulate_grad_batches),
        preference=module.objective.needs_reference,
        need_verdict_tokens=module.objective.uses_verdict,
    )
    precision = resolve_precision(
        cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "auto"))
    )
    ckpt_path = _resolve_ckpt(cfg.get("ckpt_path"), out)
    loggers = build_loggers(cfg, out, resolved, resume=ckpt_path is not None)
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
    except Exception as err:  # keep secrets out of tracebacks printed by Hydra
        reraise_scrubbed(err)
        raise
    finally:
        _finish_wandb(loggers)
    value = metrics.get(cfg.optimized_metric)
    return None if value is None else float(value)


def _finish_wandb(loggers: list) -> None:
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()


@hydra.main(version_base="1.3", config_path=CONF_MODULE, config_name="train")
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
