"""The curation pipeline (arXiv 2507.09104, Sec. 3.1, Fig. 1) from a plain config mapping; no Hydra here.

Stages, in order, each switched by its config section:

1. **Sources** (:mod:`cj2.curation.sources`) are read and routed by kind: reward data to RFT, judge data
   with an original judgment to rectification (without one: to RFT), general data to G-SFT. Every item and
   record is first checked against the evaluation sets (**decontamination**, :mod:`cj2.curation.hygiene`).
2. **Positions** of chosen/rejected layouts are balanced (a seeded swap of exactly half).
3. **RFT** (``rejection``): a template drawn per item, M candidates per prompt from the generator, kept iff
   the verdict matches the gold label (:mod:`cj2.curation.rejection`), sharded, resumable and cached.
4. **Synthetic** (``synthetic``): knowledge-based pointwise items judged through rejection sampling, and
   style-controlled pairs (:mod:`cj2.curation.synthetic`).
5. **Rectification** (``rectification``): outdated judgments re-judged, up-to-date ones re-wrapped in a
   drawn template (:mod:`cj2.curation.rectify`).
6. **Mixture** (``mixture``): the four components weighted and interleaved, the realised mix reported
   (:mod:`cj2.curation.mixture`).
7. **Probe** (``hf_probe``, optional): a small real-model rejection run whose pass@M is reported (the
   embedded pipeline runs SmolLM2-135M on 16 built-in prompts), kept apart from the training data.

Outputs under ``out_dir``: ``train.jsonl`` (the mixed :class:`~cj2.data.schema.TrainRecord` lines),
``preference.jsonl`` (chosen/rejected pairs for sequence DPO), one folder per rejection stage (its kept
records, pairs, zero-pass prompts and stats) and ``stats.json``. The candidate shards live in the cache
folder (``cache_dir/rejection/<key>``), whose path the stats name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.curation.hygiene import Decontaminator, balance_positions
from cj2.curation.mixture import COMPONENTS, mix
from cj2.curation.prompts import build_prompts
from cj2.curation.rejection import JudgePrompt, RejectionDraws, Selection, parse_worker
from cj2.curation.settings import RejectionSettings, default_cache_root, sampling_params
from cj2.curation.sources import SourceSpec, eval_questions, load_source, question_of_record, resolve_sources
from cj2.data.io import atomic_write_json, write_jsonl
from cj2.data.schema import PairwiseItem, PointwiseItem, PreferenceRecord, TrainRecord
from cj2.generation import LazySampler

log = logging.getLogger(__name__)


def check_simulated(prompts: Sequence[JudgePrompt], generator: Mapping[str, Any]) -> None:
    """The ``simulated`` teacher only judges built-in task items; say which source needs a real generator."""
    if generator.get("backend") != "simulated":
        return
    for p in prompts:
        meta = getattr(p.item, "meta", None) or {}
        if "check" not in meta or "truth" not in meta:
            raise ValueError(
                f"the simulated teacher only judges built-in task items; source {p.source!r} (item "
                f"{p.id!r}) needs a real generator: generator=hf|vllm|openai"
            )


def _run_rejection(
    name: str,
    prompts: list[JudgePrompt],
    sampler: Callable[[], Any],
    generator: Mapping[str, Any],
    params: Any,
    rcfg: Mapping[str, Any],
    cache: Path,
    out: Path,
    *,
    m: int,
) -> tuple[Selection, RejectionDraws]:
    check_simulated(prompts, generator)
    settings = RejectionSettings.from_config(rcfg, m=m, where=name)
    t = time.time()
    draws = settings.sample(
        prompts, sampler, params, folder_root=cache / "rejection", generator_config=generator, name=name
    )
    if draws.worker is not None:  # a worker's share: the selection is made by the merge run
        share = {"prompts": len(draws.prompts), "shards_drawn": draws.shards_drawn}
        share |= {"shards_reused": draws.shards_reused, "shards_redrawn": draws.shards_redrawn}
        share["folder"] = str(draws.folder)
        return Selection(name, m, [], [], [], {"worker": list(draws.worker), **share}), draws
    sel = settings.select(draws)
    sel.stats["cache"] = {
        "folder": str(draws.folder),
        "key": draws.key,
        "hit": draws.cache_hit,
        "shards_reused": draws.shards_reused,
        "shards_drawn": draws.shards_drawn,
        "shards_redrawn": draws.shards_redrawn,  # listed but missing or changed: drawn again
        "draws": draws.draws,
    }
    sel.stats["wall_s"] = round(time.time() - t, 2)
    sel.write(out / name)
    log.info(
        "%s: %d prompts x M=%d: pass@M %.3f, keep rate %.3f, %d records (%s)",
        name,
        len(prompts),
        m,
        sel.stats["pass_at_m"] or 0.0,
        sel.stats["keep_rate"] or 0.0,
        len(sel.records),
        "cache hit" if draws.cache_hit else f"{draws.shards_drawn} shards drawn",
    )
    return sel, draws


@dataclass
class _Settings:
    """What every stage shares: the output and cache folders, the seed, the generator (built lazily) with
    its sampling parameters, the rejection section and the templates drawn by default."""

    out: Path
    seed: int
    cache: Path
    generator: dict[str, Any]
    sampler: LazySampler
    params: Any
    rcfg: dict[str, Any]
    ties: str
    templates: list[str]
    point_templates: list[str]

    def reject(
        self, name: str, prompts: list[JudgePrompt], *, m: int, rcfg: Mapping[str, Any] | None = None
    ) -> Selection:
        """Rejection sampling of ``prompts`` as stage ``name`` with the shared generator (written under
        ``out/<name>``); returns the selection of M candidates per prompt."""
        rcfg = self.rcfg if rcfg is None else rcfg
        sel, _ = _run_rejection(
            name, prompts, self.sampler, self.generator, self.params, rcfg, self.cache, self.out, m=m
        )
        return sel


@dataclass
class _Decontamination:
    """Drops the items and records whose question overlaps the evaluation sets (no-op without an index);
    counts what it removes per source in ``per_source``."""

    decon: Decontaminator | None = None
    report: dict[str, Any] | None = None  # stats.json's "decontamination" entry, None when switched off
    per_source: dict[str, Any] = field(default_factory=dict)

    def items(self, items: list) -> list:
        """``items`` without the contaminated ones."""
        if self.decon is None:
            return items
        return self.decon.filter(
            items, question=lambda i: i.question, source=lambda i: i.source, stats=self.per_source
        )

    def records(self, records: list[TrainRecord]) -> list[TrainRecord]:
        """``records`` without the contaminated ones."""
        if self.decon is None:
            return records
        return self.decon.filter(
            records, question=question_of_record, source=lambda r: r.source, stats=self.per_source
        )


@dataclass
class _Collected:
    """The training records of each mixture component and the preference pairs, as the stages add them."""

    components: dict[str, list[TrainRecord]] = field(default_factory=lambda: {c: [] for c in COMPONENTS})
    preferences: list[PreferenceRecord] = field(default_factory=list)

    def add(self, component: str, sel: Selection) -> None:
        """A rejection stage's kept records into ``component``, its chosen/rejected pairs into
        ``preferences``."""
        self.components[component] += sel.records
        self.preferences += sel.preferences


@dataclass
class _Routed:
    """The sources' items by the stage that takes them."""

    reward_groups: list[tuple[SourceSpec, list]] = field(default_factory=list)  # -> RFT
    judge_items: list[PairwiseItem | PointwiseItem] = field(default_factory=list)  # -> rectification


