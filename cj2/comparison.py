"""Comparing the arms of a sweep: one row per arm (loss, M), mean ± std over seeds.

:func:`compare` reads every ``metrics.json`` under a sweep folder and writes ``comparison.csv`` and
``comparison.md`` there. :class:`ComparisonCallback` runs it when a Hydra multirun ends.

A run that failed is in the table too, never silently missing: training writes ``failed.json`` (the
exception's type and message) in its folder before it re-raises (:func:`write_failure`), cj2's submitit
launchers write it for an arm whose process died (killed, out of memory, time limit), and an arm folder
Hydra made that holds neither file is reported as killed before it could write anything
(:func:`collect_failures`). Each arm's row then names its failed seeds and why, in the ``failed`` column.
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
    "val/judge_acc",
    "val/judge_acc_parsed",
    "val/parse_rate",
    "val/swap_consistency",
    "val/position_bias",
    "val/judge_acc_unseen_family",
    "val/verdict_acc_tf",
    "val/verdict_logit_acc",
    "val/verdict_logit_letter_bias",
    "val/jbv2_final",
    "val/truth_acc",
    "val/spurious_rate",
    "val/unfaithful_rate",
    "val/spurious_rate_unseen_family",
    "rft/keep_rate",
    "rft/pass_at_m",
    "rft/kept",
    "rft/spurious_share",
    "wall_time_s",
)
ARM_KEYS = ("arm", "loss", "M", "filter", "rounds", "pair_orders", "fallback")
"""The keys an arm is filed under; ``arm`` (an experiment's name for it, e.g. ``+on_policy_arm``), ``filter``,
``rounds``, ``pair_orders`` and ``fallback`` (rejection sampling) are columns only when some run has them."""
_ALWAYS_ARM_KEYS = ("loss", "M")
FAMILY_METRICS = ("val/truth_acc", "val/spurious_rate", "val/unfaithful_rate")
"""Faithfulness metrics shown per family (``<metric>/<family>`` keys) in a table of their own."""


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {statistics.stdev(values):.2g}"


FAILED_FILE = "failed.json"
METRICS_FILE = "metrics.json"
NO_RESULT = (
    "neither metrics.json nor failed.json: the process was killed (out of memory, time limit, a signal) "
    "before it could write either; see the arm's log"
)


def arm_keys(cfg: Any) -> dict[str, Any]:
    """The keys a run is filed under in the table (:data:`ARM_KEYS` and seed) from its (composed) config;
    the optional ones only where set (two arms that differ only in ``pair_orders`` are two rows)."""
    from omegaconf import OmegaConf

    keys = {
        "loss": OmegaConf.select(cfg, "loss.name", default=None),
        "seed": OmegaConf.select(cfg, "seed", default=None),
    }
    arm = OmegaConf.select(cfg, "arm", default=None)
    if arm is not None:
        keys["arm"] = str(arm)
    m = OmegaConf.select(cfg, "data.rejection.m", default=None)
    if m is not None:
        keys["M"] = int(m)
        keys["filter"] = str(OmegaConf.select(cfg, "data.rejection.filter", default=None) or "outcome")
        rounds = OmegaConf.select(cfg, "data.rejection.rounds", default=None)
        if rounds:
            keys["rounds"] = rounds
        if OmegaConf.select(cfg, "data.rejection.pair_orders", default=False):
            keys["pair_orders"] = True
        fallback = OmegaConf.select(cfg, "data.rejection.fallback", default=None)
        if fallback not in (None, "none"):
            keys["fallback"] = str(fallback)
    return keys


def write_failure(
    run_dir: str | Path, error: str, message: str, *, keys: dict[str, Any], details: str = "", by: str
) -> Path:
    """Write ``<run_dir>/failed.json``: why the run failed (``error``: an exception's type or the launcher's
    reason, ``message``), the run's arm ``keys`` and ``details`` (a traceback or a log's tail). Secret
    values are scrubbed from the text."""
    from cj2.data.io import atomic_write_json
    from cj2.runtime import json_safe, scrub_text

    record = {
        "status": "failed",
        "error": error,
        "message": scrub_text(message)[:2000],
        "by": by,
        **keys,
        "details": scrub_text(details)[-8000:],
    }
    path = Path(run_dir) / FAILED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, json_safe(record))
    return path


def collect_failures(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The runs under ``sweep_dir`` without a ``metrics.json``: those with a ``failed.json``, and the arm
    folders Hydra made (``.hydra/config.yaml``) that hold neither file."""
    root = Path(sweep_dir)
    finished = {p.parent for p in root.rglob(METRICS_FILE)}
    failures, seen = [], set(finished)
    for path in sorted(root.rglob(FAILED_FILE)):
        if path.parent in finished:
            continue
        seen.add(path.parent)
        try:
            failures.append({"_path": str(path.parent), **json.loads(path.read_text())})
        except (OSError, json.JSONDecodeError) as err:
            failures.append(
                {"_path": str(path.parent), "error": "unreadable failed.json", "message": str(err)}
            )
    for path in sorted(root.rglob("config.yaml")):
        arm = path.parent.parent
        if path.parent.name != ".hydra" or arm in seen:
            continue
        from omegaconf import OmegaConf

        try:
            keys = arm_keys(OmegaConf.load(path))
        except Exception:  # noqa: BLE001 - an unreadable config: report the arm without its keys
            keys = {}
        failures.append({"_path": str(arm), "error": "no result", "message": NO_RESULT, **keys})
    return failures


