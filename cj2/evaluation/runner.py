"""The evaluation loop behind ``python -m cj2.evaluate``: placement, passes, resume, scoring, report.

What one run does (arXiv 2507.09104, Sec. 4-5):

1. read the benchmark (:mod:`cj2.evaluation.benchmarks`) and fix every pair's placement over the *full*
   benchmark (:mod:`cj2.evaluation.placement`), saved as ``placement.json``; only then apply
   ``benchmark.limit`` (the first items in file order);
2. judge each item in up to three **passes**: ``headline`` (the placement; the headline numbers use it,
   as the paper does), ``swap`` (the other order: swap consistency, position bias) and, with
   ``evaluate.style_probe``, ``style`` (the headline order plus the style-preference sentence, Fig. 5);
3. in one or two **modes**: ``generate`` (the judge writes its critique and verdict, greedy; with a local
   model P(verdict) is read after the critique) and ``logits`` (verdict-logit scoring on a forced answer
   skeleton, :mod:`cj2.evaluation.logits`, one forward pass per judgment). ``evaluate.mode=auto`` runs both
   for a local model and caps the generated judgments on a CPU (``evaluate.max_generated`` judgments,
   ``evaluate.time_budget_s`` seconds), ``generate`` only for the other judges;
4. write each batch of rows to ``judgments.jsonl`` / ``verdict_logits.jsonl`` durably
   (:class:`~cj2.evaluation.store.ResultStore`), so a re-run of the same config in the same folder skips
   finished items: batches are fixed over the item list before the resume, and a batch with any missing
   row is judged again whole (only the missing rows are written), so a resumed run computes exactly what an
   uninterrupted one does;
5. score (:mod:`cj2.evaluation.scoring`) and write ``metrics.json``, ``report.md``, plots and a wandb run.

The run folder is ``<output_root>/eval/<run_name>`` or, unnamed,
``<output_root>/eval/<benchmark>/<judge>-<hash>``
with the hash over everything that changes a result (:func:`fingerprint`; caps, batch sizes and devices
are left out, so raising a cap resumes). A named folder remembers its fingerprint and refuses a different
config.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cj2.data.io import atomic_write_json, atomic_write_text
from cj2.data.itemcheck import item_notes
from cj2.data.schema import PairwiseItem
from cj2.data.templates import STYLE_NOTE, get_template
from cj2.evaluation import backends as _backends
from cj2.evaluation import benchmarks as _benchmarks
from cj2.evaluation.benchmarks import load_benchmark
from cj2.evaluation.logits import argmax_label
from cj2.evaluation.placement import compute_placement, present, to_original
from cj2.evaluation.runfolder import check_state, cpu_cap, file_identity, save_config, short_hash
from cj2.evaluation.store import ResultStore
from cj2.judge import JudgeProtocol
from cj2.runtime import json_safe, to_plain
from cj2.testing import kill_point

log = logging.getLogger("cj2.evaluate")

MODES = ("generate", "logits")
PASSES: dict[str, tuple[bool, bool]] = {
    "headline": (False, False),
    "swap": (True, False),
    "style": (False, True),
}
"""pass -> (flip the placement, add the style note)."""
FILES = {"generate": "judgments.jsonl", "logits": "verdict_logits.jsonl"}
CPU_MAX_GENERATED = 200
CPU_TIME_BUDGET_S = 600.0
EVALUATE_KEYS = (
    "mode",
    "swap",
    "style_probe",
    "max_generated",
    "time_budget_s",
    "batch_size",
    "bootstrap",
    "progress",
    "verdict_logits",
    "overwrite",
)


# --------------------------------------------------------------------------------------------- folders
def fingerprint(
    judge: Mapping[str, Any],
    benchmark: Mapping[str, Any],
    evaluate: Mapping[str, Any],
    placement: str,
    seed: int,
) -> str:
    """A short hash of everything that changes a judgment row: the judge (model files included), the
    benchmark (data files included), the verdict-logit options, the placement and the seed."""
    judge, benchmark, evaluate = to_plain(judge), to_plain(benchmark), to_plain(evaluate)
    j = {k: v for k, v in judge.items() if k not in _backends.OPERATIONAL_KEYS}
    j["_files"] = file_identity(judge.get("name_or_path") or judge.get("path"))
    b = {k: v for k, v in benchmark.items() if k not in _benchmarks.OPERATIONAL_KEYS}
    b["_files"] = file_identity(benchmark.get("path"))
    b["_gt_files"] = file_identity(benchmark.get("gt_path"))
    payload = {
        "judge": j,
        "benchmark": b,
        "verdict_logits": (evaluate or {}).get("verdict_logits"),
        "placement": placement,
        "seed": int(seed),
    }
    return short_hash(payload)


def eval_dir(
    output_root: str,
    run_name: str | None,
    judge: Mapping[str, Any],
    benchmark: Mapping[str, Any],
    evaluate: Mapping[str, Any],
    placement: str,
    seed: int,
) -> str:
    """The run folder (module docstring); also the ``cj2_eval_dir`` resolver behind ``hydra.run.dir``."""
    from cj2.runtime import safe_name

    if run_name not in (None, "", "None", "null"):
        return str(Path(output_root) / "eval" / safe_name(str(run_name)))
    judge, benchmark = to_plain(judge), to_plain(benchmark)
    label = safe_name(
        f"{_backends.judge_label(judge)}-{fingerprint(judge, benchmark, evaluate, placement, seed)}"
    )
    return str(Path(output_root) / "eval" / safe_name(str(benchmark.get("name"))) / label)


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("cj2_eval_dir"):
        OmegaConf.register_new_resolver("cj2_eval_dir", eval_dir, use_cache=False)
    if not OmegaConf.has_resolver("cj2_suite_dir"):  # +suite=...: the suite's folder (cj2.evaluation.suite)
        OmegaConf.register_new_resolver("cj2_suite_dir", _suite_dir, use_cache=False)


def suite_dir(cfg: Mapping[str, Any]) -> Path:
    """The folder of a ``+suite=...`` run (:mod:`cj2.evaluation.suite`): ``run_dir``, else
    ``<output_root>/eval/<run_name>``, else ``<output_root>/eval/suite-<name>/<judge>-<hash>`` with the hash
    over the judge, the suite, the evaluate options, the placement and the seed."""
    from cj2.runtime import safe_name

    if cfg.get("run_dir"):
        return Path(cfg["run_dir"])
    root = Path(str(cfg.get("output_root") or "outputs")) / "eval"
    if cfg.get("run_name") not in (None, "", "None", "null"):
        return root / safe_name(str(cfg["run_name"]))
    suite = to_plain(dict(cfg["suite"]))
    judge = to_plain(cfg["judge"])
    fp = fingerprint(
        judge, {"suite": suite}, cfg.get("evaluate") or {}, str(cfg.get("placement")), cfg.get("seed", 0)
    )
    label = safe_name(f"{_backends.judge_label(judge)}-{fp}")
    return root / safe_name(f"suite-{suite['name']}") / label


def _suite_dir(
    output_root: str,
    run_name: Any,
    judge: Mapping[str, Any],
    suite: Any,
    evaluate: Any,
    placement: str,
    seed: int,
) -> str:
    cfg = {
        "output_root": output_root,
        "run_name": run_name,
        "judge": to_plain(judge),
        "suite": to_plain(suite),
        "evaluate": to_plain(evaluate),
        "placement": placement,
        "seed": seed,
    }
    return str(suite_dir(cfg))


# --------------------------------------------------------------------------------------------- the loop
def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row["id"]), str(row["pass"])


def generated_subset(items: Sequence[PairwiseItem], n: int | None, seed: int) -> list[PairwiseItem]:
    """The items that get generated judgments, in a seeded order (a pure function of the seed and the
    ids): the first ``n`` of it under a cap, all of it with ``n=None``. The order mixes scenarios and
    models, so a run cut short by the time budget still judged a representative sample, and a larger cap
    extends a smaller one."""

    def rank(item: PairwiseItem) -> bytes:
        return hashlib.blake2b(f"cj2-subset|{seed}|{item.id}".encode(), digest_size=8).digest()

    ordered = sorted(items, key=rank)
    return ordered if n is None else ordered[: max(0, n)]


def _row(item: PairwiseItem, pass_name: str, swapped: bool, mode: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "pass": pass_name,
        "order": "BA" if swapped else "AB",
        "style": PASSES[pass_name][1],
        "mode": mode,
        "domain": item.domain,
        "gold": item.label,
    }


def _finish(row: dict[str, Any], parsed: str | None, swapped: bool) -> dict[str, Any]:
    row["parsed"] = parsed
    row["verdict"] = to_original(parsed, swapped)
    row["correct"] = row["verdict"] is not None and row["verdict"] == row["gold"]
    return row


def judge_batch(
    judge: JudgeProtocol,
    mode: str,
    batch: Sequence[PairwiseItem],
    pass_name: str,
    placement: Mapping[str, bool],
) -> list[dict[str, Any]]:
    """Rows for one batch in one pass (module docstring): the judge sees each item as placed."""
    flip, style = PASSES[pass_name]
    swapped = [placement[it.id] != flip for it in batch]
    shown = [present(it, s) for it, s in zip(batch, swapped)]
    note = STYLE_NOTE if style else None
    rows = []
    if mode == "generate":
        keys = [(it.id, "BA" if s else "AB", style) for it, s in zip(batch, swapped)]
        results = judge.judge_items(shown, style_note=note, keys=keys)
        for it, s, r in zip(batch, swapped, results):
            row = _row(it, pass_name, s, mode)
            row.update(
                output=r.output,
                finish_reason=r.finish_reason,
                n_tokens=r.n_tokens,
                prob=r.prob,
                probs=r.probs,
            )
            if r.meta.get("missing"):
                row["missing"] = True
            rows.append(_finish(row, r.verdict, s))
    else:
        probs = judge.verdict_probs_for(shown, style_note=note)
        for it, s, p in zip(batch, swapped, probs):
            row = _row(it, pass_name, s, mode)
            parsed = argmax_label(p)
            row.update(probs=p, prob=None if p is None else p[parsed])
            rows.append(_finish(row, parsed, s))
    return rows


def run_mode(
    judge: JudgeProtocol,
    mode: str,
    items: Sequence[PairwiseItem],
    placement: Mapping[str, bool],
    passes: Sequence[str],
    store: ResultStore,
    *,
    batch_size: int,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge every item in every pass, batch by batch, skipping what ``store`` already holds.

    Batches are fixed slices of ``items``; the passes of a batch run together, so a time budget leaves a
    consistent set of items judged in every pass. Returns run statistics.
    """
    from tqdm.auto import tqdm

    start = time.monotonic()
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    stats = {"items": len(items), "reused_rows": 0, "new_rows": 0, "stopped_by_time_budget": False}
    stats["reused_rows"] = sum((it.id, p) in store for it in items for p in passes)
    bar = tqdm(batches, desc=f"{mode} judgments", unit="batch", disable=not progress, mininterval=2.0)
    spent: list[float] = []  # seconds per judged batch (all its passes)
    for batch in bar:
        todo = [p for p in passes if any((it.id, p) not in store for it in batch)]
        if not todo:
            continue
        # Stop before a batch that would likely end past the budget (the mean batch so far as the guess),
        # so the budget bounds the wall time rather than the start of the last batch.
        elapsed = time.monotonic() - start
        if (
            time_budget_s is not None
            and elapsed + (sum(spent) / len(spent) if spent else 0.0) >= time_budget_s
        ):
            stats["stopped_by_time_budget"] = True
            log.warning(
                "%s: time budget of %.0f s reached; %d of %d batches left for a re-run to finish",
                mode,
                time_budget_s,
                len(batches) - bar.n,
                len(batches),
            )
            break
        t = time.monotonic()
        for p in todo:
            # the whole batch is judged again when any of its rows is missing, so its composition (and
            # padding) is the one an uninterrupted run had; only the missing rows are written
            written = store.append(judge_batch(judge, mode, batch, p, placement))
            stats["new_rows"] += written
            kill_point("evaluate.rows", written)  # test-only (CJ2_TEST_KILL_AT), after the durable write
        spent.append(time.monotonic() - t)
    bar.close()
    stats["wall_s"] = round(time.monotonic() - start, 2)
    stats["done_items"] = sum(all((it.id, p) in store for p in passes) for it in items)
    return stats