def run_pipeline(
    cfg: Mapping[str, Any], out_dir: str | Path, *, cache_root: str | Path | None = None
) -> dict[str, Any]:
    """Run every enabled stage of ``cfg`` (``conf/curate.yaml``'s layout), write the outputs into
    ``out_dir`` and return the statistics (also written to ``stats.json``)."""
    from cj2.runtime import to_plain  # here: the runtime module loads torch

    cfg = to_plain(cfg)
    t0 = time.time()
    run = _settings(cfg, out_dir, cache_root)
    # the keys in stats.json's order; sources and stages are filled below
    stats: dict[str, Any] = dict(seed=run.seed, generator=run.generator.get("backend"), sources={}, stages={})
    clean = _decontamination(cfg, run.seed)
    if clean.report is not None:
        stats["decontamination"] = clean.report
    data = _Collected()
    routed = _read_sources(cfg, run.seed, clean, data, stats["sources"])
    stages = {  # in this order; each None or empty when switched off or without input
        "rft": _rft_stage(run, routed.reward_groups, data),
        "synthetic": _synthetic_stage(run, cfg.get("synthetic"), clean, data),
        "rectification": _rectification_stage(run, cfg.get("rectification"), routed.judge_items, data),
    }
    stats["stages"] = {name: s for name, s in stages.items() if s}
    worker = parse_worker(run.rcfg.get("worker"))
    if worker is not None:  # this worker's shards are drawn; the merge run writes the data and stats.json
        stats["worker"] = list(worker)
        stats["summary"] = {
            name: {
                k: st[k] for k in ("prompts", "shards_drawn", "shards_reused", "shards_redrawn") if k in st
            }
            for name, st in stats["stages"].items()
        }
        stats["wall_s"] = round(time.time() - t0, 2)
        atomic_write_json(run.out / f"worker_{worker[0]}-of-{worker[1]}.json", stats)
        return stats
    stats["mixture"], stats["files"] = _mix_and_write(cfg.get("mixture"), data, run.out, run.seed)
    hcfg = dict(cfg.get("hf_probe") or {})
    if hcfg.get("enabled", False):
        stats["hf_probe"] = _probe(
            hcfg, run.seed, run.cache, run.out, progress=bool(run.rcfg.get("progress", True))
        )
    stats["summary"] = summarize(stats)
    stats["wall_s"] = round(time.time() - t0, 2)
    atomic_write_json(run.out / "stats.json", stats)
    return stats


