"""``python -m cj2.evaluate``: Hydra config -> judge + benchmark -> judgments (resumable) -> metrics, report.

Thin on purpose: the work is :func:`cj2.evaluation.runner.run_evaluation`, usable from plain Python.
Examples::

    python -m cj2.evaluate                                   # embedded SmolLM2 judge, embedded benchmark
    python -m cj2.evaluate judge.name_or_path=outputs/runs/quickstart/hf
    python -m cj2.evaluate benchmark=judgerbenchv2 benchmark.path=data/judgerbenchv2 placement=opencompass
    python -m cj2.evaluate judge=openai judge.base_url=http://host:8000/v1 judge.name_or_path=my-judge \\
        benchmark=judgebench benchmark.path=judgebench.jsonl
    python -m cj2.evaluate judge=predictions judge.path=outputs.jsonl benchmark=rewardbench benchmark.path=...
    python -m cj2.evaluate evaluate.style_probe=true          # + the style-preference prompt (Fig. 5)
    python -m cj2.evaluate +suite=paper judge=...              # the paper's Table 2 columns, one table

``evaluate(cfg)`` returns the metric named by ``optimized_metric`` (for sweepers) after writing
``metrics.json``, ``report.md``, the per-item JSONL files and plots into the run folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cj2.evaluation.runner import eval_dir, register_resolvers
from cj2.runtime import hydra_entry, log_summary, redact, reraise_scrubbed, to_plain, wandb_run

log = logging.getLogger("cj2.evaluate")
register_resolvers()


def _out_dir(cfg: DictConfig) -> Path:
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    return Path(
        eval_dir(
            cfg.output_root,
            cfg.get("run_name"),
            cfg.judge,
            cfg.benchmark,
            cfg.evaluate,
            cfg.placement,
            cfg.seed,
        )
    )


def _log_wandb(cfg: DictConfig, out: Path, resolved: dict[str, Any], metrics: dict[str, Any]) -> None:
    fields = dict(
        name=out.name,
        group=f"eval-{metrics['benchmark']}",
        job_type="evaluate",
        tags=[f"benchmark={metrics['benchmark']}", f"judge={metrics['judge']}"],
    )
    with wandb_run(cfg, out, config=resolved, **fields) as run:
        if run is None:
            return
        import wandb

        from cj2.evaluation.report import domain_rows, wandb_summary

        # the numbers and, as protocol/<entry> strings, their protocol
        log_summary(run, wandb_summary(metrics))
        columns, rows = domain_rows(metrics["results"])
        if rows:  # the per-domain table of report.md, as a table
            run.log({"domains": wandb.Table(columns=columns, data=rows)})
        for plot in metrics.get("plots", []):
            run.log({f"plots/{Path(plot).stem}": wandb.Image(str(plot))})


def evaluate(cfg: DictConfig) -> float | None:
    """Run the evaluation ``cfg`` describes; return ``cfg.optimized_metric`` (``<mode>/<metric>``)."""
    from cj2.confcheck import check_config
    from cj2.evaluation.runner import run_evaluation

    if cfg.get("suite"):  # +suite=paper|field: several benchmarks, one table (cj2.evaluation.suite)
        from cj2.evaluation.suite import evaluate_suite

        try:
            check_config(cfg, "evaluate")
        except Exception as err:  # keep secrets out of the tracebacks Hydra prints
            reraise_scrubbed(err)
            raise
        return evaluate_suite(cfg)

    out = _out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        check_config(cfg, "evaluate")
        container = to_plain(cfg)
        metrics = run_evaluation(container, out)  # writes config.yaml, secrets redacted
        resolved = redact(container)
        _log_wandb(cfg, out, resolved, metrics)
    except Exception as err:  # keep secrets out of the tracebacks Hydra prints
        reraise_scrubbed(err)
        raise
    report = (out / "report.md").read_text()
    print(report)
    log.info("evaluation folder: %s", out)
    wanted = cfg.get("optimized_metric")
    if wanted:
        mode, _, key = str(wanted).partition("/")
    else:  # the strict accuracy of the first scoring mode
        mode, key = next(iter(metrics["results"])), "accuracy"
    value = metrics["results"].get(mode, {}).get(key)
    return None if value is None else float(value)


@hydra_entry("evaluate")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return evaluate(cfg)


if __name__ == "__main__":
    main()