# --------------------------------------------------------------------------------------------- a run
def resolve_modes(mode: str, supports_logits: bool, writes: bool = True) -> list[str]:
    """The modes of ``evaluate.mode`` for a judge that reads verdict logits (``supports_logits``) and
    writes judgments (``writes``); ``auto``: every mode the judge has."""
    if mode == "auto":
        return (["logits"] if supports_logits else []) + (["generate"] if writes else [])
    if mode == "both":
        wanted = ["logits", "generate"]
    elif mode in MODES:
        wanted = [mode]
    else:
        raise ValueError(f"evaluate.mode={mode!r}; expected auto, both, generate or logits")
    if "logits" in wanted and not supports_logits:
        raise ValueError(
            "evaluate.mode needs verdict logits, which only a local judge (hf, logits) with a "
            "single-token verdict format (cj2_choice, brackets, winner_json) gives"
        )
    if "generate" in wanted and not writes:
        raise ValueError("evaluate.mode=generate needs a judge that writes judgments, not the logits kind")
    return wanted


@dataclass(frozen=True)
class _Setup:
    """What the config fixes about a run: the ``evaluate`` options, seed, placement kind, judge and
    benchmark sections and their fingerprint."""

    evaluate: dict[str, Any]
    seed: int
    placement: str
    judge: dict[str, Any]
    benchmark: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class _Plan:
    """How the items are judged: the modes and passes, the cap on generated judgments and the time
    budget (``None``: none), the batch size, the bootstrap resamples and whether the judge runs on a CPU."""

    modes: list[str]
    passes: list[str]
    max_generated: int | None
    time_budget_s: float | None
    batch_size: int
    bootstrap: int
    on_cpu: bool
    progress: bool