def _settings(cfg: Mapping[str, Any], out_dir: str | Path, cache_root: str | Path | None) -> _Settings:
    """Create ``out_dir`` and read what the stages share from ``cfg`` (the generator is not built yet);
    returns them as :class:`_Settings`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    cache = Path(cache_root or cfg.get("cache_dir") or default_cache_root())
    generator = dict(cfg.get("generator") or {"backend": "simulated"})
    sampler = LazySampler(generator)
    params = sampling_params(generator, seed)
    rcfg = dict(cfg.get("rejection") or {})
    return _Settings(
        out=out,
        seed=seed,
        cache=cache,
        generator=generator,
        sampler=sampler,
        params=params,
        rcfg=rcfg,
        ties=str(rcfg.get("ties", cfg.get("mixture", {}).get("ties", "drop"))),
        templates=list(rcfg.get("templates") or ["cj2_critical"]),
        point_templates=list(rcfg.get("pointwise_templates") or ["correctness"]),
    )


def _decontamination(cfg: Mapping[str, Any], seed: int) -> _Decontamination:
    """The n-gram index of the evaluation sets' questions (``decontamination``); returns the filter every
    item and record passes through (a pass-through when switched off or without eval sets)."""
    dcfg = dict(cfg.get("decontamination") or {})
    if not (dcfg.get("enabled", True) and dcfg.get("eval_sets")):
        return _Decontamination()
    questions, counts = eval_questions(
        resolve_sources(dcfg["eval_sets"], cfg.get("catalog") or {}), seed=seed
    )
    decon = Decontaminator(
        questions, n=int(dcfg.get("ngram", 8)), threshold=float(dcfg.get("threshold", 0.5))
    )
    clean = _Decontamination(decon)
    clean.report = {
        "eval_sets": counts,
        "n": decon.n,
        "threshold": decon.threshold,
        "per_source": clean.per_source,
    }
    return clean


def _read_sources(
    cfg: Mapping[str, Any],
    seed: int,
    clean: _Decontamination,
    data: _Collected,
    source_stats: dict[str, Any],
) -> _Routed:
    """Load every source, decontaminate it and route it by kind: general records straight into ``data``,
    judge items with an original judgment to rectification, the other items (positions balanced) to RFT.
    Fills ``source_stats`` per source; returns the routed items."""
    routed = _Routed()
    for spec in resolve_sources(cfg.get("sources") or [], cfg.get("catalog") or {}):
        loaded = load_source(spec, seed=seed)
        entry = source_stats[spec.name] = {"type": spec.type, "kind": spec.kind, **loaded.stats}
        if loaded.skipped_reason:
            entry["skipped"] = loaded.skipped_reason
            continue
        items, records = clean.items(loaded.items), clean.records(loaded.records)
        if spec.kind == "general":
            data.components["general"] += records
            continue
        if spec.kind == "judge":
            with_judgment = [i for i in items if i.judgment and i.judgment.strip()]
            routed.judge_items += with_judgment
            items = [i for i in items if not (i.judgment and i.judgment.strip())]
            entry["with_judgment"] = len(with_judgment)
        if items:
            items, entry["positions"] = balance_positions(items, seed=seed, force=bool(spec.position_fixed))
            routed.reward_groups.append((spec, items))
    return routed


def _rft_stage(
    run: _Settings, reward_groups: list[tuple[SourceSpec, list]], data: _Collected
) -> dict[str, Any] | None:
    """RFT on reward data (``rejection``): prompts in templates drawn per item, rejection sampled, kept
    records into the ``rft`` component; returns the stage's stats, or None when off or without data."""
    if not (run.rcfg.get("enabled", True) and reward_groups):
        return None
    pstats: dict[str, Any] = {}
    prompts = [
        p
        for spec, items in reward_groups
        for p in build_prompts(
            items,
            spec.templates or run.templates,
            seed=run.seed,
            ties=run.ties,
            pointwise_templates=spec.templates or run.point_templates,
            stats=pstats,
        )
    ]
    sel = run.reject("rft", prompts, m=int(run.rcfg.get("m", 8)))
    sel.stats["prompt_building"] = pstats
    data.add("rft", sel)
    return sel.stats


