"""The evaluation report: a markdown table, plots (PNG, matplotlib Agg) and a flat metrics view."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODE_TITLES = {"generate": "generated judgments", "logits": "verdict logits"}


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):.{digits}f}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _interval(m: Mapping[str, Any], low: str, high: str) -> str:
    if low not in m or high not in m:
        return ""
    return f" [{_pct(m[low])}, {_pct(m[high])}]"


def _boot(m: Mapping[str, Any], key: str) -> str:
    low, high = m.get(f"{key}_boot_low"), m.get(f"{key}_boot_high")
    if low is None or high is None:
        return ""
    return f" [{_num(low, 1)}, {_num(high, 1)}]"


def headline_table(results: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per scoring mode: accuracy (strict, and on parsed outputs with its Wilson interval),
    parse rate, swap consistency, position bias, the benchmark's own score, calibration, n and wall time."""
    header = [
        "mode",
        "n",
        "accuracy %",
        "acc. parsed % [95% CI]",
        "parse rate %",
        "swap consistency %",
        "position bias",
        "JBv2 final [95% CI]",
        "ECE",
        "wall s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mode, m in results.items():
        run = runs.get(mode, {})
        row = [
            MODE_TITLES.get(mode, mode),
            str(int(m.get("n", 0))),
            _pct(m.get("accuracy")),
            _pct(m.get("accuracy_parsed"))
            + _interval(m, "accuracy_parsed_ci_low", "accuracy_parsed_ci_high"),
            _pct(m.get("parse_rate")),
            _pct(m.get("swap/consistency")),
            _num(m.get("swap/position_bias")),
            _num(m.get("jbv2/final")) + _boot(m, "jbv2/final"),
            _num(m.get("calibration/ece"), 3),
            _num(run.get("wall_s"), 0),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def domain_rows(results: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The per-domain table as ``(columns, rows)``: domain, n, then each mode's strict accuracy (a fraction;
    None where the mode has none). What ``report.md`` shows and the wandb run logs (``domains``)."""
    domains = sorted({k.split("/", 1)[1] for m in results.values() for k in m if k.startswith("accuracy/")})
    modes = list(results)
    columns = ["domain", "n", *(f"{x}/accuracy" for x in modes)]
    rows = []
    for d in domains:
        n = next((int(m[f"n/{d}"]) for m in results.values() if f"n/{d}" in m), 0)
        rows.append([d, n, *(_finite(results[x].get(f"accuracy/{d}")) for x in modes)])
    return columns, rows


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def domain_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    _, rows = domain_rows(results)
    if not rows:
        return ""
    modes = list(results)
    lines = [
        "| domain | n | " + " | ".join(f"{MODE_TITLES.get(x, x)} acc. %" for x in modes) + " |",
        "|" + "---|" * (len(modes) + 2),
    ]
    for d, n, *accs in rows:
        lines.append(f"| {d} | {n} | " + " | ".join(_pct(a) for a in accs) + " |")
    return "\n".join(lines) + "\n"


def benchmark_table(results: Mapping[str, Mapping[str, Any]], prefix: str, title: str, depth: int = 1) -> str:
    """One row per metric under ``prefix/`` with at most ``depth`` levels below it (``_boot_`` interval
    ends left out), one column per mode."""
    keys = sorted(
        {
            k
            for m in results.values()
            for k in m
            if k.startswith(prefix + "/") and k.count("/") <= depth and "_boot_" not in k
        }
    )
    if not keys:
        return ""
    modes = list(results)
    lines = [
        f"**{title}**\n",
        "| metric | " + " | ".join(MODE_TITLES.get(x, x) for x in modes) + " |",
        "|" + "---|" * (len(modes) + 1),
    ]
    for k in keys:
        lines.append(f"| {k.split('/', 1)[1]} | " + " | ".join(_num(results[x].get(k)) for x in modes) + " |")
    return "\n".join(lines) + "\n"


# Sections every benchmark's report has (when it has the metrics); a benchmark's own sections come from
# its registry entry (BenchmarkSpec.report).
COMMON_SECTIONS: tuple[tuple[str, str, int], ...] = (
    ("style", "Style probe (Fig. 5)", 1),
    ("calibration", "Calibration of P(verdict)", 1),
)


def protocol_table(protocol: Mapping[str, Any]) -> str:
    """The protocol as a two-column table: how every number above was computed."""
    lines = ["**Protocol** (how these numbers are computed)\n", "| | |", "|---|---|"]
    for key, value in protocol.items():
        lines.append(f"| {key} | {str(value).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def render_markdown(
    title: str,
    results: Mapping[str, Mapping[str, Any]],
    runs: Mapping[str, Mapping[str, Any]],
    notes: list[str],
    commands: list[str] | None = None,
    *,
    sections: Sequence[tuple[str, str, int]] = (),
    protocol: Mapping[str, Any] | None = None,
) -> str:
    """``report.md``: the headline table, the notes, the protocol, the benchmark's own ``sections``
    (``(metric prefix, title, depth)``, from its registry entry) and the common ones, per-domain tables."""
    parts = [f"# {title}\n", headline_table(results, runs)]
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    if protocol:
        parts.append(protocol_table(protocol))
    for prefix, name, depth in (*sections, *COMMON_SECTIONS):
        table = benchmark_table(results, prefix, name, depth)
        if table:
            parts.append(table)
    per_domain = domain_table(results)
    if per_domain:
        parts.append("**Per domain** (strict accuracy)\n\n" + per_domain)
    style_domains = {k for m in results.values() for k in m if k.startswith("style/drop/")}
    if style_domains:
        modes = list(results)
        lines = [
            "**Style probe: accuracy drop per subset** (standard - style, points)\n",
            "| subset | " + " | ".join(MODE_TITLES.get(x, x) for x in modes) + " |",
            "|" + "---|" * (len(modes) + 1),
        ]
        for k in sorted(style_domains):
            lines.append(
                f"| {k.split('/', 2)[2]} | " + " | ".join(_pct(results[x].get(k)) for x in modes) + " |"
            )
        parts.append("\n".join(lines) + "\n")
    if commands:
        parts.append("Commands:\n\n```\n" + "\n".join(commands) + "\n```\n")
    return "\n".join(parts)


def plot_domains(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Grouped bars of strict accuracy per domain, one group per domain, one bar per scoring mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = sorted({k.split("/", 1)[1] for m in results.values() for k in m if k.startswith("accuracy/")})
    if not domains:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(domains) + 2), 3.6))
    width = 0.8 / max(1, len(results))
    for j, (mode, m) in enumerate(results.items()):
        values = [100 * m.get(f"accuracy/{d}", math.nan) for d in domains]
        ax.bar([i + j * width for i in range(len(domains))], values, width, label=MODE_TITLES.get(mode, mode))
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(domains))])
    ax.set_xticklabels(domains, rotation=30, ha="right")
    ax.set_ylabel("strict accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ranks(
    win_tables: Mapping[str, Mapping[str, tuple[int, int]]], path: str | Path, title: str = ""
) -> Path | None:
    """Judge vs ground-truth per-model win counts, one colour per scenario (JudgerBenchV2, Eq. 5): points
    on the diagonal are models the judge credits exactly as the ground truth does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not win_tables:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    top = 1
    for scenario, table in sorted(win_tables.items()):
        gt = [v[0] for v in table.values()]
        judge = [v[1] for v in table.values()]
        top = max(top, *gt, *judge)
        ax.scatter(gt, judge, s=22, alpha=0.8, label=scenario)
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ground-truth wins per model")
    ax.set_ylabel("judge wins per model")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def wandb_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The wandb summary of one evaluation: :func:`flatten` of its results, the wall time, and its protocol
    as ``protocol/<entry>`` strings (a number without its protocol is a defect)."""
    summary: dict[str, Any] = dict(flatten(metrics["results"]))
    summary["wall_time_s"] = float(metrics.get("wall_time_s", 0.0))
    for key, value in (metrics.get("protocol") or {}).items():
        summary[f"protocol/{key}"] = str(value)
    return summary


def flatten(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``{mode}/{metric}`` -> value, numeric and finite only (for wandb)."""
    out = {}
    for mode, m in results.items():
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
                out[f"{mode}/{k}"] = float(v)
    return out
