"""``python -m cj2.refine``: do a judge's critiques make a policy's answers better? (arXiv 2507.09104, T. 5)

The policy answers each question; the judge critiques the answer (what is wrong, what to fix, whether it
is correct); the policy revises; optionally for several rounds. Controls on the same questions, answers
and seed: self-refine (no critique) and a second critic (by default the untrained base model). Verifiable
questions (the built-in tasks) are scored against their computed truth, open-ended ones (MT-Bench, a
question file) by a judge comparing the revision with the first answer in both orders. Thin on purpose:
the work is :func:`cj2.refinement.runner.run_refine`. Examples::

    python -m cj2.refine                                        # the embedded demonstration (README)
    python -m cj2.refine judge.name_or_path=path/to/exported/judge questions.n=100 refine.max_items=null
    python -m cj2.refine questions.tiers=[hard] refine.rounds=2
    python -m cj2.refine questions.source=mtbench questions.n=null +judge@scorer=openai \\
        scorer.base_url=http://host:8000/v1 scorer.name_or_path=gpt-judge
    python -m cj2.refine policy=openai policy.base_url=http://host:8000/v1 policy.name_or_path=llama-3.1-8b

``refine(cfg)`` writes ``refine.jsonl`` (every answer, critique and revision), ``metrics.json`` and
``report.md`` into the run folder and returns the critic arm's accuracy after revision (open-ended: its
win rate).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cj2.refinement.runner import refine_dir, register_resolvers
from cj2.runtime import hydra_entry, log_summary, redact, reraise_scrubbed, to_plain, wandb_run

log = logging.getLogger("cj2.refine")
register_resolvers()


def _out_dir(cfg: DictConfig) -> Path:
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    return Path(
        refine_dir(
            cfg.output_root,
            cfg.get("run_name"),
            cfg.policy,
            cfg.judge,
            cfg.get("second_critic"),
            cfg.get("scorer"),
            cfg.questions,
            cfg.refine,
            cfg.seed,
        )
    )


def _summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers logged to wandb: ``<arm>/<metric>`` and ``before/accuracy``."""
    res = metrics["results"]
    out: dict[str, float] = {}
    if metrics["scoring"] == "verifiable":
        out["before/accuracy"] = res["before"]["mean"]
        for arm, m in res["arms"].items():
            out[f"{arm}/accuracy"] = m["after"]["mean"]
            out[f"{arm}/delta"] = m["delta"]["mean"]
            out[f"{arm}/right_to_wrong"] = m["right_to_wrong"]["mean"]
            out[f"{arm}/wrong_to_right"] = m["wrong_to_right"]["mean"]
            out[f"{arm}/revision_parse_rate"] = m["revision_parse_rate"]
    else:
        for arm, m in res["arms"].items():
            out[f"{arm}/win_rate"] = m["win_rate"]["mean"]
            out[f"{arm}/swap_consistency"] = m["swap_consistency"]
    out["wall_time_s"] = metrics["wall_time_s"]
    return {k: float(v) for k, v in out.items() if v is not None}


def _log_wandb(cfg: DictConfig, out: Path, resolved: dict[str, Any], metrics: dict[str, Any]) -> None:
    fields = dict(
        name=out.name,
        group=f"refine-{metrics['scoring']}",
        job_type="refine",
        tags=[f"policy={metrics['policy']}", f"judge={metrics['critics']['critic']}"],
    )
    with wandb_run(cfg, out, config=resolved, **fields) as run:
        if run is not None:
            log_summary(run, _summary(metrics))


def refine(cfg: DictConfig) -> float | None:
    """Run the loop ``cfg`` describes; return the critic arm's accuracy after revision (or win rate)."""
    from cj2.refinement.runner import run_refine

    out = _out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        from cj2.confcheck import check_config

        check_config(cfg, "refine")
        container = to_plain(cfg)
        metrics = run_refine(container, out)  # writes config.yaml, secrets redacted
        _log_wandb(cfg, out, redact(container), metrics)
    except Exception as err:  # keep secrets out of the tracebacks Hydra prints
        reraise_scrubbed(err)
        raise
    print((out / "report.md").read_text())
    log.info("refine folder: %s", out)
    m = metrics["results"]["arms"]["critic"]
    value = m["after"]["mean"] if metrics["scoring"] == "verifiable" else m["win_rate"]["mean"]
    return None if value is None else float(value)


@hydra_entry("refine")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return refine(cfg)


if __name__ == "__main__":
    main()