def _synthetic_stage(
    run: _Settings, scfg: Mapping[str, Any] | None, clean: _Decontamination, data: _Collected
) -> dict[str, Any]:
    """Synthetic data (``synthetic``): knowledge and style prompts judged through one rejection run, kept
    records into the ``synthetic`` component; returns the stage's stats (empty when nothing is on)."""
    scfg = dict(scfg or {})
    prompts: list[JudgePrompt] = []
    stats: dict[str, Any] = {}
    kcfg = dict(scfg.get("knowledge") or {})
    if kcfg.get("enabled", False):
        knowledge, stats["knowledge"] = _knowledge_prompts(run, kcfg, clean)
        prompts += knowledge
    stcfg = dict(scfg.get("style") or {})
    if stcfg.get("enabled", False):
        style, stats["style"] = _style_prompts(run, stcfg, clean, data)
        prompts += style
    if prompts:
        sel = run.reject("synthetic", prompts, m=int(scfg.get("m", run.rcfg.get("m", 8))))
        stats["rejection"] = sel.stats
        data.add("synthetic", sel)
    return stats


def _knowledge_prompts(
    run: _Settings, kcfg: Mapping[str, Any], clean: _Decontamination
) -> tuple[list[JudgePrompt], dict[str, Any]]:
    """Knowledge-based pointwise items (built-in questions answered by simulated responders of set
    accuracies), decontaminated; returns their judge prompts and stats."""
    from cj2.curation.synthetic import knowledge_items
    from cj2.data.tasks import generate_items

    base = generate_items(
        int(kcfg.get("n", 32)),
        split=str(kcfg.get("split", "train")),
        seed=run.seed + int(kcfg.get("seed_offset", 1)),
    )
    items = clean.items(
        knowledge_items(
            base,
            kcfg.get("responders") or {"strong": 0.9, "average": 0.6, "weak": 0.3},
            seed=run.seed,
            source=str(kcfg.get("source", "synthetic_knowledge")),
        )
    )
    stats: dict[str, Any] = {
        "questions": len(base),
        "items": len(items),
        "correct_responses": sum(bool(i.correct) for i in items),
    }
    templates = kcfg.get("templates") or run.point_templates
    prompts = build_prompts(items, [], seed=run.seed, pointwise_templates=templates, stats=stats)
    return prompts, stats


def _style_prompts(
    run: _Settings, stcfg: Mapping[str, Any], clean: _Decontamination, data: _Collected
) -> tuple[list[JudgePrompt], dict[str, Any]]:
    """Style-controlled pairs, decontaminated. The simulated teacher cannot judge style, so with it the
    pairs become records programmatically (straight into ``data``) and no prompts; returns the prompts for
    the generator and the stats."""
    style_templates = list(stcfg.get("templates") or run.templates)
    items, stats = _style_items(stcfg, run.sampler, run.generator, run.seed)
    items = clean.items(items)
    stats["items_after_decontamination"] = len(items)
    if run.generator.get("backend") == "simulated":
        from cj2.curation.synthetic import style_records

        records, rs = style_records(items, style_templates, seed=run.seed)
        data.components["synthetic"] += records
        stats.update(rs, judged_by="programmatic (simulated teacher cannot judge style)")
        return [], stats
    prompts = build_prompts(items, style_templates, seed=run.seed, ties=run.ties, stats=stats)
    stats["judged_by"] = "generator (rejection sampling)"
    return prompts, stats


