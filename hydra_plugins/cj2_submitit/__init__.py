"""cj2's submitit launchers: ``hydra/launcher=local`` and ``hydra/launcher=slurm`` (cj2[slurm]).

They are Hydra's submitit launchers (each arm of a sweep its own process, or its own SLURM job of a job
array) with two changes:

* an arm whose process died without a result (killed, out of memory, time limit, node failure: submitit
  raises for it) no longer aborts the whole sweep in the launching process, which would also skip the
  comparison table. The launcher writes ``failed.json`` with submitit's reason in the arm's folder (unless
  training wrote one), logs it, and the sweep goes on; the table lists the arm as failed and the sweep exits
  non-zero (:class:`cj2.comparison.ComparisonCallback`). Exceptions inside training are handled by
  :mod:`cj2.train` the same way with any launcher.
* ``local`` runs at most ``array_parallelism`` arms at a time (in waves; submitit's local executor would start
  them all at once) and gives each arm ``cpus_per_task`` torch threads.

Hydra only instantiates launchers that live in the ``hydra_plugins`` package, hence this module. Without
hydra-submitit-launcher installed it defines nothing (Hydra imports every plugin module at start-up).
"""

# No `from __future__ import annotations`: Hydra imports plugin modules in a way that leaves them out of
# sys.modules while they run, and dataclasses would then fail to resolve string annotations.
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

try:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
except ImportError:  # cj2[slurm] is not installed: no submitit launchers
    BaseSubmititLauncher = None


def _arm_keys_from_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """loss / M / seed from an arm's overrides, when its config cannot be composed."""
    names = {"loss": "loss", "data.rejection.m": "M", "seed": "seed"}
    keys: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if sep and key in names:
            keys[names[key]] = int(value) if value.lstrip("-").isdigit() else value
    return keys


if BaseSubmititLauncher is not None:
    from hydra.core.config_store import ConfigStore

    class _ReportingLauncher(BaseSubmititLauncher):
        """A submitit launcher that reports an arm that died instead of raising for it (module docstring)."""

        def _make_executor(self, params: dict[str, Any]) -> Any:
            import submitit

            params = dict(params)
            folder = params.pop("submitit_folder")
            init = {}
            if "max_num_timeout" in params:  # an executor argument, not a job parameter
                init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
            executor = submitit.AutoExecutor(folder=folder, cluster=self._EXECUTOR, **init)
            shared = set(BaseQueueConf.__dataclass_fields__)  # the rest take the executor's prefix
            executor.update_parameters(
                **{(k if k in shared else f"{self._EXECUTOR}_{k}"): v for k, v in params.items()}
            )
            return executor

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
            from hydra.core.singleton import Singleton
            from hydra.core.utils import filter_overrides

            assert self.config is not None
            params = dict(self.params)
            wave = len(job_overrides)
            if self._EXECUTOR == "local":  # submitit's local executor has no array parallelism of its own
                wave = max(1, int(params.pop("array_parallelism", None) or wave))
            executor = self._make_executor(params)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
            calls = []
            for num, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
                calls.append(
                    (list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
                )
            results = []
            for start in range(0, len(calls), wave):
                batch = calls[start : start + wave]
                jobs = executor.map_array(self, *zip(*batch))
                results += [self._result(job, call[0], call[2]) for job, call in zip(jobs, batch)]
            return results

        def _result(self, job: Any, overrides: list[str], num: int) -> Any:
            from hydra.core.utils import JobReturn, JobStatus

            if self._EXECUTOR == "local":
                # submitit waits up to 15 s for the result file of a job that ended, for slow shared file
                # systems; a local job writes it on this machine before it exits: a killed arm need not wait.
                job._results_timeout_s = 2
            try:
                return job.results()[0]
            except Exception as err:  # noqa: BLE001 - submitit: the job died or ended without a result
                reason = str(err)
                log.error("sweep arm #%d (%s) ended without a result: %s", num, " ".join(overrides), reason)
                self._record_failure(overrides, num, type(err).__name__, reason, getattr(job, "state", "?"))
                # Completed without a value: Hydra's sweeper raises for a failed job, which would end the
                # multirun before the other arms' results and the table. The failure is on record instead.
                return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)

        def _record_failure(
            self, overrides: list[str], num: int, error: str, reason: str, state: str
        ) -> None:
            from cj2.comparison import FAILED_FILE, METRICS_FILE, arm_keys, write_failure

            assert self.config is not None and self.hydra_context is not None
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            try:  # the arm's folder as the job would have made it (the same subdir interpolation)
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                arm_dir = sweep_dir / str(cfg.hydra.sweep.subdir)
                keys = arm_keys(cfg)
            except Exception:  # noqa: BLE001 - a config that does not compose: a folder of its own
                arm_dir, keys = sweep_dir / f"failed_job_{num}", _arm_keys_from_overrides(overrides)
            if (arm_dir / FAILED_FILE).exists() or (arm_dir / METRICS_FILE).exists():
                return  # training recorded its own outcome before the process ended
            lines = [ln for ln in reason.splitlines() if ln.strip()]
            message = f"{lines[0] if lines else error} (submitit state {state})"
            write_failure(arm_dir, error, message, keys=keys, details=reason, by=f"submitit {self._EXECUTOR}")

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            cpus = self.params.get("cpus_per_task")
            if self._EXECUTOR == "local" and cpus:  # in the arm's process, before training starts
                import torch

                torch.set_num_threads(int(cpus))
            return super().__call__(*args, **kwargs)

    class LocalLauncher(_ReportingLauncher):
        _EXECUTOR = "local"

    class SlurmLauncher(_ReportingLauncher):
        _EXECUTOR = "slurm"

    @dataclass
    class Cj2LocalConf(LocalQueueConf):
        _target_: str = "hydra_plugins.cj2_submitit.LocalLauncher"
        # At most this many arms at once (null: all of them).
        array_parallelism: int | None = 1

    @dataclass
    class Cj2SlurmConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.cj2_submitit.SlurmLauncher"

    ConfigStore.instance().store(
        group="hydra/launcher", name="cj2_submitit_local", node=Cj2LocalConf, provider="cj2"
    )
    ConfigStore.instance().store(
        group="hydra/launcher", name="cj2_submitit_slurm", node=Cj2SlurmConf, provider="cj2"
    )
