"""Benchmarks read in their native layouts (arXiv 2507.09104, Sec. 4-5), as pairwise items plus how to
score them.

===================  ==========================================================  ===================
``benchmark.name``   what ``benchmark.path`` is                                  headline metric
===================  ==========================================================  ===================
``embedded``         nothing: built in code (:mod:`cj2.evaluation.embedded`)     JudgerBenchV2 final
``judgerbenchv2``    the folder of ``{Scenario}.json`` files                     JudgerBenchV2 final
``rewardbench``      RewardBench's file (``prompt, chosen, rejected, subset``)   RewardBench final
``judgebench``       a JudgeBench JSONL (``pair_id, response_A, ..., label``)    double-order accuracy
``rmb``              the RMB dataset folder (``Pairwise_set``, ``BoN_set``)       RMB total accuracy
``pairwise``         any file a curation adapter reads (``benchmark.adapter``)   accuracy
===================  ==========================================================  ===================

``rewardbench``, ``judgebench`` and ``pairwise`` also take a hub dataset as ``benchmark.path``
(``hf://org/name[@revision][:[config:]split]``, :mod:`cj2.data.hub`; ``pip install "cj2[hub]"``), read
through the same adapter; what was read is in the stats' ``origin``. JudgerBenchV2 and RMB take folders
only (their file names carry the scenario and the best-of-N split).

Every benchmark becomes a list of :class:`~cj2.data.schema.PairwiseItem` in the file's order (RMB
best-of-N groups become one pair per loser, ``meta["bon_group"]``). ``benchmark.gt_path`` replaces the
labels with a Mix-of-Judgers ground truth written by ``python -m cj2.moj`` (Sec. 4.2).

Each benchmark is one :class:`BenchmarkSpec` in :data:`BENCHMARKS` (its loader, its config keys, its
scoring kind, default template and benchmark-specific metrics). Adding a benchmark = one loader function
registered with :func:`register_benchmark` (here or in any module imported before the run) and one
``conf/benchmark/<name>.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.data.adapters import load_items
from cj2.data.hub import is_hub_uri
from cj2.data.io import DataError, read_rows
from cj2.data.schema import PAIRWISE_LABELS, BestOfNItem, PairwiseItem

log = logging.getLogger(__name__)

JUDGERBENCH_REFERENCE = "gpt-4o-mini-2024-07-18"

# Keys every benchmark accepts; a spec adds its own (BenchmarkSpec.keys).
_COMMON_KEYS = ("name", "path", "limit", "gt_path", "on_error", "template", "description")
# Keys that cap or describe a run without changing any item's result (left out of the resume fingerprint).
OPERATIONAL_KEYS = ("limit", "description", "on_error")


@dataclass
class Benchmark:
    """Items of one benchmark (file order) and how to score them."""

    name: str
    kind: str  # its spec's kind: judgerbench | rewardbench | judgebench | rmb | pairwise
    items: list[PairwiseItem]
    template: str
    reference_model: str | None = None
    compat: str | None = None
    weighting: str = "official"
    stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


# loader(cfg, bench): fill ``bench.items`` (file order) and any field of ``bench`` the benchmark sets.
Loader = Callable[[dict[str, Any], Benchmark], None]
# scorer(bench, pairs, metrics, bootstrap=, seed=) -> (metrics to add, report extras): the benchmark's own
# numbers from the headline (item, row) pairs; ``metrics`` holds the common ones (accuracy, swap/...).
Scored = tuple[dict[str, float], dict[str, Any]]
Scorer = Callable[..., Scored]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything cj2 knows about one benchmark: how to read it, which config keys it takes (besides
    :data:`_COMMON_KEYS`), its scoring kind, its default template, the benchmark-specific metrics
    (``None``: the common ones only) and a check of the loaded items (``None``: none)."""

    name: str
    load: Loader
    kind: str
    template: str = "cj2_eval"
    keys: tuple[str, ...] = ()
    score: Scorer | None = None
    check: Callable[[Benchmark], None] | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {}