def _rectification_stage(
    run: _Settings,
    xcfg: Mapping[str, Any] | None,
    judge_items: list[PairwiseItem | PointwiseItem],
    data: _Collected,
) -> dict[str, Any] | None:
    """Rectification of public judge data (``rectification``): split at the cutoff date, outdated
    judgments re-judged, up-to-date ones re-wrapped (or re-judged too, ``up_to_date=rejudge``), records into
    the ``public_judge`` component; returns the stage's stats, or None when off or without judge data."""
    xcfg = dict(xcfg or {})
    if not (xcfg.get("enabled", True) and judge_items):
        return None
    from cj2.curation.rectify import DEFAULT_CUTOFF, split_by_date

    policy = str(xcfg.get("up_to_date", "rewrap"))
    if policy not in ("rewrap", "rejudge"):
        raise ValueError(f"rectification.up_to_date={policy!r}; expected 'rewrap' or 'rejudge'")
    outdated, recent = split_by_date(
        judge_items, str(xcfg.get("cutoff", DEFAULT_CUTOFF)), undated=str(xcfg.get("undated", "outdated"))
    )
    stats: dict[str, Any] = {
        "cutoff": str(xcfg.get("cutoff", DEFAULT_CUTOFF)),
        "outdated": len(outdated),
        "up_to_date": len(recent),
        "up_to_date_policy": policy,
    }
    if policy == "rejudge":
        outdated, recent = outdated + recent, []
    if outdated:
        stats["rejudged"] = _rejudge(run, xcfg, outdated, data)
    if recent:
        stats["rewrapped"] = _rewrap(run, xcfg, recent, data)
    return stats


def _rejudge(
    run: _Settings, xcfg: Mapping[str, Any], items: list[PairwiseItem | PointwiseItem], data: _Collected
) -> dict[str, Any]:
    """Judge ``items`` afresh by rejection sampling (``rectification.m`` candidates, one by default), kept
    records into ``public_judge``; returns the rejection stats."""
    pstats: dict[str, Any] = {}
    prompts = build_prompts(
        items,
        list(xcfg.get("templates") or run.templates),
        seed=run.seed,
        ties=run.ties,
        pointwise_templates=run.point_templates,
        stats=pstats,
    )
    sel = run.reject("rectify", prompts, m=int(xcfg.get("m", 1)), rcfg={**run.rcfg, **xcfg, "draws": None})
    sel.stats["prompt_building"] = pstats
    data.add("public_judge", sel)
    return sel.stats


def _rewrap(
    run: _Settings, xcfg: Mapping[str, Any], items: list[PairwiseItem | PointwiseItem], data: _Collected
) -> dict[str, Any]:
    """Keep ``items``' up-to-date judgments, re-wrapped in a drawn template, as ``public_judge`` records;
    returns the re-wrap stats."""
    from cj2.curation.rectify import rewrap_items

    templates = list(
        xcfg.get("rewrap_templates") or ["cj2_eval", "mtbench_pair", "arena_hard", "judgerbenchv2"]
    )
    records, stats = rewrap_items(items, templates, seed=run.seed, ties=run.ties)
    data.components["public_judge"] += records
    return stats


