"""Comparing the arms of a sweep: one row per arm (loss, M), mean ± std over seeds.

:func:`compare` reads every ``metrics.json`` under a sweep folder and writes ``comparison.csv`` and
``comparison.md`` there. :class:`ComparisonCallback` runs it when a Hydra multirun ends.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from cj2.data.io import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_COLUMNS = (
    "val/judge_acc", "val/judge_acc_parsed", "val/parse_rate", "val/swap_consistency", "val/verdict_acc_tf",
    "val/verdict_logit_acc", "val/jbv2_final", "rft/keep_rate", "rft/pass_at_m", "rft/kept", "wall_time_s",
)
ARM_KEYS = ("loss", "M")


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {statistics.stdev(values):.2g}"


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(Path(sweep_dir).rglob("metrics.json")):
        try:
            runs.append({"_path": str(path.parent), **json.loads(path.read_text())})
        except (OSError, json.JSONDecodeError) as err:  # a run killed mid-write: say so, leave it out
            log.warning("comparison: skipping unreadable %s (%s)", path, err)
            continue
    return runs


def compare(sweep_dir: str | Path, columns: Sequence[str] = DEFAULT_COLUMNS, *, write: bool = True) -> str:
    runs = collect(sweep_dir)
    arms: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        arms[tuple(r.get(k) for k in ARM_KEYS)].append(r)
    present = [c for c in columns if any(isinstance(r.get(c), (int, float)) for r in runs)]
    header = [*ARM_KEYS, "seeds", *present]
    rows = []
    for arm, rs in sorted(arms.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        row = {k: ("" if v is None else v) for k, v in zip(ARM_KEYS, arm)}
        row["seeds"] = ",".join(str(r.get("seed", "?")) for r in sorted(rs, key=lambda r: str(r.get("seed"))))
        for c in present:
            vals = [float(r[c]) for r in rs if isinstance(r.get(c), (int, float)) and math.isfinite(float(r[c]))]
            row[c] = _fmt(vals)
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    table = "\n".join(md) + "\n"
    if write:
        atomic_write_text(Path(sweep_dir) / "comparison.csv", buf.getvalue())
        atomic_write_text(Path(sweep_dir) / "comparison.md", f"# Sweep comparison ({len(runs)} runs)\n\n" + table)
    return table


class ComparisonCallback(Callback):
    """Hydra callback: at the end of a multirun, write and print the comparison table."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        table = compare(sweep_dir)
        print(f"\nComparison of {sweep_dir} (also in comparison.md / comparison.csv):\n{table}")
