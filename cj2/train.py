"""``python -m cj2.train``: Hydra config -> model, data, objective -> Lightning fit -> metrics, export.

Thin on purpose: everything it calls works from plain Python. ``train(cfg)`` returns the sweep metric
(``optimized_metric``, by default ``val/judge_acc``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from cj2.runtime import (
    CONF_DIR,
    AtomicCheckpointIO,
    redact,
    register_resolvers,
    reraise_scrubbed,
    resolve_precision,
    wandb_mode,
)

log = logging.getLogger("cj2.train")
register_resolvers()


def _run_dir(cfg: DictConfig) -> Path:
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # called from Python without Hydra
        from cj2.runtime import run_dir

        return Path(run_dir(cfg.output_root, cfg.get("run_name"), cfg.experiment_name))


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


def build_loggers(cfg: DictConfig, out: Path, resolved: dict[str, Any]) -> list:
    loggers: list = []
    lcfg = cfg.logger
    if lcfg.get("csv", {}).get("enabled", False):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=str(out), name="csv", version=""))
    wcfg = lcfg.get("wandb", {})
    if wcfg.get("enabled", False):
        from lightning.pytorch.loggers import WandbLogger

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
                id=None,
            )
        )
    return loggers


class StopAfterSteps(L.Callback):
    def __init__(self, steps: int):
        self.steps = int(steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        if torch.is_tensor(v):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def train(cfg: DictConfig) -> float | None:
    from cj2.data.datamodule import DataPositionCallback, JudgeDataModule
    from cj2.data.templates import get_template
    from cj2.judging import GeneratedEval
    from cj2.losses import build_objective
    from cj2.models import cache_dir, describe, load_model, load_tokenizer
    from cj2.models.export import export_hf
    from cj2.module import JudgeModule

    t0 = time.time()
    out = _run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    L.seed_everything(int(cfg.seed), workers=True)

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

        model = apply_peft(model, OmegaConf.to_container(mcfg.peft, resolve=True))
    if mcfg.get("trainable_layers") is not None:  # after PEFT, so adapters train only in the top layers too
        from cj2.models import freeze_bottom_layers

        freeze_bottom_layers(model, int(mcfg.trainable_layers))
    log.info("model: %s", describe(model))

    loss_cfg = OmegaConf.to_container(cfg.loss, resolve=True)
    objective = build_objective(loss_cfg)
    dcfg = OmegaConf.to_container(cfg.data, resolve=True)
    dm = JudgeDataModule(
        tokenizer,
        **dcfg,
        seed=int(cfg.seed),
        accumulate_grad_batches=int(cfg.trainer.accumulate_grad_batches),
        preference=objective.needs_reference,
        need_verdict_tokens=objective.uses_verdict,
    )

    precision = resolve_precision(
        cfg.trainer.get("precision", "auto"), str(cfg.trainer.get("accelerator", "auto"))
    )
    ckpt = _resolve_ckpt(cfg.get("ckpt_path"), out)
    # A resumed run reports the untrained baselines it was started with (from the cache) and computes none.
    resuming = ckpt is not None
    model_id = f"{mcfg.name_or_path}|{mcfg.dtype}|{mcfg.get('tiny_config')}|seed={cfg.seed}"
    gcfg = cfg.eval.generated
    gen_eval = None
    baseline: dict[str, float] = {}
    if gcfg.enabled and gcfg.n_items > 0:
        gen_eval = GeneratedEval(
            dm.eval_items(int(gcfg.n_items), n_unseen=int(gcfg.get("n_unseen_items", 0))),
            template=gcfg.template,
            max_new_tokens=int(gcfg.max_new_tokens),
            batch_size=int(gcfg.batch_size),
            out_dir=out,
            heldout_families=dm.heldout_families(),
            autocast_dtype=torch.bfloat16 if precision.startswith("bf16") else None,
        )
        if gcfg.untrained_baseline:
            t = time.time()
            baseline = gen_eval.baseline(
                model, tokenizer, model_id=model_id, cache_dir=cache_dir(), lookup_only=resuming
            )
            log.info("untrained baseline (%.0fs): %s", time.time() - t, baseline)

    vcfg = cfg.eval.get("verdict_logits")
    logit_eval = None
    if vcfg is not None and vcfg.enabled:
        from cj2.evaluation.validation import VerdictLogitEval

        common = dict(
            seed=int(cfg.seed),
            batch_size=int(vcfg.batch_size),
            both_orders=bool(vcfg.both_orders),
            autocast_dtype=torch.bfloat16 if precision.startswith("bf16") else None,
        )
        if vcfg.get("items", "embedded") == "heldout":  # the generated evaluation's held-out items
            logit_eval = VerdictLogitEval(
                dm.eval_items(int(vcfg.n_items), n_unseen=int(vcfg.get("n_unseen_items", 0))),
                vcfg.template,
                heldout_families=dm.heldout_families(),
                **common,
            )
        else:  # the embedded JudgerBenchV2-shaped benchmark (hard-tier scenarios)
            logit_eval = VerdictLogitEval.embedded(
                vcfg.template, n_queries=int(vcfg.n_queries), scenarios=vcfg.scenarios, **common
            )
        t = time.time()
        if vcfg.untrained_baseline:
            baseline.update(
                logit_eval.baseline(
                    model, tokenizer, model_id=model_id, cache_dir=cache_dir(), lookup_only=resuming
                )
            )
        if "val_untrained/verdict_logit_acc" in baseline:
            log.info(
                "untrained verdict-logit baseline on %d pairs (%.0fs): acc %.3f, jbv2_final %.1f",
                len(logit_eval),
                time.time() - t,
                baseline["val_untrained/verdict_logit_acc"],
                baseline.get("val_untrained/jbv2_final", math.nan),
            )

    module = JudgeModule(
        model,
        loss_cfg,
        hydra.utils.instantiate(cfg.optimizer),
        hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        tokenizer=tokenizer,
        on_nonfinite=cfg.on_nonfinite,
        generated_eval=gen_eval,
        verdict_logit_eval=logit_eval,
    )
    if gen_eval is not None and int(gcfg.every_n_steps) > 0:
        module.generated_every_n_steps = int(gcfg.every_n_steps)

    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    callbacks = [
        DataPositionCallback(),
        ModelCheckpoint(
            dirpath=str(out),
            filename="step{step}",
            save_last=True,
            save_top_k=0,
            every_n_train_steps=int(cfg.checkpoint_every_n_steps),
            save_on_train_epoch_end=False,
            enable_version_counter=False,
        ),
    ]
    if cfg.get("stop_after_steps"):
        callbacks.append(StopAfterSteps(int(cfg.stop_after_steps)))
    from cj2.testing import kill_callbacks  # test-only: CJ2_TEST_KILL_AT=train.step:k, else none

    callbacks += kill_callbacks()
    loggers = build_loggers(cfg, out, resolved)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    tcfg.pop("precision", None)
    trainer = hydra.utils.instantiate(
        tcfg,
        callbacks=callbacks,
        logger=loggers or False,
        precision=precision,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(out),
        _convert_="all",
    )
    model.train()  # from_pretrained returns eval mode; Lightning keeps the mode it finds
    metrics: dict[str, Any] = {}
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
        # the final validation: teacher-forced diagnostics + generated judgments in both orders
        module.run_generated_eval = gen_eval is not None
        val = trainer.validate(module, datamodule=dm, verbose=False)
        metrics.update(val[0] if val else {})
        metrics.update(module.generated_results)
        metrics.update(module.verdict_logit_results)
        metrics.update(baseline)
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
        if trainer.is_global_zero:
            from cj2.data.io import atomic_write_json

            atomic_write_json(out / "metrics.json", _json_safe(metrics))
            if cfg.get("export", False):
                tpl = get_template(str(OmegaConf.select(cfg, "eval.generated.template", default="cj2_check")))
                export_hf(
                    module.model,
                    tokenizer,
                    out / "hf",
                    judge_card={
                        "template": tpl.name,
                        "format": tpl.format,
                        "loss": str(cfg.loss.name),
                        "run": str(out.name),
                    },
                )
            log.info("run folder: %s", out)
    except Exception as err:  # keep secrets out of tracebacks printed by Hydra
        reraise_scrubbed(err)
        raise
    finally:
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                import wandb

                wandb.finish()
    value = metrics.get(cfg.optimized_metric)
    return None if value is None else float(value)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return train(cfg)


if __name__ == "__main__":
    main()