def _mix_and_write(
    mcfg: Mapping[str, Any] | None, data: _Collected, out: Path, seed: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """Weight and interleave the components (``mixture``), write ``train.jsonl`` and ``preference.jsonl``;
    returns the realised mix's report and the two files' paths."""
    mcfg = dict(mcfg or {})
    weights = {c: 1.0 for c in COMPONENTS} | dict(mcfg.get("weights") or {})
    mixed, report = mix(data.components, weights, seed=seed)
    files = {"train": str(out / "train.jsonl"), "preference": str(out / "preference.jsonl")}
    write_jsonl(out / "train.jsonl", (r.to_json() for r in mixed))
    write_jsonl(out / "preference.jsonl", (p.to_json() for p in data.preferences))
    return report, files


def _style_items(
    stcfg: Mapping[str, Any], sampler: LazySampler, generator: Mapping[str, Any], seed: int
) -> tuple[list[PairwiseItem], dict[str, Any]]:
    """The style-controlled pairs: built-in ones with the simulated teacher, else answers the generator
    writes in contrasting styles to MT-Bench (or built-in) questions; returns the pairs and their stats."""
    from cj2.curation.synthetic import builtin_style_items, generated_style_items, load_mtbench
    from cj2.data.tasks import generate_items

    source = str(stcfg.get("source", "synthetic_style"))
    n = int(stcfg.get("n", 32))
    if generator.get("backend") == "simulated":
        base = generate_items(
            n, split=str(stcfg.get("split", "train")), seed=seed + int(stcfg.get("seed_offset", 2))
        )
        return builtin_style_items(base, seed=seed, source=source), {
            "questions": "builtin",
            "pairs": len(base),
        }
    questions: list[tuple[str, str, str]] = []
    mt = load_mtbench() if stcfg.get("mtbench", True) else None
    if mt is not None:
        questions = [(f"mtbench/{q['question_id']}", q["turns"][0], q["category"]) for q in mt.questions][:n]
    else:
        base = generate_items(n, split="train", seed=seed + int(stcfg.get("seed_offset", 2)))
        questions = [(i.id, i.question, i.domain) for i in base]
    params = sampling_params({"sampling": stcfg.get("sampling") or generator.get("sampling") or {}}, seed)
    items, st = generated_style_items(questions, sampler(), params, seed=seed, source=source)
    st["questions_from"] = "mtbench" if mt is not None else "builtin"
    return items, st


def _probe(
    hcfg: Mapping[str, Any], seed: int, cache: Path, out: Path, *, progress: bool = True
) -> dict[str, Any]:
    """A small real-model rejection run on built-in prompts; its pass@M is reported, its data kept apart."""
    from cj2.data.tasks import generate_items

    generator = dict(hcfg.get("generator") or {"backend": "hf"})
    items = generate_items(int(hcfg.get("n_prompts", 16)), split="train", seed=seed)
    prompts = build_prompts(items, [str(hcfg.get("template", "cj2_short"))], seed=seed)
    params = sampling_params(generator, seed)
    t = time.time()
    threads = hcfg.get("threads")
    if threads:
        # On a CPU shared with other jobs, OpenMP threads waiting on each other can make generation many
        # times slower; one thread per process is then the faster choice.
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
    try:
        sel, _ = _run_rejection(
            "hf_probe",
            prompts,
            LazySampler(generator),
            generator,
            params,
            {"shard_size": hcfg.get("shard_size", 8), "stop_on_verdict": True, "progress": progress},
            cache,
            out,
            m=int(hcfg.get("m", 4)),
        )
    finally:
        if threads:
            torch.set_num_threads(before)
    sel.stats["model"] = generator.get("name_or_path")
    sel.stats["max_new_tokens"] = params.max_new_tokens
    sel.stats["wall_s"] = round(time.time() - t, 2)
    return sel.stats


def summarize(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers, flat (``stage/metric``): what the entry logs to wandb and prints."""
    out: dict[str, Any] = {}

    def take(prefix: str, s: Mapping[str, Any] | None) -> None:
        if not s:
            return
        for key in (
            "prompts",
            "M",
            "kept",
            "keep_rate",
            "pass_at_m",
            "parse_rate",
            "reward_mean",
            "zero_pass",
            "spurious_share",
            "draws_saved",
            "preference_pairs",
        ):
            if s.get(key) is not None:
                out[f"{prefix}/{key}"] = s[key]
        if s.get("flawed"):
            out[f"{prefix}/kept_flawed_rate"] = s["flawed"]["kept_flawed_rate"]

    stages = stats.get("stages", {})
    take("rft", stages.get("rft"))
    take("synthetic", (stages.get("synthetic") or {}).get("rejection"))
    take("rectify", (stages.get("rectification") or {}).get("rejudged"))
    take("hf_probe", stats.get("hf_probe"))
    mixture = stats.get("mixture") or {}
    out["mixture/total"] = mixture.get("total", 0)
    for name, entry in (mixture.get("components") or {}).items():
        out[f"mixture/{name}_share"] = entry["share"]
    removed = sum(
        e["removed"] for e in ((stats.get("decontamination") or {}).get("per_source") or {}).values()
    )
    out["decontamination/removed"] = removed
    return out
