"""``python -m cj2.curate``: Hydra config -> the curation pipeline -> training data, stats, a wandb run.

Thin on purpose: :func:`cj2.curation.pipeline.run_pipeline` does the work from a plain mapping. A rerun of
the same config after a kill resumes the rejection sampling where it stopped (finished shards are read
back from the cache); a finished run is a cache hit.

    python -m cj2.curate +pipeline=embedded
    python -m cj2.curate +pipeline=paper generator.name_or_path=Qwen/Qwen2.5-72B-Instruct
    python -m cj2.curate +pipeline=rft sources=[my_pairs] generator=openai \\
        generator.base_url=http://host:8000/v1 \\
        generator.name_or_path=my-72b
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cj2.runtime import (
    entry_run_dir,
    hydra_entry,
    redact,
    register_resolvers,
    reraise_scrubbed,
    to_plain,
    wandb_run,
)

log = logging.getLogger("cj2.curate")
register_resolvers()


def flatten(stats: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested stats dict as ``a/b/c`` keys (what wandb gets)."""
    out: dict[str, float] = {}
    if isinstance(stats, dict):
        for k, v in stats.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(stats, (int, float)) and not isinstance(stats, bool):
        out[prefix] = stats
    return out


def curate(cfg: DictConfig) -> dict[str, Any]:
    """Run the pipeline of ``cfg`` in its run folder; returns the statistics."""
    from cj2.confcheck import check_config
    from cj2.curation.pipeline import run_pipeline
    from cj2.data.io import atomic_write_text

    t0 = time.time()
    out = entry_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        check_config(cfg, "curate")
        resolved = redact(to_plain(cfg))
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
        fields = dict(group=str(cfg.experiment_name), job_type="curate", name=out.name)
        with wandb_run(cfg, out, config=resolved, **fields) as run:  # open while the pipeline runs
            stats = run_pipeline(cfg, out)
            if run is not None:
                run.summary.update(flatten(stats["summary"]))
                stages = ("stages", "mixture", "hf_probe", "decontamination")
                run.log(flatten({k: stats[k] for k in stages if k in stats}))
        log.info("curation done in %.0fs: %s", time.time() - t0, json.dumps(stats["summary"], indent=1))
        log.info("run folder: %s", out)
        return stats
    except Exception as err:  # keep secrets out of tracebacks printed by Hydra
        reraise_scrubbed(err)
        raise


@hydra_entry("curate")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    curate(cfg)


if __name__ == "__main__":
    main()
