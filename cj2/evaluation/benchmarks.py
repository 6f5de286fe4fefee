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

Every benchmark becomes a list of :class:`~cj2.data.schema.PairwiseItem` in the file's order (RMB
best-of-N groups become one pair per loser, ``meta["bon_group"]``). ``benchmark.gt_path`` replaces the
labels with a Mix-of-Judgers ground truth written by ``python -m cj2.moj`` (Sec. 4.2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.data.adapters import load_items
from cj2.data.io import DataError, read_rows
from cj2.data.schema import PAIRWISE_LABELS, BestOfNItem, PairwiseItem

log = logging.getLogger(__name__)

BENCHMARKS = ("embedded", "judgerbenchv2", "rewardbench", "judgebench", "rmb", "pairwise")
JUDGERBENCH_REFERENCE = "gpt-4o-mini-2024-07-18"

# benchmark -> (scoring kind, default template)
_KIND = {
    "embedded": ("judgerbench", "cj2_short"),
    "judgerbenchv2": ("judgerbench", "judgerbenchv2"),
    "rewardbench": ("rewardbench", "cj2_eval"),
    "judgebench": ("judgebench", "cj2_eval"),
    "rmb": ("rmb", "cj2_eval"),
    "pairwise": ("pairwise", "cj2_eval"),
}
_COMMON_KEYS = ("name", "path", "limit", "gt_path", "on_error", "template", "description")
_KEYS: dict[str, tuple[str, ...]] = {
    "embedded": ("n_queries", "models", "scenarios", "split", "seed"),
    "judgerbenchv2": ("compat", "reference_model"),
    "rewardbench": ("weighting",),
    "judgebench": (),
    "rmb": (),
    "pairwise": ("adapter", "options"),
}
# Keys that cap or describe a run without changing any item's result (left out of the resume fingerprint).
OPERATIONAL_KEYS = ("limit", "description", "on_error")


@dataclass
class Benchmark:
    """Items of one benchmark (file order) and how to score them."""

    name: str
    kind: str  # judgerbench | rewardbench | judgebench | rmb | pairwise
    items: list[PairwiseItem]
    template: str
    reference_model: str | None = None
    compat: str | None = None
    weighting: str = "official"
    stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


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


def _require_path(cfg: Mapping[str, Any], name: str) -> Path:
    if not cfg.get("path"):
        raise ValueError(
            f"benchmark {name!r} needs benchmark.path (where its files are); only 'embedded' is built in"
        )
    path = Path(str(cfg["path"])).expanduser()
    if not path.exists():
        raise DataError("file not found (benchmark.path)", path=path)
    return path


def _load_rmb(path: Path, on_error: str, stats: dict) -> list[PairwiseItem]:
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
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark.name={name!r}; expected one of {BENCHMARKS}")
    unknown = sorted(set(cfg) - set(_COMMON_KEYS) - set(_KEYS[name]))
    if unknown:
        raise ValueError(
            f"benchmark {name!r}: unknown key(s) {unknown}; expected some of "
            f"{sorted(set(_COMMON_KEYS) | set(_KEYS[name]))}"
        )
    kind, default_template = _KIND[name]
    on_error = cfg.get("on_error") or "raise"
    stats: dict[str, Any] = {}
    info: dict[str, Any] = {}
    bench = Benchmark(
        name=name,
        kind=kind,
        items=[],
        template=cfg.get("template") or default_template,
        stats=stats,
        info=info,
    )
    if name == "embedded":
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
        info.update(models=emb.models, scenarios=emb.scenarios, n_queries=emb.n_queries, gt_wins=emb.gt_wins)
    elif name == "judgerbenchv2":
        bench.items = _pairs(
            load_items(_require_path(cfg, name), "judgerbenchv2", on_error=on_error, stats=stats)
        )
        bench.reference_model = cfg.get("reference_model") or JUDGERBENCH_REFERENCE
        bench.compat = cfg.get("compat")
    elif name == "rewardbench":
        bench.items = _pairs(
            load_items(_require_path(cfg, name), "rewardbench", on_error=on_error, stats=stats)
        )
        bench.weighting = cfg.get("weighting") or "official"
    elif name == "judgebench":
        bench.items = _pairs(
            load_items(_require_path(cfg, name), "judgebench", on_error=on_error, stats=stats)
        )
    elif name == "rmb":
        bench.items = _load_rmb(_require_path(cfg, name), on_error, stats)
    else:
        options = dict(cfg.get("options") or {})
        adapter = cfg.get("adapter") or "pairwise"
        bench.items = _pairs(
            load_items(_require_path(cfg, name), adapter, on_error=on_error, stats=stats, **options)
        )
    if not bench.items:
        raise DataError(f"benchmark {name!r} holds no items", path=cfg.get("path"))
    if cfg.get("gt_path"):
        bench.items = apply_gt(bench.items, read_gt(cfg["gt_path"]), stats)
        if not bench.items:
            raise DataError("no benchmark item has a label in the ground-truth file", path=cfg["gt_path"])
    if kind == "judgerbench":
        bad = next((it for it in bench.items if not {"model_a", "model_b"} <= set(it.meta)), None)
        if bad is not None:
            raise ValueError(f"item {bad.id!r}: JudgerBenchV2 scoring needs meta model_a/model_b")
    return bench
