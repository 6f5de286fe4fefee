"""Lightning callbacks of a training run, instantiated from ``conf/callbacks/`` (``python -m cj2.train``).

* :class:`GeneratedJudgments` -- the judge writes critiques and verdicts for held-out questions in both
  orders, greedily; strict accuracy is the headline ``val/judge_acc`` (:mod:`cj2.evaluation.generated`).
* :class:`VerdictLogitBenchmark` -- the cheap one: P(verdict) at the verdict slot on a benchmark at every
  validation, one forward pass per pair (:mod:`cj2.evaluation.validation`).
* :class:`RunCheckpoint` -- ``last.ckpt`` (and ``step<N>.ckpt``) in the run folder, what ``ckpt_path=last``
  resumes from.
* :class:`StopAfterSteps` -- stop cleanly after N optimizer steps (a time slot on a pre-emptible cluster).

Both evaluations score the untrained model once before the first step on the same items
(``val_untrained/...``, cached by model and items, so a resumed run looks its baseline up instead of
recomputing it) and add their results to the run's ``metrics.json`` through :meth:`summary`.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

log = logging.getLogger(__name__)


def sharded(trainer: L.Trainer) -> bool:
    """Whether the strategy shards the parameters (FSDP, DeepSpeed ZeRO-3, model parallel): then a forward
    pass outside the wrapped module sees shards."""
    from cj2.distributed import shards_weights

    return shards_weights(trainer.strategy)


def _gathers(pl_module: L.LightningModule) -> bool:
    """Whether the model is sharded with FSDP2 (``trainer=fsdp``): the evaluations then run on the full
    parameters gathered on every rank (:func:`cj2.distributed.gathered`)."""
    from cj2.distributed import is_fsdp2

    return is_fsdp2(pl_module.model)


def model_id(pl_module: L.LightningModule) -> str:
    """What names the untrained model in the baseline cache: the run config's model and seed when the module
    carries them (``JudgeModule(run_config=...)``), else the model's own ``name_or_path``."""
    run = (getattr(pl_module, "hparams", None) or {}).get("run_config") or {}
    m = run.get("model")
    if m is not None:
        return f"{m.get('name_or_path')}|{m.get('dtype')}|{m.get('tiny_config')}|seed={run.get('seed')}"
    return str(getattr(getattr(pl_module.model, "config", None), "_name_or_path", type(pl_module.model)))


def autocast_dtype(trainer: L.Trainer) -> torch.dtype | None:
    """bfloat16 when the run trains in bf16 (mixed or true), else None: evaluations decode as it trains."""
    return torch.bfloat16 if str(trainer.precision).startswith("bf16") else None