def _reason(f: dict[str, Any]) -> str:
    """One line for the table: ``seed=1: RuntimeError: the first line of the message``."""
    first = next((ln.strip() for ln in str(f.get("message", "")).splitlines() if ln.strip()), "")
    text = f"{f.get('error', 'failed')}: {first}"[:240].replace("|", "/")
    return f"seed={f.get('seed', '?')}: {text}"


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(Path(sweep_dir).rglob(METRICS_FILE)):
        try:
            runs.append({"_path": str(path.parent), **json.loads(path.read_text())})
        except (OSError, json.JSONDecodeError) as err:  # a run killed mid-write: say so, leave it out
            log.warning("comparison: skipping unreadable %s (%s)", path, err)
            continue
    return runs


PAIRED_BASELINE = "sft"
PAIRED_FILE = "generations_latest.jsonl"
PAIRED_COLUMN = "Δ judge_acc vs sft, same M and seed [95% bootstrap over items]"
DEFAULT_BASELINE: dict[str, Any] = {"loss": PAIRED_BASELINE}
DEFAULT_PAIR_ON: tuple[str, ...] = ("M", "seed")


def _is_baseline(run: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Whether ``run`` is a baseline run: every key of ``baseline`` has that value (``None``: absent)."""
    return all(run.get(k) == v for k, v in baseline.items())


def paired_column_name(baseline: dict[str, Any], pair_on: Sequence[str]) -> str:
    """The paired column's header: ``Δ judge_acc vs <baseline>, same <keys> [...]``."""
    if dict(baseline) == DEFAULT_BASELINE and tuple(pair_on) == DEFAULT_PAIR_ON:
        return PAIRED_COLUMN
    name = ",".join(f"{k}={'-' if v is None else v}" for k, v in baseline.items())
    return f"Δ judge_acc vs {name}, same {' and '.join(pair_on)} [95% bootstrap over items]"


def _item_correct(run_dir: str | Path) -> dict[tuple[str, str], float] | None:
    """Per judgment (item id, order) of the trained families: 1.0 if the generated verdict was right."""
    path = Path(run_dir) / PAIRED_FILE
    if not path.exists():
        return None
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if not r.get("heldout_family", False):
                out[(r["id"], r["order"])] = float(bool(r["correct"]))
    return out


def paired_difference(
    arm: dict[tuple[str, str], float],
    base: dict[tuple[str, str], float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean paired difference of strict accuracy (arm - base) over the judgments both runs made, with a
    percentile-bootstrap 95 % interval that resamples *items* (both orders of an item move together)."""
    import torch

    from cj2.metrics.bootstrap import bootstrap_ci

    keys = sorted(set(arm) & set(base))
    ids = sorted({k[0] for k in keys})
    per_item = {i: [arm[k] - base[k] for k in keys if k[0] == i] for i in ids}
    if not ids:
        return math.nan, math.nan, math.nan, 0
    values = torch.tensor([sum(v) / len(v) for v in per_item.values()], dtype=torch.float64)
    lo, hi = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return float(values.mean()), float(lo), float(hi), len(ids)


def _paired_column(
    rs: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    baseline: dict[str, Any] = DEFAULT_BASELINE,
    pair_on: Sequence[str] = DEFAULT_PAIR_ON,
) -> str:
    """``+0.12 [+0.05, +0.19]`` per seed: each run against the baseline run (default: ``sft``) that has the
    same ``pair_on`` keys (default: M and seed)."""
    parts = []
    for r in sorted(rs, key=lambda r: str(r.get("seed"))):
        if _is_baseline(r, baseline):
            continue
        base = [b for b in runs if _is_baseline(b, baseline) and all(b.get(k) == r.get(k) for k in pair_on)]
        a, b = _item_correct(r["_path"]), (_item_correct(base[0]["_path"]) if base else None)
        if a is None or b is None:
            parts.append(f"s{r.get('seed')}: n/a")
            continue
        d, lo, hi, n = paired_difference(a, b, seed=int(r.get("seed") or 0))
        parts.append(f"s{r.get('seed')}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return "; ".join(parts)


def _family_tables(arms: dict[tuple, list[dict[str, Any]]], keys: Sequence[str]) -> list[str]:
    """Markdown tables, one per :data:`FAMILY_METRICS` entry some run has per family: arm x family, mean ±
    std over seeds (a family absent from a run's metrics, e.g. no correct verdict there, is left blank)."""
    out = []
    for metric in FAMILY_METRICS:
        families = sorted(
            {
                k[len(metric) + 1 :]
                for rs in arms.values()
                for r in rs
                for k in r
                if k.startswith(metric + "/")
            }
        )
        if not families:
            continue
        header = [*keys, *families]
        out += [f"\n## {metric} per family\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for arm, rs in sorted(arms.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            cells = ["" if v is None else str(v) for v in arm]
            for fam in families:
                vals = [
                    float(r[f"{metric}/{fam}"])
                    for r in rs
                    if isinstance(r.get(f"{metric}/{fam}"), (int, float))
                ]
                cells.append(_fmt([v for v in vals if math.isfinite(v)]))
            out.append("| " + " | ".join(cells) + " |")
    return out


def compare(
    sweep_dir: str | Path,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    *,
    write: bool = True,
    baseline: dict[str, Any] | None = None,
    pair_on: Sequence[str] = DEFAULT_PAIR_ON,
) -> str:
    """The comparison table of the runs under ``sweep_dir`` (module docstring). ``baseline``: the keys of
    the runs every other run is paired with (default ``{"loss": "sft"}``; e.g. ``{"loss": "margin",
    "rounds": None}`` for offline margin), matched on ``pair_on`` (default M and seed)."""
    baseline = dict(DEFAULT_BASELINE if baseline is None else baseline)
    paired_name = paired_column_name(baseline, pair_on)
    runs, failures = collect(sweep_dir), collect_failures(sweep_dir)
    keys = [
        k for k in ARM_KEYS if k in _ALWAYS_ARM_KEYS or any(x.get(k) is not None for x in runs + failures)
    ]
    arms: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    failed: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        arms[tuple(r.get(k) for k in keys)].append(r)
    for f in failures:
        failed[tuple(f.get(k) for k in keys)].append(f)
        arms.setdefault(tuple(f.get(k) for k in keys), [])
    present = [c for c in columns if any(isinstance(r.get(c), (int, float)) for r in runs)]
    paired = any(_is_baseline(r, baseline) for r in runs) and any(not _is_baseline(r, baseline) for r in runs)
    header = [*keys, "seeds", *present] + ([paired_name] if paired else [])
    header += ["failed"] if failures else []
    rows = []
    for arm, rs in sorted(arms.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        row = {k: ("" if v is None else v) for k, v in zip(keys, arm)}
        row["seeds"] = ",".join(str(r.get("seed", "?")) for r in sorted(rs, key=lambda r: str(r.get("seed"))))
        for c in present:
            vals = [
                float(r[c]) for r in rs if isinstance(r.get(c), (int, float)) and math.isfinite(float(r[c]))
            ]
            row[c] = _fmt(vals)
        if paired:
            row[paired_name] = _paired_column(rs, runs, baseline, pair_on)
        if failures:
            fs = sorted(failed.get(arm, []), key=lambda f: str(f.get("seed")))
            row["failed"] = "; ".join(_reason(f) for f in fs)
        rows.append(row)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(rows)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    md += _family_tables(arms, keys)
    table = "\n".join(md) + "\n"
    if write:
        atomic_write_text(Path(sweep_dir) / "comparison.csv", buf.getvalue())
        count = f"{len(runs)} runs" + (f", {len(failures)} failed" if failures else "")
        atomic_write_text(Path(sweep_dir) / "comparison.md", f"# Sweep comparison ({count})\n\n" + table)
    return table


class SweepArmsFailed(SystemExit):
    """Raised at the end of a multirun whose table lists failed runs: the sweep exits with status 1 and this
    message. A ``SystemExit`` because Hydra turns an ``Exception`` raised by a callback into a warning."""

    def __init__(self, message: str) -> None:
        super().__init__(message)  # uncaught: Python prints the message to stderr and exits with status 1


class ComparisonCallback(Callback):
    """Hydra callback: at the end of a multirun, write and print the comparison table.

    It runs once, in the process that launched the sweep (with the submitit launchers too: the arms run in
    their own processes or cluster jobs, the table is written after all of them ended). Failed runs get
    their rows (the ``failed`` column); with ``fail_on_failed_arms`` (the default) the multirun then ends
    with :class:`SweepArmsFailed`, so a sweep with a failed arm exits non-zero after writing the table
    (other ``hydra.callbacks`` listed after this one run before it: Hydra calls them in reverse order).
    """

    def __init__(
        self,
        fail_on_failed_arms: bool = True,
        baseline: dict[str, Any] | None = None,
        pair_on: Sequence[str] = DEFAULT_PAIR_ON,
    ) -> None:
        self.fail_on_failed_arms = fail_on_failed_arms
        self.baseline = None if baseline is None else dict(baseline)
        self.pair_on = tuple(pair_on)

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        table = compare(sweep_dir, baseline=self.baseline, pair_on=self.pair_on)
        print(f"\nComparison of {sweep_dir} (also in comparison.md / comparison.csv):\n{table}", flush=True)
        failures = collect_failures(sweep_dir)
        if failures and self.fail_on_failed_arms:
            where = "; ".join(f"{f['_path']}: {_reason(f)}" for f in failures)
            raise SweepArmsFailed(
                f"{len(failures)} run(s) of the sweep failed (rows in comparison.md): {where}"
            )
