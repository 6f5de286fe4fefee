"""Several benchmarks in one command, one table: ``python -m cj2.evaluate +suite=paper|field judge=...``.

``suite=paper`` holds the paper's Table 2 columns (JudgerBenchV2, JudgeBench, RMB, RewardBench; arXiv
2507.09104), ``suite=field`` adds RewardBench 2 and RM-Bench (``cj2/conf/suite/``). Each benchmark whose
data is present is judged once by :func:`cj2.evaluation.runner.run_evaluation` in its own folder
(``<suite folder>/<benchmark>``, resumable like any run), and its numbers are read under three protocols
from the same judgments, as its registry entry names them (:attr:`BenchmarkSpec.table`):

* ``paper``: the protocol the paper's numbers used (OpenCompass's readings and weightings, JudgeBench in
  one order);
* ``official``: the benchmark's own scorer's (JudgeBench's double-order net vote, RewardBench's
  generative-judge rules, RewardBench 2's official credits);
* ``strict``: cj2's (an unparsable answer is wrong).

``report.md`` opens with one table, the benchmarks as columns and their average, one row per protocol and
the metric each cell reads under it; a benchmark whose data is absent is a column reading "absent", listed
below with the command that fetches it, and the average of a row with an absent (or failed) column is not
given: the mean of the present columns is shown beside it, saying over which. ``extra`` benchmarks (the
built-in embedded one) are shown beside the table and never averaged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cj2.data.hub import is_hub_uri
from cj2.data.io import atomic_write_json, atomic_write_text
from cj2.evaluation.benchmarks import TABLE_ROWS, benchmark_spec
from cj2.runtime import json_safe, to_plain

log = logging.getLogger("cj2.evaluate")

ROW_TITLES = {"paper": "paper protocol", "official": "official protocol", "strict": "cj2 strict"}
SUITE_KEYS = ("name", "data_root", "columns", "extra", "limit", "run_overrides", "benchmarks")


def _present(path: Any) -> bool:
    return path is None or is_hub_uri(str(path)) or Path(str(path)).expanduser().exists()


def _cell(metrics: Mapping[str, Any], key: str, factor: float) -> tuple[float | None, str | None]:
    """The value of ``key`` (scaled to 0-100) and the scoring mode it came from: generated judgments when
    they have it (the paper's numbers are of generated judgments), else the first mode that has it."""
    results = metrics.get("results", {})
    for mode in ("generate", *results):
        value = results.get(mode, {}).get(key)
        if value is not None and math.isfinite(float(value)):
            return factor * float(value), mode
    return None, None


def run_suite(cfg: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Run every benchmark of ``cfg["suite"]`` whose data is present into ``out/<benchmark>``; write the
    suite's ``metrics.json`` and ``report.md`` into ``out``; return the suite's metrics."""
    from cj2.evaluation.backends import judge_label
    from cj2.evaluation.runner import run_evaluation

    cfg = to_plain(dict(cfg))
    suite = dict(cfg["suite"])
    unknown = sorted(set(suite) - set(SUITE_KEYS))
    if unknown:
        raise ValueError(f"suite: unknown key(s) {unknown}; expected some of {sorted(SUITE_KEYS)}")
    columns, extra = list(suite.get("columns") or []), list(suite.get("extra") or [])
    missing = [n for n in columns + extra if n not in (suite.get("benchmarks") or {})]
    if missing:
        raise ValueError(f"suite.columns/extra name {missing}, which suite.benchmarks does not define")
    overrides = dict(suite.get("run_overrides") or {})
    base = {k: v for k, v in cfg.items() if k not in ("suite", "run_dir", "run_name")}
    entries: dict[str, dict[str, Any]] = {}
    for name in columns + extra:
        bcfg = dict(suite["benchmarks"][name])
        spec = benchmark_spec(bcfg.get("name"))
        if suite.get("limit") is not None:
            bcfg["limit"] = int(suite["limit"])
        entry: dict[str, Any] = {"benchmark": spec.name, "title": spec.title, "path": bcfg.get("path")}
        entries[name] = entry
        if not _present(bcfg.get("path")):
            entry.update(status="absent", fetch=spec.fetch.format(root=suite.get("data_root", ".")))
            log.warning("suite: %s is absent (%s); fetch it with: %s", name, bcfg.get("path"), entry["fetch"])
            continue
        sub = {**base, **dict(overrides.get(name) or {}), "benchmark": bcfg}
        try:
            metrics = run_evaluation(sub, out / name)
        except Exception as err:  # one benchmark failing is a column that says so, not a lost suite
            log.exception("suite: %s failed", name)
            entry.update(status="failed", error=f"{type(err).__name__}: {err}")
            continue
        entry.update(status="ok", run_dir=str(out / name), protocol=metrics.get("protocol", {}))
        entry["n_items"], entry["notes"] = metrics.get("n_items"), metrics.get("notes", [])
        entry["cells"] = {}
        for row in TABLE_ROWS:
            if row in spec.table:
                key, factor = spec.table[row]
                value, mode = _cell(metrics, key, factor)
                entry["cells"][row] = {"key": key, "value": value, "mode": mode}
    table, average = _table(entries, columns)
    result = {
        "suite": suite.get("name"),
        "judge": judge_label(cfg["judge"]),
        "columns": columns,
        "extra": extra,
        "limit": suite.get("limit"),
        "table": table,
        "average": average,
        "benchmarks": entries,
    }
    atomic_write_json(out / "metrics.json", json_safe(result))
    atomic_write_text(out / "report.md", render_suite(result))
    return result


def _table(
    entries: Mapping[str, Mapping[str, Any]], columns: list[str]
) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, Any]]]:
    """``table[row][column]`` (None where absent, failed or not defined) and ``average[row]``: ``value``
    (the mean over every column, None unless all have a number), ``present_mean`` and ``present`` (the
    columns it is over), ``missing`` (the columns without a number and why)."""
    table: dict[str, dict[str, float | None]] = {}
    average: dict[str, dict[str, Any]] = {}
    for row in TABLE_ROWS:
        values = {}
        for name in columns:
            cell = entries[name].get("cells", {}).get(row)
            values[name] = None if cell is None else cell["value"]
        table[row] = values
        present = [n for n, v in values.items() if v is not None]
        missing = {
            n: entries[n]["status"] if entries[n]["status"] != "ok" else "no number under this protocol"
            for n in columns
            if values[n] is None
        }
        mean = sum(values[n] for n in present) / len(present) if present else None
        average[row] = {
            "value": mean if not missing else None,
            "present_mean": mean,
            "present": present,
            "missing": missing,
        }
    return table, average


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_suite(result: Mapping[str, Any]) -> str:
    """The suite's ``report.md``: the one table (rows: protocols; columns: benchmarks, their average; the
    extra benchmarks beside), the metric each cell reads, the absent benchmarks with their fetch commands,
    then each benchmark's protocol and the link to its own report."""
    entries, columns, extra = result["benchmarks"], result["columns"], result["extra"]

    def status(name: str, row: str) -> str:
        e = entries[name]
        if e["status"] != "ok":
            return e["status"]
        cell = e.get("cells", {}).get(row)
        if cell is None:
            return "n/a"
        return "undefined" if cell["value"] is None else _fmt(cell["value"])

    head = (
        [entries[n]["title"] for n in columns]
        + ["Average"]
        + [f"{entries[n]['title']} (extra)" for n in extra]
    )
    lines = [
        f"# Suite {result['suite']}: judge {result['judge']}\n",
        "| protocol | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for row in TABLE_ROWS:
        avg = result["average"][row]
        if avg["value"] is not None:
            avg_text = _fmt(avg["value"])
        elif avg["present"]:
            avg_text = (
                f"– ({len(avg['missing'])} of {len(columns)} missing; mean of "
                f"{', '.join(entries[n]['title'] for n in avg['present'])}: {_fmt(avg['present_mean'])})"
            )
        else:
            avg_text = f"– ({len(avg['missing'])} of {len(columns)} missing)"
        cells = [status(n, row) for n in columns] + [avg_text] + [status(n, row) for n in extra]
        lines.append(f"| {ROW_TITLES[row]} | " + " | ".join(cells) + " |")

    def keys(name: str) -> str:
        spec = benchmark_spec(entries[name]["benchmark"])
        return "; ".join(f"{r}: `{spec.table[r][0]}`" for r in TABLE_ROWS if r in spec.table) or "–"

    read = [keys(n) for n in columns] + ["mean of the columns"] + [keys(n) for n in extra]
    lines.append("| metric read | " + " | ".join(read) + " |")
    parts = ["\n".join(lines) + "\n"]
    notes = [
        "Scores on 0-100. Each benchmark is judged once; the rows read the same judgments under each "
        "protocol (see each benchmark's protocol below). paper protocol: the protocol of the published "
        "numbers one compares with (CompassJudger-2's OpenCompass runs for its four columns, RM-R1's for "
        "RM-Bench); official: the benchmark's own scorer; cj2 strict: an unparsable answer is wrong. "
        "undefined: the metric has no finite value on these judgments. An average needs every column: a "
        "row with an absent or failed benchmark (or one without a number under that protocol: n/a, "
        "undefined) gives the mean of the present ones only, beside a dash.",
    ]
    if result.get("limit") is not None:
        notes.append(
            f"suite.limit={result['limit']}: only the first {result['limit']} items of each benchmark "
            "were judged; these are not the benchmarks' numbers"
        )
    modes = {c.get("mode") for e in entries.values() for c in e.get("cells", {}).values() if c.get("mode")}
    if modes - {"generate"}:
        notes.append(
            f"cells read from scoring modes {sorted(m for m in modes if m)} (generated judgments where "
            "present, else verdict logits)"
        )
    parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    absent = [n for n in columns + extra if entries[n]["status"] == "absent"]
    if absent:
        lines = ["**Absent benchmarks** (no data at the path; fetch, then re-run the same command)\n"]
        for n in absent:
            lines.append(
                f"- {entries[n]['title']} (`{entries[n]['path']}`):\n\n  ```\n  {entries[n]['fetch']}\n  ```"
            )
        parts.append("\n".join(lines) + "\n")
    failed = [n for n in columns + extra if entries[n]["status"] == "failed"]
    if failed:
        parts.append(
            "**Failed benchmarks**\n\n"
            + "\n".join(f"- {entries[n]['title']}: {entries[n]['error']}" for n in failed)
            + "\n"
        )
    for n in columns + extra:
        e = entries[n]
        if e["status"] != "ok":
            continue
        rows = [
            f"**{e['title']}** ({e['n_items']} items; report: `{e['run_dir']}/report.md`)\n",
            "| | |",
            "|---|---|",
        ]
        rows += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in e.get("protocol", {}).items()]
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def evaluate_suite(cfg: Any) -> float | None:
    """The ``+suite=...`` entry of ``python -m cj2.evaluate``: run, print the report, log the table to wandb
    (``suite/<protocol>/<benchmark>``, the averages and every benchmark's protocol as strings); return the
    official row's average (None unless every column has a number)."""
    from cj2.evaluation.runner import suite_dir
    from cj2.runtime import redact, reraise_scrubbed

    plain = to_plain(cfg)
    out = suite_dir(plain)
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_suite(plain, out)
        _log_wandb(plain, out, redact(plain), result)
    except Exception as err:  # keep secrets out of the tracebacks Hydra prints
        reraise_scrubbed(err)
        raise
    print((out / "report.md").read_text())
    log.info("suite folder: %s", out)
    return result["average"]["official"]["value"]


def suite_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The flat wandb summary of a suite: every number of its table, the averages, and each benchmark's
    status and protocol entries (strings)."""
    out: dict[str, Any] = {}
    for row, values in result["table"].items():
        for name, value in values.items():
            if value is not None:
                out[f"suite/{row}/{name}"] = value
        if result["average"][row]["value"] is not None:
            out[f"suite/{row}/average"] = result["average"][row]["value"]
    for name, e in result["benchmarks"].items():
        out[f"suite/status/{name}"] = e["status"]
        for key, value in (e.get("protocol") or {}).items():
            out[f"protocol/{name}/{key}"] = str(value)
    return out


def _log_wandb(
    cfg: Mapping[str, Any], out: Path, resolved: Mapping[str, Any], result: Mapping[str, Any]
) -> None:
    from cj2.runtime import log_summary, wandb_run

    fields = dict(
        name=out.name,
        group=f"suite-{result['suite']}",
        job_type="evaluate",
        tags=[f"suite={result['suite']}", f"judge={result['judge']}"],
    )
    with wandb_run(cfg, out, config=dict(resolved), **fields) as run:
        if run is not None:
            log_summary(run, suite_summary(result))