class _InLoopEvaluation(L.Callback):
    """What both in-training evaluations do alike: build their items once the data module is set up, score
    the untrained model at the start of fit, run on the full parameters gathered on every rank when the model
    is sharded with FSDP2 (``trainer=fsdp``), skip (warning once) under another strategy that shards the
    weights (DeepSpeed ZeRO-3, Lightning's FSDP1), log their metrics and hand them to ``metrics.json``."""

    kind = "evaluation"

    def __init__(self, *, untrained_baseline: bool = True):
        self.untrained_baseline = untrained_baseline
        self.evaluator: Any = None  # None after build(): nothing to evaluate
        self._built = False
        self.results: dict[str, float] = {}
        self.baseline: dict[str, float] = {}
        self._warned = False

    # -------------------------------------------------------------- what a subclass provides
    def build(self, trainer: L.Trainer) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        raise NotImplementedError  # pragma: no cover - abstract

    # -------------------------------------------------------------- hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._built:
            self.evaluator, self._built = self.build(trainer), True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator is None or not self.untrained_baseline or self.baseline:
            return
        if self._skipped(trainer, pl_module):
            return
        from cj2.distributed import gathered

        t = time.time()
        with gathered(pl_module.model) as model:
            self.baseline = self.evaluator.baseline(
                model,
                pl_module.tokenizer,
                model_id=model_id(pl_module),
                cache_dir=_cache_dir(),
                # a resumed run reports the baseline it was started with (from the cache) and computes none
                lookup_only=trainer.ckpt_path is not None,
            )
        log.info("untrained %s baseline (%.0fs): %s", self.kind, time.time() - t, self.baseline)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator is None or trainer.sanity_checking or self._skipped(trainer, pl_module):
            return
        if not self.due(trainer):
            return
        from cj2.distributed import gathered

        with gathered(pl_module.model):  # every rank, also those that score nothing
            results = self.evaluate(trainer, pl_module)
        if results is None:
            return
        self.results = results
        for k, v in results.items():
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                pl_module.log(k, float(v), **self.log_options)

    log_options: dict[str, Any] = {"sync_dist": False}

    def summary(self) -> dict[str, float]:
        """The last results and the untrained baseline, for the run's ``metrics.json``."""
        return {**self.results, **self.baseline}

    def due(self, trainer: L.Trainer) -> bool:
        """Whether this validation evaluates (the same answer on every rank)."""
        return True

    def _skipped(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        if not sharded(trainer) or _gathers(pl_module):
            return False
        if not self._warned:
            log.warning(
                "%s shards the weights outside FSDP2: the in-loop %s is skipped; evaluate the exported "
                "folder with python -m cj2.evaluate",
                type(trainer.strategy).__name__,
                self.kind,
            )
            self._warned = True
        return True


class GeneratedJudgments(_InLoopEvaluation):
    """``val/judge_acc``: generated judgments of held-out questions in both orders (greedy), strict accuracy,
    at the end of training (the final validation) and every ``every_n_steps`` optimizer steps when > 0.

    ``n_items`` new questions of the trained families (the headline) and ``n_unseen_items`` of the families
    held out whole (``..._unseen_family``), from the data module's held-out split. Every generation is
    written to the run folder (``generations_step<N>.jsonl``, ``generations_latest.jsonl``), and the first
    ``table_rows`` judgments go to every logger that takes tables (``val/judgments``, a ``wandb.Table``
    with wandb; the others, CSV among them, get none). ``progress``: a bar over the prompts on stderr while
    the judge decodes, shown only when the trainer shows its own progress bar and stderr is a TTY.
    """

    kind = "generated-judgment evaluation"
    log_options = {"rank_zero_only": True, "sync_dist": False}

    def __init__(
        self,
        n_items: int = 24,
        n_unseen_items: int = 0,
        max_new_tokens: int = 256,
        batch_size: int = 24,
        template: str = "cj2_check",
        every_n_steps: int = 0,
        untrained_baseline: bool = True,
        table_rows: int = 32,
        progress: bool = True,
    ):
        super().__init__(untrained_baseline=untrained_baseline)
        self.table_rows = int(table_rows)
        self.progress = bool(progress)
        self.n_items = int(n_items)
        self.n_unseen_items = int(n_unseen_items)
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.template = template
        self.every_n_steps = int(every_n_steps)

    def build(self, trainer: L.Trainer) -> Any:
        from cj2.evaluation.generated import GeneratedEval

        if self.n_items + self.n_unseen_items <= 0:  # no items asked for: nothing to evaluate
            return None
        dm = trainer.datamodule
        return GeneratedEval(
            dm.eval_items(self.n_items, n_unseen=self.n_unseen_items),
            template=self.template,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            out_dir=Path(trainer.default_root_dir),
            heldout_families=dm.heldout_families(),
            autocast_dtype=autocast_dtype(trainer),
            # Lightning's switch (trainer.enable_progress_bar) decides for this bar too
            progress=self.progress and trainer.progress_bar_callback is not None,
        )

    def due(self, trainer: L.Trainer) -> bool:
        final = trainer.state.fn == TrainerFn.VALIDATING  # train() validates once after fit
        step, every = trainer.global_step, self.every_n_steps
        periodic = trainer.state.fn == TrainerFn.FITTING and every > 0 and step > 0 and step % every == 0
        return final or periodic

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        if not self.due(trainer):
            return None
        results = self.evaluator.run(
            pl_module.model,
            pl_module.tokenizer,
            tag=f"step{trainer.global_step}",
            is_global_zero=trainer.is_global_zero,
        )
        if trainer.is_global_zero:
            self.log_table(trainer)
        return results

    def log_table(self, trainer: L.Trainer) -> None:
        """The first ``table_rows`` judgments of the last run as ``<prefix>/judgments`` in every logger with
        a ``log_table`` (Lightning's WandbLogger); nothing (and no wandb import) without one."""
        takers = [lg for lg in getattr(trainer, "loggers", ()) if callable(getattr(lg, "log_table", None))]
        if not takers or self.table_rows <= 0 or not self.evaluator.last_rows:
            return
        columns, data = self.evaluator.table(self.evaluator.last_rows, self.table_rows)
        for lg in takers:
            lg.log_table(
                key=f"{self.evaluator.prefix}/judgments", columns=columns, data=data, step=trainer.global_step
            )


class VerdictLogitBenchmark(_InLoopEvaluation):
    """``val/verdict_logit_acc`` (and JudgerBenchV2's ``val/jbv2_final`` on the embedded benchmark) at every
    validation: one forward pass per pair reads P(verdict) at the verdict slot, no generation. Every rank
    scores the same items, so the values agree without a collective.

    ``items``: ``embedded`` (the JudgerBenchV2-shaped embedded benchmark: ``scenarios`` x ``n_queries`` x 6
    candidate models) or ``heldout`` (the generated evaluation's held-out items, ``n_items`` +
    ``n_unseen_items``). ``both_orders`` adds the swapped pass (swap consistency, position bias).
    """

    kind = "verdict-logit evaluation"

    def __init__(
        self,
        template: str = "cj2_check",
        items: str = "embedded",
        n_items: int = 24,
        n_unseen_items: int = 0,
        n_queries: int = 5,
        scenarios: list[str] | None = None,
        batch_size: int = 8,
        both_orders: bool = False,
        seed: int = 0,
        untrained_baseline: bool = True,
    ):
        super().__init__(untrained_baseline=untrained_baseline)
        if items not in ("embedded", "heldout"):
            raise ValueError(f"callbacks.verdict_logits.items={items!r}; expected 'embedded' or 'heldout'")
        self.template = template
        self.items = items
        self.n_items = int(n_items)
        self.n_unseen_items = int(n_unseen_items)
        self.n_queries = int(n_queries)
        self.scenarios = list(scenarios) if scenarios else None
        self.batch_size = int(batch_size)
        self.both_orders = bool(both_orders)
        self.seed = int(seed)

    def build(self, trainer: L.Trainer) -> Any:
        from cj2.evaluation.validation import VerdictLogitEval

        common = dict(
            seed=self.seed,
            batch_size=self.batch_size,
            both_orders=self.both_orders,
            autocast_dtype=autocast_dtype(trainer),
        )
        if self.items == "heldout":
            dm = trainer.datamodule
            return VerdictLogitEval(
                dm.eval_items(self.n_items, n_unseen=self.n_unseen_items),
                self.template,
                heldout_families=dm.heldout_families(),
                **common,
            )
        return VerdictLogitEval.embedded(
            self.template, n_queries=self.n_queries, scenarios=self.scenarios, **common
        )

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        return self.evaluator.run(pl_module.model, pl_module.tokenizer)


class RunCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that writes into the run folder (the trainer's
    ``default_root_dir``) unless given a ``dirpath``: ``last.ckpt`` is what ``ckpt_path=last`` resumes."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(trainer.default_root_dir)
        super().setup(trainer, pl_module, stage)


class StopAfterSteps(L.Callback):
    """Stop cleanly after ``steps`` optimizer steps; the schedule still spans ``trainer.max_steps``."""

    def __init__(self, steps: int):
        self.steps = int(steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def _cache_dir() -> Path:
    from cj2.models import cache_dir

    return cache_dir()


__all__ = [
    "GeneratedJudgments",
    "RunCheckpoint",
    "StopAfterSteps",
    "VerdictLogitBenchmark",
    "autocast_dtype",
    "model_id",
    "sharded",
]