@dataclass
class _ModeRun:
    """One mode's judging: :func:`run_mode`'s statistics, the items judged in every pass (what is
    scored), the store's rows and the notes for the report."""

    stats: dict[str, Any]
    judged: list[PairwiseItem]
    rows: Mapping[Any, dict[str, Any]]
    notes: list[str]


def run_evaluation(
    cfg: Mapping[str, Any], out: str | os.PathLike, *, judge: JudgeProtocol | None = None
) -> dict[str, Any]:
    """Run one evaluation described by a plain config mapping (``conf/evaluate.yaml``) into ``out``.

    ``judge`` (optional) is an already built judge, for callers that hold one. Returns ``metrics.json``'s
    content: ``{"results": {mode: metrics}, "runs": {mode: stats}, ...}``.
    """
    cfg = to_plain(dict(cfg))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup = _read_setup(cfg)
    check_state(
        out,
        setup.fingerprint,
        bool(setup.evaluate.get("overwrite", False)),
        state="eval_state.json",
        outputs=(*FILES.values(), "metrics.json", "report.md"),
        option="evaluate.overwrite",
    )
    save_config(out, cfg)
    own_loop = _benchmarks.benchmark_spec(setup.benchmark.get("name")).run
    if own_loop is not None:  # a benchmark judged by its own loop, not as pairs (RewardBench 2)
        bench = load_benchmark(setup.benchmark)
        metrics = own_loop(cfg, out, bench, judge=judge, fingerprint=setup.fingerprint)
        metrics["protocol"] = _benchmarks.protocol_of(bench, seed=setup.seed)
        atomic_write_json(out / "metrics.json", json_safe(metrics))
        metrics["plots"] = [str(p) for p in write_report(out, metrics, {})]
        return metrics

    t0 = time.monotonic()
    bench, placement, items = _place_items(out, setup)
    template = get_template(
        setup.judge.get("template") or _backends.trained_template(setup.judge) or bench.template
    )
    if judge is None:
        judge = _lazy_judge(setup, template)
    plan = _make_plan(setup, judge)
    notes = _plan_notes(plan, template, len(items)) + item_notes(
        bench.items, items, template, _backends.recorded_ids(judge)
    )
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    extras: dict[str, dict[str, Any]] = {}
    for mode in plan.modes:
        done = _judge_mode(judge, mode, items, placement, plan, out, setup.seed)
        runs[mode] = done.stats
        notes += done.notes
        results[mode], extras[mode] = _score_mode(bench, judge, done, plan.bootstrap, setup.seed)
    metrics = _metrics(setup, bench, template, items, results, runs, notes, wall_s=time.monotonic() - t0)
    atomic_write_json(out / "metrics.json", json_safe(metrics))
    plots = write_report(out, metrics, extras)
    metrics["plots"] = [str(p) for p in plots]
    return metrics