def register_benchmark(
    name: str,
    *,
    kind: str,
    template: str = "cj2_eval",
    keys: Sequence[str] = (),
    score: Scorer | None = None,
    check: Callable[[Benchmark], None] | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator: make the loader ``fn`` selectable as ``benchmark.name=<name>`` (with a
    ``conf/benchmark/<name>.yaml``), scored by ``score``."""

    def register(fn: Loader) -> Loader:
        BENCHMARKS[name] = BenchmarkSpec(
            name=name, load=fn, kind=kind, template=template, keys=tuple(keys), score=score, check=check
        )
        return fn

    return register


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
    unknown = sorted(set(cfg) - set(_COMMON_KEYS) - set(spec.keys))
    if unknown:
        raise ValueError(
            f"benchmark {name!r}: unknown key(s) {unknown}; expected some of "
            f"{sorted(set(_COMMON_KEYS) | set(spec.keys))}"
        )
    bench = Benchmark(name=name, kind=spec.kind, items=[], template=cfg.get("template") or spec.template)
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
# The benchmarks: each one scorer (if it has its own numbers) and one registered loader.


def _on_error(cfg: Mapping[str, Any]) -> str:
    return cfg.get("on_error") or "raise"


def _score_judgerbench(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    from cj2.evaluation.scoring import judgerbench_metrics

    jb, tables = judgerbench_metrics(
        pairs, bench.reference_model or "", bench.compat, bootstrap=bootstrap, seed=seed
    )
    return jb, {"win_tables": tables}


def _check_judgerbench(bench: Benchmark) -> None:
    bad = next((it for it in bench.items if not {"model_a", "model_b"} <= set(it.meta)), None)
    if bad is not None:
        raise ValueError(f"item {bad.id!r}: JudgerBenchV2 scoring needs meta model_a/model_b")


def _score_rewardbench(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    from cj2.evaluation.scoring import rewardbench_metrics

    return rewardbench_metrics(pairs, bench.weighting), {}


def _score_judgebench(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    # JudgeBench's score is the double-order accuracy (needs the swap pass).
    if "swap/double_order_accuracy" not in metrics:
        return {}, {}
    return {"judgebench/score": metrics["swap/double_order_accuracy"]}, {}


def _score_rmb(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
) -> Scored:
    from cj2.evaluation.scoring import rmb_metrics

    return rmb_metrics(pairs), {}


@register_benchmark(
    "embedded",
    kind="judgerbench",
    template="cj2_short",
    keys=("n_queries", "models", "scenarios", "split", "seed"),
    score=_score_judgerbench,
    check=_check_judgerbench,
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
        models=emb.models, scenarios=emb.scenarios, n_queries=emb.n_queries, gt_wins=emb.gt_wins
    )


@register_benchmark(
    "judgerbenchv2",
    kind="judgerbench",
    template="judgerbenchv2",
    keys=("compat", "reference_model"),
    score=_score_judgerbench,
    check=_check_judgerbench,
)
def _load_judgerbenchv2(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name, hub=False)
    bench.items = _pairs(load_items(path, "judgerbenchv2", on_error=_on_error(cfg), stats=bench.stats))
    bench.reference_model = cfg.get("reference_model") or JUDGERBENCH_REFERENCE
    bench.compat = cfg.get("compat")


@register_benchmark("rewardbench", kind="rewardbench", keys=("weighting",), score=_score_rewardbench)
def _load_rewardbench(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, "rewardbench", on_error=_on_error(cfg), stats=bench.stats))
    bench.weighting = cfg.get("weighting") or "official"


@register_benchmark("judgebench", kind="judgebench", score=_score_judgebench)
def _load_judgebench(cfg: dict[str, Any], bench: Benchmark) -> None:
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, "judgebench", on_error=_on_error(cfg), stats=bench.stats))


@register_benchmark("rmb", kind="rmb", score=_score_rmb)
def _load_rmb(cfg: dict[str, Any], bench: Benchmark) -> None:
    bench.items = _rmb_items(_require_path(cfg, bench.name, hub=False), _on_error(cfg), bench.stats)


@register_benchmark("pairwise", kind="pairwise", keys=("adapter", "options"))
def _load_pairwise(cfg: dict[str, Any], bench: Benchmark) -> None:
    options = dict(cfg.get("options") or {})
    adapter = cfg.get("adapter") or "pairwise"
    path = _require_path(cfg, bench.name)
    bench.items = _pairs(load_items(path, adapter, on_error=_on_error(cfg), stats=bench.stats, **options))
