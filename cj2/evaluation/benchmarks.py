"""Benchmarks read in their native layouts (arXiv 2507.09104, Sec. 4-5), as items plus how to score them.

===================  ==========================================================  ===================
``benchmark.name``   what ``benchmark.path`` is                                  headline metric
===================  ==========================================================  ===================
``embedded``         nothing: built in code (:mod:`cj2.evaluation.embedded`)     JudgerBenchV2 final
``judgerbenchv2``    the folder of ``{Scenario}.json`` files                     JudgerBenchV2 final
``rewardbench``      RewardBench's file (``prompt, chosen, rejected, subset``)   RewardBench final
``judgebench``       a JudgeBench JSONL (``pair_id, response_A, ..., label``)    double-order accuracy
``rmb``              the RMB dataset folder (``Pairwise_set``, ``BoN_set``)       RMB total accuracy
``rmbench``          RM-Bench's domain files, ``total_dataset.json`` or a folder  RM-Bench score
``rewardbench2``     RewardBench 2 (``id, prompt, chosen[], rejected[], ...``)   RewardBench 2 score
``pairwise``         any file a curation adapter reads (``benchmark.adapter``)   accuracy
===================  ==========================================================  ===================

``rewardbench``, ``judgebench``, ``rmbench``, ``rewardbench2`` and ``pairwise`` also take a hub dataset as
``benchmark.path`` (``hf://org/name[@revision][:[config:]split]``, :mod:`cj2.data.hub`; ``pip install
"cj2[hub]"``), read through the same adapter; what was read is in the stats' ``origin``. JudgerBenchV2 and
RMB take folders only (their file names carry the scenario and the best-of-N split).

Every pairwise benchmark becomes a list of :class:`~cj2.data.schema.PairwiseItem` in the file's order (RMB
best-of-N groups become one pair per loser, ``meta["bon_group"]``); RewardBench 2 stays best-of-N items and
is judged by its own loop (:mod:`cj2.evaluation.rewardbench2`). ``benchmark.gt_path`` replaces the labels
with a Mix-of-Judgers ground truth written by ``python -m cj2.moj`` (Sec. 4.2).

Each benchmark is one :class:`BenchmarkSpec` in :data:`BENCHMARKS`: its loader, its config keys, its
scoring kind, default template, benchmark-specific metrics, **its protocol** (how its numbers are computed:
:func:`protocol_of`, written beside every number in ``metrics.json``, ``report.md`` and the wandb summary),
**its report sections**, the command that fetches its data and, for the one-table suite report, which
metric is its number under each protocol. Adding a benchmark = one loader function registered with
:func:`register_benchmark` (here or in any module imported before the run) and one
``conf/benchmark/<name>.yaml``; nothing else is edited.

Imports run one way: this module uses :mod:`cj2.evaluation.scoring`, which never imports it (it reads a
benchmark's spec through :attr:`Benchmark.spec`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.data.adapters import load_items
from cj2.data.hub import is_hub_uri
from cj2.data.io import DataError, read_rows
from cj2.data.schema import PAIRWISE_LABELS, BestOfNItem, PairwiseItem
from cj2.evaluation import scoring
from cj2.metrics import rmbench_domain

log = logging.getLogger(__name__)

JUDGERBENCH_REFERENCE = "gpt-4o-mini-2024-07-18"

# Keys every benchmark accepts; a spec adds its own (BenchmarkSpec.keys).
COMMON_KEYS = ("name", "path", "limit", "gt_path", "on_error", "template", "description")
# Keys that cap or describe a run without changing any item's result (left out of the resume fingerprint).
OPERATIONAL_KEYS = ("limit", "description", "on_error")


@dataclass
class Benchmark:
    """Items of one benchmark (file order) and how to score them."""

    name: str
    kind: str  # its spec's kind: judgerbench | rewardbench | judgebench | rmb | rmbench | rewardbench2 | ...
    items: list[Any]  # PairwiseItem; BestOfNItem for a benchmark with its own loop (RewardBench 2)
    template: str
    reference_model: str | None = None
    compat: str | None = None
    weighting: str = "official"
    stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def spec(self) -> BenchmarkSpec:
        """Its registered spec (a ``ValueError`` listing the registered ones for an unknown name)."""
        return benchmark_spec(self.name)


# loader(cfg, bench): fill ``bench.items`` (file order) and any field of ``bench`` the benchmark sets.
Loader = Callable[[dict[str, Any], Benchmark], None]
# scorer(bench, pairs, metrics, bootstrap=, seed=) -> (metrics to add, report extras): the benchmark's own
# numbers from the headline (item, row) pairs; ``metrics`` holds the common ones (accuracy, swap/...). A spec
# with ``needs_rows=True`` also gets ``items=`` (the judged items) and ``rows=`` (every pass's rows).
Scored = tuple[dict[str, float], dict[str, Any]]
Scorer = Callable[..., Scored]


# protocol(bench) -> the benchmark's own protocol entries (see :func:`protocol_of`).
Protocol = Callable[["Benchmark"], dict[str, Any]]
# run(cfg, out, *, judge, fingerprint) -> metrics.json's content: a benchmark judged by its own loop.
Runner = Callable[..., dict[str, Any]]

# The protocol rows of the suite's one table (python -m cj2.evaluate +suite=...).
TABLE_ROWS = ("paper", "official", "strict")


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything cj2 knows about one benchmark: how to read it, which config keys it takes (besides
    :data:`COMMON_KEYS`), its scoring kind, its default template, the benchmark-specific metrics
    (``None``: the common ones only), a check of the loaded items (``None``: none), and

    * ``protocol``: its protocol entries (averaging, credit for an unparsable answer, ties, compat mode;
      :func:`protocol_of` adds the orders judged, the placement and its seed);
    * ``report``: the ``report.md`` sections, ``(metric prefix, title, depth)``: every metric under
      ``prefix/`` with at most ``depth`` further ``/`` levels, one row each;
    * ``title`` (the suite table's column name), ``fetch`` (the command that fetches its data, shown when
      the data is absent), ``table``: ``{protocol row: (metric key, factor to 0-100)}`` for the suite table
      (rows :data:`TABLE_ROWS`; a row the benchmark lacks reads "n/a");
    * ``needs_rows``: the scorer also gets every pass's rows; ``run``: a benchmark judged by its own loop
      instead of pairs (``None``: the pairwise runner).
    """

    name: str
    load: Loader
    kind: str
    template: str = "cj2_eval"
    keys: tuple[str, ...] = ()
    score: Scorer | None = None
    check: Callable[[Benchmark], None] | None = None
    protocol: Protocol | None = None
    report: tuple[tuple[str, str, int], ...] = ()
    title: str = ""
    fetch: str = ""
    table: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    needs_rows: bool = False
    run: Runner | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {}