def _read_setup(cfg: Mapping[str, Any]) -> _Setup:
    """Check the ``evaluate`` keys and the judge section (no secret values), fingerprint the run; returns
    its :class:`_Setup`."""
    ev = dict(cfg.get("evaluate") or {})
    unknown = sorted(set(ev) - set(EVALUATE_KEYS))
    if unknown:
        raise ValueError(f"evaluate: unknown key(s) {unknown}; expected some of {sorted(EVALUATE_KEYS)}")
    seed = int(cfg.get("seed", 0))
    placement_kind = str(cfg.get("placement") or "balanced")
    jcfg, bcfg = dict(cfg["judge"]), dict(cfg["benchmark"])
    _backends.check_no_secrets(jcfg)
    fp = fingerprint(jcfg, bcfg, ev, placement_kind, seed)
    return _Setup(
        evaluate=ev, seed=seed, placement=placement_kind, judge=jcfg, benchmark=bcfg, fingerprint=fp
    )


def _place_items(out: Path, setup: _Setup) -> tuple[Any, dict[str, bool], list[PairwiseItem]]:
    """Load the benchmark, fix every pair's placement over the *full* benchmark (saved as
    ``placement.json``), then apply ``benchmark.limit``; returns the benchmark, the placement and the
    items to judge."""
    bench = load_benchmark(setup.benchmark)
    placement = compute_placement(bench.items, setup.placement, setup.seed)  # before caps
    atomic_write_json(
        out / "placement.json",
        {
            "kind": setup.placement,
            "seed": setup.seed,
            "order": {i: ("BA" if s else "AB") for i, s in placement.items()},
        },
    )
    items = bench.items
    if setup.benchmark.get("limit") is not None:
        items = items[: int(setup.benchmark["limit"])]
    return bench, placement, items


def _lazy_judge(setup: _Setup, template: Any) -> JudgeProtocol:
    """The judge of the config, built on first use (``evaluate.verdict_logits`` checked); returns it."""
    vl = dict(setup.evaluate.get("verdict_logits") or {})
    if set(vl) - {"analysis"}:
        raise ValueError(
            f"evaluate.verdict_logits: unknown key(s) {sorted(set(vl) - {'analysis'})}; expected 'analysis'"
        )
    analysis = str(vl.get("analysis") or "")
    return _backends.LazyJudge(setup.judge, template, analysis=analysis)


def _make_plan(setup: _Setup, judge: JudgeProtocol) -> _Plan:
    """The modes the judge supports, the passes, and the caps (``auto``: capped on a CPU, not otherwise);
    returns the :class:`_Plan`."""
    ev = setup.evaluate
    modes = resolve_modes(str(ev.get("mode") or "auto"), judge.supports_logits, judge.writes)
    passes = (
        ["headline"]
        + (["swap"] if ev.get("swap", True) else [])
        + (["style"] if ev.get("style_probe") else [])
    )
    on_cpu = judge.on_cpu
    max_generated = cpu_cap(ev.get("max_generated", "auto"), on_cpu, CPU_MAX_GENERATED)
    budget = cpu_cap(ev.get("time_budget_s", "auto"), on_cpu, CPU_TIME_BUDGET_S)
    return _Plan(
        modes=modes,
        passes=passes,
        max_generated=max_generated,
        time_budget_s=budget,
        batch_size=int(ev.get("batch_size") or setup.judge.get("batch_size") or 8),
        bootstrap=int(ev.get("bootstrap", 1000)),
        on_cpu=on_cpu,
        progress=bool(ev.get("progress", True)),
    )


def _plan_notes(plan: _Plan, template: Any, n_items: int) -> list[str]:
    """The report's opening notes: a CPU run's caps and how verdict logits are read; returns them."""
    notes = []
    if plan.on_cpu and "generate" in plan.modes:
        notes.append(
            "CPU run: headline accuracy over all items from verdict logits; generated judgments "
            "are capped (evaluate.max_generated, evaluate.time_budget_s)"
        )
    if "logits" in plan.modes:
        notes.append(
            "verdict logits: P(label) at the verdict slot of a forced answer skeleton "
            f"(template {template.name!r}), one forward pass per judgment, all {n_items} items"
        )
    return notes