def register_benchmark(
    name: str,
    *,
    kind: str,
    template: str = "cj2_eval",
    keys: Sequence[str] = (),
    score: Scorer | None = None,
    check: Callable[[Benchmark], None] | None = None,
    protocol: Protocol | None = None,
    report: Sequence[tuple[str, str, int]] = (),
    title: str = "",
    fetch: str = "",
    table: Mapping[str, tuple[str, float]] | None = None,
    needs_rows: bool = False,
    run: Runner | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator: make the loader ``fn`` selectable as ``benchmark.name=<name>`` (with a
    ``conf/benchmark/<name>.yaml``), scored by ``score``; the other arguments are
    :class:`BenchmarkSpec`'s fields."""

    def register(fn: Loader) -> Loader:
        BENCHMARKS[name] = BenchmarkSpec(
            name=name,
            load=fn,
            kind=kind,
            template=template,
            keys=tuple(keys),
            score=score,
            check=check,
            protocol=protocol,
            report=tuple(report),
            title=title or name,
            fetch=fetch,
            table=dict(table or {}),
            needs_rows=needs_rows,
            run=run,
        )
        return fn

    return register


def protocol_of(
    bench: Benchmark, *, passes: Sequence[str] | None = None, placement: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """How the numbers of ``bench`` are computed, as written beside them in ``metrics.json``, ``report.md``
    and the wandb summary: ``split``, ``orders`` (which orders each pair was judged in), ``averaging``,
    ``unparsed`` (the credit for an unparsable answer), ``ties`` (how a tie verdict counts), ``placement``
    and ``placement_seed``, ``compat``; the spec's ``protocol`` fills or overrides the entries it knows."""
    passes = list(passes or ["headline"])
    orders = (
        "both (placement order, then swapped)"
        if "swap" in passes
        else "one (the placement order: a seeded balanced choice per pair)"
    )
    out: dict[str, Any] = {
        "split": bench.info.get("split") or f"all items of {bench.info.get('path') or 'the data'}",
        "orders": orders,
        "scored_on": "the placement order (headline pass); other passes give swap consistency",
        "averaging": "micro over judged pairs",
        "unparsed": "0 (strict: counted wrong)",
        "ties": "a tie verdict is wrong unless the gold label is a tie",
        "placement": placement or "balanced",
        "placement_seed": int(seed),
        "compat": bench.compat or "none (cj2 strict)",
    }
    spec = bench.spec
    if spec.protocol is not None:
        out.update(spec.protocol(bench))
    return out


def benchmark_spec(name: Any) -> BenchmarkSpec:
    """The registered spec of ``name``; an unknown name is a ``ValueError`` listing the registered ones."""
    if not isinstance(name, str) or name not in BENCHMARKS:
        raise ValueError(
            f"benchmark.name={name!r} is not a registered benchmark; registered: {', '.join(BENCHMARKS)}"
        )
    return BENCHMARKS[name]


def _pairs(items: list) -> list[PairwiseItem]:
    out: list[PairwiseItem] = []
    for item in items:
        if isinstance(item, BestOfNItem):
            out.extend(item.pairs())
        elif isinstance(item, PairwiseItem):
            out.append(item)
        else:
            raise ValueError(
                f"item {getattr(item, 'id', '?')!r} is {getattr(item, 'kind', type(item).__name__)}; "
                "judge benchmarks here are pairwise (or best-of-N groups)"
            )
    return out


def _require_path(cfg: Mapping[str, Any], name: str, *, hub: bool = True) -> Path | str:
    """``benchmark.path`` checked: a local path that exists, or (``hub``) an ``hf://`` hub dataset, which
    :func:`load_items` reads like a file (:mod:`cj2.data.hub`)."""
    if not cfg.get("path"):
        raise ValueError(
            f"benchmark {name!r} needs benchmark.path (where its files are); only 'embedded' is built in"
        )
    if is_hub_uri(cfg["path"]):
        if not hub:
            raise ValueError(
                f"benchmark {name!r} reads a folder whose file names carry meaning; benchmark.path="
                f"{cfg['path']!r} (a hub dataset) cannot say them: download it and give the folder"
            )
        return str(cfg["path"])
    path = Path(str(cfg["path"])).expanduser()
    if not path.exists():
        raise DataError("file not found (benchmark.path)", path=path)
    return path


def _rmb_items(path: Path, on_error: str, stats: dict) -> list[PairwiseItem]:
    """RMB's folder: files under a ``BoN`` folder are best-of-N groups, all others pairwise."""
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*.json*") if not p.name.startswith("."))
    )
    if not files:
        raise DataError("the RMB folder holds no .json/.jsonl files", path=path)
    items: list = []
    for f in files:
        parts = [p.lower() for p in f.relative_to(path).parts] if path.is_dir() else [f.name.lower()]
        adapter = "rmb_bon" if any("bon" in p for p in parts) else "rmb_pairwise"
        items.extend(load_items(f, adapter, on_error=on_error, stats=stats))
    return _pairs(items)


def read_gt(path: str | Path) -> dict[str, str]:
    """A ground-truth file (``python -m cj2.moj``): JSONL rows ``{"id", "label"}``, label ``A``/``B``/``tie``
    in the frame of the item as the benchmark file has it. Bad rows and duplicate ids are DataErrors."""
    out: dict[str, str] = {}
    for line, row in read_rows(path):
        if row.get("id") is None:
            raise DataError("missing required field", path=path, line=line, field="id")
        if row.get("label") not in PAIRWISE_LABELS:
            raise DataError(
                f"label {row.get('label')!r} is not one of {PAIRWISE_LABELS}",
                path=path,
                line=line,
                field="label",
            )
        key = str(row["id"])
        if key in out:
            raise DataError(f"item {key!r} appears twice", path=path, line=line, field="id")
        out[key] = row["label"]
    return out


def apply_gt(items: list[PairwiseItem], gt: Mapping[str, str], stats: dict) -> list[PairwiseItem]:
    """Items relabelled with ``gt``; items the file does not cover are left out and counted
    (``stats["no_gt"]``), ids of the file that match no item are counted (``stats["gt_unmatched"]``)."""
    import dataclasses

    kept = [
        dataclasses.replace(it, label=gt[it.id], meta={**it.meta, "original_label": it.label})
        for it in items
        if it.id in gt
    ]
    stats["no_gt"] = len(items) - len(kept)
    stats["gt_unmatched"] = len(set(gt) - {it.id for it in items})
    if stats["no_gt"]:
        log.warning(
            "benchmark: %d items have no label in the ground-truth file and are left out", stats["no_gt"]
        )
    return kept


def load_benchmark(cfg: Mapping[str, Any]) -> Benchmark:
    """Read the benchmark a ``benchmark`` config section describes (see ``conf/benchmark/*.yaml``).

    Unknown keys are an error naming them; ``on_error`` (``raise``/``skip``) goes to the adapters, whose
    read/kept/skipped counts land in ``Benchmark.stats``. ``limit`` is *not* applied here: the placement
    is computed over the full benchmark first (:mod:`cj2.evaluation.placement`).
    """
    cfg = dict(cfg)
    name = cfg.get("name")
    spec = benchmark_spec(name)
    unknown = sorted(set(cfg) - set(COMMON_KEYS) - set(spec.keys))
    if unknown:
        raise ValueError(
            f"benchmark {name!r}: unknown key(s) {unknown}; expected some of "
            f"{sorted(set(COMMON_KEYS) | set(spec.keys))}"
        )
    bench = Benchmark(name=name, kind=spec.kind, items=[], template=cfg.get("template") or spec.template)
    if cfg.get("path"):
        bench.info["path"] = str(cfg["path"])
    spec.load(cfg, bench)
    if not bench.items:
        raise DataError(f"benchmark {name!r} holds no items", path=cfg.get("path"))
    if cfg.get("gt_path"):
        bench.items = apply_gt(bench.items, read_gt(cfg["gt_path"]), bench.stats)
        if not bench.items:
            raise DataError("no benchmark item has a label in the ground-truth file", path=cfg["gt_path"])
    if spec.check is not None:
        spec.check(bench)
    return bench


# --------------------------------------------------------------------------------------------------------
# The benchmarks: each one scorer (if it has its own numbers), its protocol and one registered loader.
# ``{root}`` in a fetch command is the suite's data folder (``suite.data_root``).


def _on_error(cfg: Mapping[str, Any]) -> str:
    return cfg.get("on_error") or "raise"


def _score_judgerbench(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    jb, tables = scoring.judgerbench_metrics(
        pairs, bench.reference_model or "", bench.compat, bootstrap=bootstrap, seed=seed
    )
    # both readings' final scores (OpenCompass's and cj2's strict); one that is undefined on these judgments
    # (NaN: OpenCompass drops a model the judge never picks) is left out, never written as a number
    for compat, key in ((None, "strict"), ("opencompass", "opencompass")):
        if compat == bench.compat:
            final = jb["jbv2/final"]
        else:
            other, _ = scoring.judgerbench_metrics(pairs, bench.reference_model or "", compat, bootstrap=0)
            final = other["jbv2/final"]
        if math.isfinite(final):
            jb[f"jbv2/{key}/final"] = final
    return jb, {"win_tables": tables}


def _protocol_judgerbench(bench: Benchmark) -> dict[str, Any]:
    opencompass = bench.compat == "opencompass"
    return {
        "averaging": "final = (accuracy - normalised rank difference + 100) / 2 per scenario, mean over "
        f"scenarios; ranks against the reference model {bench.reference_model!r}",
        "unparsed": "dropped (OpenCompass)" if opencompass else "0 (strict: counted wrong)",
        "compat": "opencompass (its parser: last 'winner' match)" if opencompass else "none (cj2 strict)",
        "also": "jbv2/strict/final and jbv2/opencompass/final: both readings of the same judgments",
    }


def _check_judgerbench(bench: Benchmark) -> None:
    bad = next((it for it in bench.items if not {"model_a", "model_b"} <= set(it.meta)), None)
    if bad is not None:
        raise ValueError(f"item {bad.id!r}: JudgerBenchV2 scoring needs meta model_a/model_b")


_JBV2_TABLE = {
    "paper": ("jbv2/opencompass/final", 1.0),
    "official": ("jbv2/opencompass/final", 1.0),
    "strict": ("jbv2/strict/final", 1.0),
}
_JBV2_REPORT = (("jbv2", "JudgerBenchV2 (0-100, mean over scenarios)", 1),)


@register_benchmark(
    "embedded",
    kind="judgerbench",
    template="cj2_short",
    keys=("n_queries", "models", "scenarios", "split", "seed"),
    score=_score_judgerbench,
    check=_check_judgerbench,
    protocol=_protocol_judgerbench,
    report=_JBV2_REPORT,
    title="embedded (mini JudgerBenchV2)",
    table=_JBV2_TABLE,
)
def _load_embedded(cfg: dict[str, Any], bench: Benchmark) -> None:
    from cj2.evaluation.embedded import build_embedded

    models = cfg.get("models")
    emb = build_embedded(
        int(cfg.get("n_queries") or 10),
        dict(models) if models else None,
        list(cfg["scenarios"]) if cfg.get("scenarios") else None,
        split=cfg.get("split") or "test",
        seed=int(cfg.get("seed") or 0),
    )
    bench.items = emb.items
    bench.reference_model = emb.reference_model
    bench.info.update(
        models=emb.models,
        scenarios=emb.scenarios,
        n_queries=emb.n_queries,
        gt_wins=emb.gt_wins,
        split=f"built-in task split {cfg.get('split') or 'test'!r}",
    )


@register_benchmark(
    "judgerbenchv2",
    kind="judgerbench",
    template="judgerbenchv2",
    keys=("compat", "reference_model"),
    score=_score_judgerbench,
    check=_check_judgerbench,
    protocol=_protocol_judgerbench,
    report=_JBV2_REPORT,
    title="JudgerBenchV2",
    fetch="OpenCompass's data release holds it as data/judgeeval/judgerbenchv2 (the folder of "
    "{{Scenario}}.json files): copy that folder to {root}/judgerbenchv2",
    table=_JBV2_TABLE,
)
def _load_judgerbenchv2(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name, hub=False)
    bench.items = _pairs(load_items(path, "judgerbenchv2", on_error=_on_error(cfg), stats=bench.stats))
    bench.reference_model = cfg.get("reference_model") or JUDGERBENCH_REFERENCE
    bench.compat = cfg.get("compat")


# RewardBench ------------------------------------------------------------------------------------------
REWARDBENCH_COMPATS = (None, "generative")


def _score_rewardbench(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    out = scoring.rewardbench_metrics(pairs, bench.weighting, bench.compat)
    # the protocols of the suite table, from the same judgments: the leaderboard's generative one (0.5 for
    # an unparsable answer, A-first reading, official weighting), the paper's (OpenCompass's count-weighted
    # sections, strict) and cj2's strict with the official weighting
    for name, weighting, compat in (
        ("official", "official", "generative"),
        ("opencompass", "opencompass", None),
        ("strict", "official", None),
    ):
        same = (weighting, compat) == (bench.weighting, bench.compat)
        other = out if same else scoring.rewardbench_metrics(pairs, weighting, compat)
        out[f"rewardbench/{name}/final"] = other["rewardbench/final"]
    return out, {}


def _protocol_rewardbench(bench: Benchmark) -> dict[str, Any]:
    generative = bench.compat == "generative"
    weighting = (
        "sections count-weighted, Reasoning included (OpenCompass, the paper's Table 8)"
        if bench.weighting == "opencompass"
        else "subsets count-weighted within Chat, Chat Hard, Safety; Reasoning = (math-prm + code) / 2"
    )
    return {
        "averaging": f"final = mean of 4 sections; {weighting}",
        "unparsed": "0.5 (RewardBench generative)" if generative else "0 (strict: counted wrong)",
        "reading": "A-first substring: a text holding an A verdict marker reads A, even with a B one"
        if generative
        else "cj2's parser (the last verdict marker; contradicting markers side by side: unparsed)",
        "compat": "generative (RewardBench's generative-judge rules)" if generative else "none (cj2 strict)",
        "scored_on": "the placement order: one order per item (seeded, balanced; RewardBench's script draws "
        "it at random, unseeded)",
        "also": "rewardbench/official/final (generative rules, official weighting), "
        "rewardbench/opencompass/final (paper), rewardbench/strict/final",
    }


def _check_rewardbench_compat(bench: Benchmark) -> None:
    if bench.compat not in REWARDBENCH_COMPATS:
        raise ValueError(f"benchmark.compat={bench.compat!r} for rewardbench; expected null or 'generative'")


@register_benchmark(
    "rewardbench",
    kind="rewardbench",
    keys=("weighting", "compat"),
    score=_score_rewardbench,
    check=_check_rewardbench_compat,
    protocol=_protocol_rewardbench,
    report=(("rewardbench", "RewardBench (0-100)", 1),),
    title="RewardBench",
    fetch="python -c \"from datasets import load_dataset; load_dataset('allenai/reward-bench', "
    "split='filtered').to_json('{root}/rewardbench/filtered.jsonl')\"",
    table={
        "paper": ("rewardbench/opencompass/final", 1.0),
        "official": ("rewardbench/official/final", 1.0),
        "strict": ("rewardbench/strict/final", 1.0),
    },
)
def _load_rewardbench(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, "rewardbench", on_error=_on_error(cfg), stats=bench.stats))
    bench.weighting = cfg.get("weighting") or "official"
    bench.compat = cfg.get("compat") or None


# JudgeBench -------------------------------------------------------------------------------------------
def _score_judgebench(
    bench: Benchmark,
    pairs: Sequence,
    metrics: Mapping[str, float],
    *,
    bootstrap: int,
    seed: int,
    items: Sequence = (),
    rows: Mapping | None = None,
) -> Scored:
    return scoring.judgebench_metrics(items, rows or {}), {}


def _protocol_judgebench(bench: Benchmark) -> dict[str, Any]:
    return {
        "averaging": "judgebench/score: double-order net vote (each order +1 toward the side it picks, -1 "
        "against; right when the net favours the gold side), micro over pairs; judgebench/<source>/score: "
        "the same within each source; judgebench/single_order/accuracy: the first order (response_A shown "
        "as A) alone, as OpenCompass scores it (the paper's 63.06 is of this kind)",
        "ties": "a tie verdict adds 0 to the net vote",
        "unparsed": "adds 0 to the net vote; wrong in single order",
        "scored_on": "both orders (net vote); single_order: the order showing response_A as A",
    }


@register_benchmark(
    "judgebench",
    kind="judgebench",
    score=_score_judgebench,
    needs_rows=True,
    protocol=_protocol_judgebench,
    report=(("judgebench", "JudgeBench (fractions)", 2),),
    title="JudgeBench",
    fetch="git clone --depth 1 https://github.com/ScalerLab/JudgeBench /tmp/JudgeBench && mkdir -p {root} && "
    "cp '/tmp/JudgeBench/data/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl' "
    "{root}/judgebench.jsonl",
    table={
        "paper": ("judgebench/single_order/accuracy", 100.0),
        "official": ("judgebench/score", 100.0),
        "strict": ("judgebench/score", 100.0),
    },
)
def _load_judgebench(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, "judgebench", on_error=_on_error(cfg), stats=bench.stats))


# RMB --------------------------------------------------------------------------------------------------
def _score_rmb(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    return scoring.rmb_metrics(pairs), {}


def _protocol_rmb(bench: Benchmark) -> dict[str, Any]:
    return {
        "averaging": "pair accuracy micro over pairs; best-of-N accuracy over groups (right only when the "
        "best beats every loser); total_accuracy = mean of pair/BoN x helpfulness/harmlessness "
        "(OpenCompass's RMB number); final = mean of pair and BoN accuracy",
    }


@register_benchmark(
    "rmb",
    kind="rmb",
    score=_score_rmb,
    protocol=_protocol_rmb,
    report=(("rmb", "RMB (0-100)", 1),),
    title="RMB",
    fetch="git clone --depth 1 https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark /tmp/RMB && "
    "mkdir -p {root} && cp -r /tmp/RMB/RMB_dataset {root}/rmb",
    table={
        "paper": ("rmb/total_accuracy", 1.0),
        "official": ("rmb/total_accuracy", 1.0),
        "strict": ("rmb/total_accuracy", 1.0),
    },
)
def _load_rmb(cfg: dict[str, Any], bench: Benchmark) -> None:
    bench.items = _rmb_items(_require_path(cfg, bench.name, hub=False), _on_error(cfg), bench.stats)


# RM-Bench ---------------------------------------------------------------------------------------------
RMBENCH_COMPATS = (None, "rm_r1")


def _score_rmbench(
    bench: Benchmark,
    pairs: Sequence,
    metrics: Mapping[str, float],
    *,
    bootstrap: int,
    seed: int,
    items: Sequence = (),
    rows: Mapping | None = None,
) -> Scored:
    return scoring.rmbench_metrics(items, rows or {}, bench.compat), {}


def _protocol_rmbench(bench: Benchmark) -> dict[str, Any]:
    rm_r1 = bench.compat == "rm_r1"
    return {
        "averaging": "3x3 style matrix (chosen style x rejected style: concise, detailed plain, markdown) "
        "averaged over items; hard = upper triangle, normal = diagonal, easy = lower triangle; a domain's "
        "score = mean of the three; overall = plain mean over domains (chat, math, code, safety; "
        "safety-refuse and safety-response are one domain)",
        "credit": "one order (the placement order): chosen picked 1, tie 0.5, error 0 (RM-R1)"
        if rm_r1
        else "double-order net vote: right in one order and wrong in the other is not a win",
        "unparsed": "0" if rm_r1 else "adds 0 to the net vote",
        "scored_on": "the placement order only" if rm_r1 else "both orders (net vote)",
        "ties": "0.5" if rm_r1 else "adds 0 to the net vote",
        "compat": "rm_r1" if rm_r1 else "none (cj2: both orders, net vote)",
        "also": "rmbench/rm_r1/* and, with both orders judged, rmbench/net_vote/*",
    }


def _check_rmbench(bench: Benchmark) -> None:
    if bench.compat not in RMBENCH_COMPATS:
        raise ValueError(f"benchmark.compat={bench.compat!r} for rmbench; expected null or 'rm_r1'")


@register_benchmark(
    "rmbench",
    kind="rmbench",
    keys=("compat",),
    score=_score_rmbench,
    needs_rows=True,
    check=_check_rmbench,
    protocol=_protocol_rmbench,
    report=(("rmbench", "RM-Bench (0-100)", 2),),
    title="RM-Bench",
    fetch="git clone --depth 1 https://github.com/THU-KEG/RM-Bench /tmp/RM-Bench && mkdir -p {root}/rmbench "
    "&& cp /tmp/RM-Bench/data/total_dataset.json {root}/rmbench/",
    table={
        "paper": ("rmbench/rm_r1/score", 1.0),
        "official": ("rmbench/score", 1.0),
        "strict": ("rmbench/net_vote/score", 1.0),
    },
)
def _load_rmbench(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, "rmbench", on_error=_on_error(cfg), stats=bench.stats))
    bench.compat = cfg.get("compat") or None
    for it in bench.items:  # the domain (chat/math/code/safety) is checked now, not at scoring time
        try:
            rmbench_domain(it.meta.get("rmbench_domain", it.domain))
        except ValueError as err:
            raise DataError(f"item {it.id!r}: {err}", path=cfg.get("path"), field="domain") from None


# RewardBench 2 ----------------------------------------------------------------------------------------
def _run_rewardbench2(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from cj2.evaluation.rewardbench2 import run_rewardbench2

    return run_rewardbench2(*args, **kwargs)


def _protocol_rewardbench2(bench: Benchmark) -> dict[str, Any]:
    from cj2.evaluation.rewardbench2 import protocol

    return protocol(bench)


@register_benchmark(
    "rewardbench2",
    kind="rewardbench2",
    template="cj2_rating",
    keys=("compat", "mode", "slot_seed"),
    protocol=_protocol_rewardbench2,
    report=(("rewardbench2", "RewardBench 2 (0-100)", 2),),
    title="RewardBench 2",
    fetch="python -c \"from datasets import load_dataset; load_dataset('allenai/reward-bench-2', "
    "split='test').to_json('{root}/rewardbench2/test.jsonl')\"",
    table={"official": ("rewardbench2/official/score", 1.0), "strict": ("rewardbench2/strict/score", 1.0)},
    run=_run_rewardbench2,
)
def _load_rewardbench2(cfg: dict[str, Any], bench: Benchmark) -> None:
    from cj2.evaluation.rewardbench2 import configure

    path = _require_path(cfg, bench.name)
    bench.items = load_items(path, "rewardbench2", on_error=_on_error(cfg), stats=bench.stats)
    configure(cfg, bench)


# Any pairwise file ------------------------------------------------------------------------------------
@register_benchmark(
    "pairwise",
    kind="pairwise",
    keys=("adapter", "options"),
    report=(),
    title="pairwise",
)
def _load_pairwise(cfg: dict[str, Any], bench: Benchmark) -> None:
    options = dict(cfg.get("options") or {})
    adapter = cfg.get("adapter") or "pairwise"
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, adapter, on_error=_on_error(cfg), stats=bench.stats, **options))