def _judge_mode(
    judge: JudgeProtocol,
    mode: str,
    items: list[PairwiseItem],
    placement: Mapping[str, bool],
    plan: _Plan,
    out: Path,
    seed: int,
) -> _ModeRun:
    """Judge ``items`` in one mode in every pass, resuming from the mode's file in ``out``; generated
    judgments go to a seeded subset under the cap and stop at the time budget. Returns a :class:`_ModeRun`
    whose notes say what a cap or the budget left out."""
    mode_items = list(items)
    cap_items = None
    if mode == "generate":
        if plan.max_generated is not None:
            cap_items = max(1, int(plan.max_generated) // len(plan.passes))
        mode_items = generated_subset(items, cap_items, seed)
    store = ResultStore(out / FILES[mode], _key)
    stats = run_mode(
        judge,
        mode,
        mode_items,
        placement,
        plan.passes,
        store,
        batch_size=plan.batch_size,
        time_budget_s=plan.time_budget_s if mode == "generate" else None,
        progress=plan.progress,
    )
    stats.update(recovered_torn_bytes=store.recovered_bytes, passes=plan.passes)
    notes = []
    if cap_items is not None and cap_items < len(items):
        budget = plan.time_budget_s
        notes.append(
            f"{mode}: capped at {int(plan.max_generated)} generated judgments ({len(mode_items)} of "
            f"{len(items)} items x {len(plan.passes)} passes, a seeded subset); time budget "
            f"{budget if budget is not None else 'none'} s"
        )
    if stats["stopped_by_time_budget"]:
        notes.append(
            f"{mode}: stopped by the time budget after {stats['done_items']} items; re-run the same "
            "command to continue"
        )
    judged = (
        [it for it in mode_items if all((it.id, p) in store for p in plan.passes)]
        if stats["stopped_by_time_budget"]
        else mode_items
    )
    return _ModeRun(stats=stats, judged=judged, rows=store.rows, notes=notes)


def _score_mode(
    bench: Any, judge: JudgeProtocol, done: _ModeRun, bootstrap: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score one mode's judged items (:func:`cj2.evaluation.scoring.score`, plus the judge's count of
    missing judgments); returns the metrics and the extras the plots use."""
    from cj2.evaluation.scoring import score

    result, extra = score(bench, done.judged, done.rows, bootstrap=bootstrap, seed=seed)
    if judge.n_missing:
        result["n_missing"] = float(judge.n_missing)
    return result, extra


def _metrics(
    setup: _Setup,
    bench: Any,
    template: Any,
    items: Sequence[PairwiseItem],
    results: dict[str, dict[str, Any]],
    runs: dict[str, dict[str, Any]],
    notes: list[str],
    *,
    wall_s: float,
) -> dict[str, Any]:
    """``metrics.json``'s content (module docstring), the embedded benchmark's design included; returns
    it."""
    metrics = {
        "benchmark": bench.name,
        "judge": _backends.judge_label(setup.judge),
        "template": template.name,
        "placement": setup.placement,
        "seed": setup.seed,
        "n_items": len(items),
        "n_benchmark_items": len(bench.items),
        "benchmark_stats": bench.stats,
        "results": results,
        "runs": runs,
        "notes": notes,
        "wall_time_s": round(wall_s, 1),
        "fingerprint": setup.fingerprint,
        "protocol": _benchmarks.protocol_of(
            bench,
            passes=next(iter(runs.values()), {}).get("passes"),
            placement=setup.placement,
            seed=setup.seed,
        ),
    }
    if bench.info.get("models"):
        metrics["embedded"] = {
            "models": bench.info["models"],
            "scenarios": bench.info["scenarios"],
            "n_queries": bench.info["n_queries"],
        }
    return metrics


def write_report(
    out: Path, metrics: Mapping[str, Any], extras: Mapping[str, Mapping[str, Any]]
) -> list[Path]:
    """``report.md`` and the plots (``domains.png``, ``ranks_<mode>.png``) in ``out``."""
    from cj2.evaluation.report import plot_domains, plot_ranks, render_markdown

    title = (
        f"{metrics['benchmark']}: judge {metrics['judge']} (template {metrics['template']}, placement "
        f"{metrics['placement']}, seed {metrics['seed']})"
    )
    notes = list(metrics.get("notes", [])) + [f"total wall time {metrics['wall_time_s']} s"]
    report = render_markdown(
        title,
        metrics["results"],
        metrics["runs"],
        notes,
        sections=getattr(_benchmarks.BENCHMARKS.get(metrics["benchmark"]), "report", ()),
        protocol=metrics.get("protocol"),
    )
    atomic_write_text(out / "report.md", report)
    plots = []
    if importlib.util.find_spec("matplotlib") is None:
        log.warning('matplotlib is not installed: report.md written without plots (pip install "cj2[plots]")')
        return plots
    p = plot_domains(metrics["results"], out / "domains.png")
    if p is not None:
        plots.append(p)
    for mode, extra in extras.items():
        if extra.get("win_tables"):
            p = plot_ranks(
                extra["win_tables"], out / f"ranks_{mode}.png", title=f"{metrics['benchmark']}: {mode}"
            )
            if p is not None:
                plots.append(p)
    return plots
