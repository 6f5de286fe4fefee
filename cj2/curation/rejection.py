"""Rejection sampling with a verifiable reward: M candidate judgments per prompt, keep those that match.

CompassJudger-2 turns public reward data (a gold label, no critique) into judge training data by letting a
generator write several judgments per item and keeping the ones whose final verdict equals the gold label
(arXiv 2507.09104, Sec. 3.1 "RFT data", Sec. 3.2 Eqs. 3/11; 8 candidates per item, Sec. 5.1). This module
does that, in three layers:

* :func:`filter_candidates` (pure): the verdict of each candidate read with :func:`cj2.verdict.parse_verdict`,
  the reward ``1`` iff it equals the gold verdict, and a *status* per candidate, checked in this order:
  ``truncated`` (the generator hit ``max_new_tokens``), ``unparseable`` (no unambiguous final verdict),
  ``duplicate`` (the same text, whitespace aside, as an earlier usable candidate of the prompt), ``wrong``
  (reward 0), ``pass`` (reward 1) and, checked after ``pass``, ``spurious``: the verdict is right but the
  reasons are not (the stated truth or a quoted answer is wrong, :mod:`cj2.evaluation.faithfulness`; only
  for prompts whose item has a computed truth). Every status depends only on the candidate and the ones
  before it, so the statuses of the first M of 8 draws are those an M-draw run would give (nested subsets).
  ``filter="outcome"`` (the paper's, default) keeps ``pass`` and ``spurious`` candidates, ``"faithful"``
  only ``pass``.
* :func:`rejection_sample` (I/O): draws the candidates of every prompt, shard by shard, into a folder named
  by a key hashed from the prompts, the generator config (secrets and throughput knobs left out), the
  sampling parameters (the seed among them) and the number of draws. Each shard of ``shard_size`` prompts
  is written atomically, then the manifest that lists it; a rerun after a kill skips the listed shards and
  regenerates the rest, and a finished folder is a cache hit that loads without building a generator.
  With per-sample seeds (every cj2 backend; exact for ``simulated`` and ``scripted``) the merged draws of an
  interrupted run equal an uninterrupted one.
  ``adaptive`` (:class:`Adaptive`) draws one candidate per prompt at a time and stops drawing for a prompt
  once ``max_keep`` candidates pass the filter or after ``max_failures`` straight failures; the draws not
  made are counted (``draws_saved``). Its candidates are seeded per draw (``<prompt id>|draw<j>``), so they
  are not the first draws of a non-adaptive run: nested subsets hold where adaptive drawing is off.
* :meth:`RejectionDraws.select` (pure): the first ``m`` draws of each prompt, at most ``max_keep`` passing
  candidates kept, as :class:`~cj2.data.schema.TrainRecord` objects (optionally weighted ``1/kept`` per
  prompt), chosen/rejected :class:`~cj2.data.schema.PreferenceRecord` pairs (a passing candidate against a
  wrong one, for sequence DPO), the prompts with no passing candidate (recorded, never silently lost) and
  the statistics (pass@M histogram, keep rate, parse rate, per source, flawed checks among the kept).

The shard rows carry ``prompt_id, sample_idx, seed, response, parsed_verdict, gold_verdict, reward,
finish_reason`` plus ``status``, ``n_tokens``, ``format``, ``source``, ``template``, the prompt ``messages``
(what training needs) and the sample's ``meta`` (the simulated teacher's ``flawed`` flag).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, atomic_write_json, read_rows, write_jsonl
from cj2.data.schema import Message, PreferenceRecord, TrainRecord
from cj2.generation import Lazy
from cj2.progress import progress_bar
from cj2.testing import kill_point
from cj2.verdict import labels_for, parse_verdict

log = logging.getLogger(__name__)

STATUSES = ("pass", "spurious", "wrong", "unparseable", "truncated", "duplicate")
"""Candidate statuses; ``pass`` is kept, ``spurious`` too under the ``outcome`` filter."""

FILTERS = {"outcome": frozenset({"pass", "spurious"}), "faithful": frozenset({"pass"})}
"""``data.rejection.filter`` -> the statuses it keeps: ``outcome`` (the verdict matches the gold label, arXiv
2507.09104 Eq. 6) or ``faithful`` (and its stated reasons are right)."""

CACHE_VERSION = 2  # 2: the spurious status
# Generator config keys that change how fast samples come, not which samples: left out of the cache key so
# that a resumed run may use another batch size or concurrency.
_THROUGHPUT_KEYS = frozenset(
    {
        "batch_size",
        "max_concurrency",
        "timeout_s",
        "max_retries",
        "backoff_s",
        "backoff_max_s",
        "device",
        "verdict_check_every",
        "description",
        "name",
    }
)


@dataclass
class JudgePrompt:
    """One prompt of a rejection-sampling run: the judge prompt, the gold verdict and where it came from.

    ``item`` is the schema item the prompt was rendered from (the ``simulated`` teacher reads it) and
    ``template`` the template's name; ``meta`` is copied into the training records.
    """

    id: str
    messages: list[Message]
    gold: str
    format: str
    source: str = ""
    template: str | None = None
    item: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gold not in labels_for(self.format):
            raise ValueError(
                f"prompt {self.id!r}: gold verdict {self.gold!r} is not a label of format "
                f"{self.format!r} {labels_for(self.format)}"
            )


@dataclass(frozen=True)
class Candidate:
    """The filter's reading of one candidate: parsed verdict, reward and status."""

    parsed: str | None
    reward: int
    status: str


@dataclass(frozen=True)
class Adaptive:
    """Adaptive drawing (module docstring): stop drawing for a prompt once ``max_keep`` candidates pass
    ``filter``, or after ``max_failures`` straight candidates that do not (``None``: no such stop)."""

    max_keep: int | None = None
    max_failures: int | None = None
    filter: str = "outcome"

    def __post_init__(self) -> None:
        kept_statuses(self.filter)
        for name in ("max_keep", "max_failures"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or int(v) < 1):
                raise ValueError(f"rejection.adaptive.{name}={v!r}: expected an integer >= 1 or null")
        if self.max_keep is None and self.max_failures is None:
            raise ValueError(
                "rejection.adaptive needs max_keep or max_failures (else it draws every candidate)"
            )

    def done(self, statuses: Sequence[str]) -> bool:
        """Whether a prompt whose candidates so far have ``statuses`` needs no more draws."""
        kept = kept_statuses(self.filter)
        if self.max_keep is not None and sum(st in kept for st in statuses) >= self.max_keep:
            return True
        if self.max_failures is not None and len(statuses) >= self.max_failures:
            return not any(st in kept for st in statuses[-self.max_failures :])
        return False


def _dedup_key(text: str) -> str:
    return " ".join(text.split())


def kept_statuses(filter: str) -> frozenset[str]:
    """The statuses ``filter`` keeps (:data:`FILTERS`); an unknown one is an error naming the known ones."""
    if filter not in FILTERS:
        raise ValueError(f"rejection filter={filter!r}; expected one of {sorted(FILTERS)}")
    return FILTERS[filter]


def filter_candidates(
    samples: Sequence[tuple[str, str]], gold: str, format: str, item: Any = None
) -> list[Candidate]:
    """Read candidates ``(text, finish_reason)`` of one prompt, in sample order (module docstring).

    ``reward`` is 1 iff the parsed verdict equals ``gold`` (arXiv 2507.09104, Eq. 6), whatever the status. A
    duplicate is a text equal, whitespace aside, to an earlier candidate that was neither truncated nor
    unparseable; the first occurrence keeps its own status. ``item``: the item as the prompt shows it; where
    it carries a computed truth, a passing candidate whose stated reasons are wrong is ``spurious``.
    """
    from cj2.evaluation.faithfulness import check_judgment

    seen: set[str] = set()
    out = []
    for text, finish in samples:
        parsed = parse_verdict(text, format)
        reward = int(parsed is not None and parsed == gold)
        if finish == "length":
            status = "truncated"
        elif parsed is None:
            status = "unparseable"
        else:
            key = _dedup_key(text)
            if key in seen:
                status = "duplicate"
            else:
                seen.add(key)
                status = "pass" if reward else "wrong"
                if reward and item is not None:
                    check = check_judgment(text, item, verdict=parsed)
                    if check is not None and check.spurious:
                        status = "spurious"
        out.append(Candidate(parsed, reward, status))
    return out


# --------------------------------------------------------------------------------------------------------
# Cache key


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return repr(obj)


def generator_fingerprint(generator_config: Mapping[str, Any]) -> dict[str, Any]:
    """The generator config as it enters the cache key: secrets and throughput knobs removed.

    API keys are never in a cj2 config (they come from the environment variable ``api_key_env`` names),
    but a secret-looking key is dropped anyway, so no secret can reach a key, a manifest or a log.
    """
    from cj2.runtime import SECRET_KEY_RE

    def clean(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return {
                k: clean(v)
                for k, v in obj.items()
                if not (isinstance(k, str) and (SECRET_KEY_RE.search(k) or k in _THROUGHPUT_KEYS))
            }
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    return clean(dict(generator_config))


def prompts_digest(prompts: Sequence[JudgePrompt]) -> str:
    """A hash of everything about the prompts that can change a candidate or its reward."""
    h = hashlib.sha256()
    for p in prompts:
        item = dataclasses.asdict(p.item) if dataclasses.is_dataclass(p.item) else p.item
        h.update(_canonical([p.id, p.messages, p.gold, p.format, p.template, p.source, item]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def cache_key(
    prompts: Sequence[JudgePrompt],
    generator_config: Mapping[str, Any],
    params: Any,
    draws: int,
    stop_on_verdict: bool,
    adaptive: Adaptive | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(key, material)``: the hash naming a run's folder and what went into it (saved in the manifest)."""
    material = {
        "version": CACHE_VERSION,
        "inputs": prompts_digest(prompts),
        "n_prompts": len(prompts),
        "generator": generator_fingerprint(generator_config),
        "sampling": dataclasses.asdict(params),
        "seed": params.seed,
        "draws": int(draws),
        "stop_on_verdict": bool(stop_on_verdict),
    }
    if adaptive is not None:
        material["adaptive"] = dataclasses.asdict(adaptive)
    return hashlib.sha256(_canonical(material).encode("utf-8")).hexdigest()[:24], material


# --------------------------------------------------------------------------------------------------------
# Drawing, sharded and resumable


def candidate_rows(prompt: JudgePrompt, samples: Sequence[Any]) -> list[dict[str, Any]]:
    """The shard rows of one prompt's candidates (``samples``: :class:`~cj2.generation.Sample` objects)."""
    verdicts = filter_candidates(
        [(s.text, s.finish_reason) for s in samples], prompt.gold, prompt.format, prompt.item
    )
    rows = []
    for j, (s, c) in enumerate(zip(samples, verdicts)):
        if s.sample_index != j:
            raise ValueError(f"prompt {prompt.id!r}: sample {j} came back with sample_index {s.sample_index}")
        rows.append(
            {
                "prompt_id": prompt.id,
                "sample_idx": j,
                "seed": int(s.seed),
                "response": s.text,
                "parsed_verdict": c.parsed,
                "gold_verdict": prompt.gold,
                "reward": c.reward,
                "finish_reason": s.finish_reason,
                "status": c.status,
                "n_tokens": int(s.n_tokens),
                "format": prompt.format,
                "source": prompt.source,
                "template": prompt.template,
                "messages": prompt.messages,
                "meta": dict(getattr(s, "meta", {}) or {}),
            }
        )
    return rows


def _generate_by_format(
    sampler: Any,
    prompts: Sequence[JudgePrompt],
    idxs: Sequence[int],
    n: int,
    params: Any,
    stop_on_verdict: bool,
    key: Callable[[JudgePrompt], Any],
) -> dict[int, list[Any]]:
    """``n`` samples of each prompt ``prompts[i]`` for ``i`` in ``idxs``: one generate call per verdict format
    (stop_on_verdict takes one format per call), keyed by ``key(prompt)``; a sampler that returns other
    counts is an error naming it."""
    groups: dict[str, list[int]] = {}
    for i in idxs:
        groups.setdefault(prompts[i].format, []).append(i)
    got: dict[int, list[Any]] = {}
    for fmt, group in groups.items():
        call_params = dataclasses.replace(params, stop_on_verdict=fmt if stop_on_verdict else None)
        kwargs: dict[str, Any] = {}
        if getattr(sampler, "needs_items", False):
            kwargs["items"] = [prompts[i].item for i in group]
            kwargs["templates"] = [prompts[i].template for i in group]
        out = sampler.generate(
            [prompts[i].messages for i in group],
            n,
            call_params,
            keys=[key(prompts[i]) for i in group],
            **kwargs,
        )
        if len(out) != len(group):
            raise ValueError(
                f"sampler {sampler!r} returned {len(out)} prompts' samples for {len(group)} prompts"
            )
        for i, samples in zip(group, out):
            if len(samples) != n:
                raise ValueError(
                    f"sampler {sampler!r} returned {len(samples)} samples for prompt "
                    f"{prompts[i].id!r}, {n} were asked for"
                )
            got[i] = samples
    return got


def _draw_shard(
    sampler: Any,
    prompts: Sequence[JudgePrompt],
    draws: int,
    params: Any,
    stop_on_verdict: bool,
    on_prompts: Callable[[int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Draw ``draws`` candidates for each prompt. Seeds are keyed by prompt id, so grouping the calls by
    format does not change samples. ``on_prompts(n)`` is called once with the number of prompts drawn for."""
    got = _generate_by_format(
        sampler, prompts, range(len(prompts)), draws, params, stop_on_verdict, lambda p: p.id
    )
    if on_prompts is not None:
        on_prompts(len(prompts))
    return [row for i in range(len(prompts)) for row in candidate_rows(prompts[i], got[i])]


def _draw_shard_adaptive(
    sampler: Any,
    prompts: Sequence[JudgePrompt],
    draws: int,
    params: Any,
    stop_on_verdict: bool,
    adaptive: Adaptive,
    on_prompts: Callable[[int], Any] | None = None,
) -> list[dict[str, Any]]:
    """As :func:`_draw_shard`, one candidate per active prompt per round of calls (batched over the prompts),
    each prompt's drawing stopped by ``adaptive``; at most ``draws`` candidates per prompt. Candidate ``j``
    of prompt ``p`` is seeded by the key ``<p.id>|draw<j>``, so it does not depend on the other prompts."""
    samples: dict[int, list[Any]] = {i: [] for i in range(len(prompts))}
    active = list(range(len(prompts)))
    for j in range(draws):
        if not active:
            break
        got = _generate_by_format(
            sampler, prompts, active, 1, params, stop_on_verdict, lambda p, j=j: f"{p.id}|draw{j}"
        )
        for i in active:
            samples[i].append(dataclasses.replace(got[i][0], sample_index=j))
        still = []
        for i in active:
            p = prompts[i]
            cands = filter_candidates(
                [(x.text, x.finish_reason) for x in samples[i]], p.gold, p.format, p.item
            )
            if not adaptive.done([c.status for c in cands]):
                still.append(i)
        if on_prompts is not None:
            on_prompts(len(active) - len(still))
        active = still
    if on_prompts is not None and active:
        on_prompts(len(active))
    return [row for i in range(len(prompts)) for row in candidate_rows(prompts[i], samples[i])]


def _draw(
    sampler: Any,
    prompts: Sequence[JudgePrompt],
    draws: int,
    params: Any,
    stop_on_verdict: bool,
    adaptive: Adaptive | None,
    on_prompts: Callable[[int], Any] | None,
) -> list[dict[str, Any]]:
    if adaptive is None:
        return _draw_shard(sampler, prompts, draws, params, stop_on_verdict, on_prompts)
    return _draw_shard_adaptive(sampler, prompts, draws, params, stop_on_verdict, adaptive, on_prompts)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shard_file(index: int) -> str:
    return f"shards/{index:05d}.jsonl"


def _load_shard(
    folder: Path,
    entry: Mapping[str, Any],
    prompts: Sequence[JudgePrompt],
    draws: int,
    adaptive: bool = False,
    redrawn: list[str] | None = None,
) -> list[dict[str, Any]] | None:
    """A listed shard's rows, or None when its file is missing or does not match the manifest (then it is
    drawn again and counted in ``redrawn``; a changed file is first moved aside to
    ``<file>.changed[-n]``, never overwritten: it may hold candidates that cost API calls, or someone's
    edit)."""
    path = folder / entry["file"]
    redrawn = [] if redrawn is None else redrawn
    if not path.exists():
        log.warning("rejection shard %s is listed in the manifest but missing; drawing it again", path)
        redrawn.append(f"{entry['file']}: missing")
        return None
    if _sha256(path) != entry.get("sha256"):
        aside, n = path.with_name(path.name + ".changed"), 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.changed-{n}")
        os.replace(path, aside)
        log.warning(
            "rejection shard %s does not match its manifest entry (changed since it was listed): moved aside "
            "to %s and drawn again",
            path,
            aside.name,
        )
        redrawn.append(f"{entry['file']}: changed (kept as {aside.name})")
        return None
    rows = [row for _, row in read_rows(path)]
    expected = [(p.id, j) for p in prompts for j in range(draws)]
    got = [(r.get("prompt_id"), r.get("sample_idx")) for r in rows]
    if adaptive:  # each prompt's first n candidates, 1 <= n <= draws
        counts = Counter(pid for pid, _ in got)
        expected = [(p.id, j) for p in prompts for j in range(min(counts.get(p.id, 0), draws))]
        if any(counts.get(p.id, 0) < 1 for p in prompts):
            expected = []
    if got != expected:
        raise DataError(
            f"shard holds other prompts or samples than its manifest entry ({len(rows)} rows, "
            f"{len(expected)} expected); delete the folder to redraw",
            path=path,
        )
    return rows


Worker = tuple[int, int]  # (index, count): this process draws the shards whose index % count == index


def parse_worker(spec: Any, env: Mapping[str, str] | None = None) -> Worker | None:
    """The share of the shards this process draws, from ``rejection.worker``: ``None`` (all of them),
    ``"i/N"`` (worker ``i`` of ``N``, counted from 0), ``"slurm"`` (a SLURM job array: the task's index
    among ``SLURM_ARRAY_TASK_MIN..MAX``, as many workers as the array has tasks) or ``"rank"`` (a
    data-parallel launch: ``RANK`` of ``WORLD_SIZE``)."""
    import os

    env = os.environ if env is None else env
    if spec in (None, "", "null", "None"):
        return None
    text = str(spec).strip()
    if text == "slurm":
        try:
            task, lo = int(env["SLURM_ARRAY_TASK_ID"]), int(env.get("SLURM_ARRAY_TASK_MIN", 0))
            count = int(env.get("SLURM_ARRAY_TASK_COUNT") or int(env["SLURM_ARRAY_TASK_MAX"]) - lo + 1)
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"rejection.worker=slurm outside a SLURM job array (missing or bad {err}); use i/N"
            ) from None
        index = task - lo
    elif text == "rank":
        try:
            index, count = int(env["RANK"]), int(env["WORLD_SIZE"])
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"rejection.worker=rank without RANK/WORLD_SIZE (missing or bad {err})"
            ) from None
    else:
        head, sep, tail = text.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"rejection.worker={spec!r}: expected 'i/N' (e.g. 0/4), 'slurm' or 'rank'")
        index, count = int(head), int(tail)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"rejection.worker={spec!r}: worker {index} of {count} does not exist")
    return index, count


def _worker_manifest(folder: Path, worker: Worker) -> Path:
    return folder / "workers" / f"{worker[0]:04d}-of-{worker[1]:04d}.json"


def _listed_elsewhere(folder: Path) -> dict[str, dict[str, Any]]:
    """Shard entries listed by the workers' manifests (``workers/*.json``), by shard index."""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / "workers").glob("*.json")):
        try:
            listed = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("%s: unreadable worker manifest, ignored (its shards are drawn again)", path)
            continue
        entries.update(listed.get("shards", {}))
    return entries


def _check_inputs(prompts: Sequence[JudgePrompt], draws: int, shard_size: int) -> None:
    if draws < 1:
        raise ValueError(f"draws={draws}: expected >= 1 candidates per prompt")
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size}: expected >= 1 prompts per shard")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"prompt ids must be distinct (they key the per-sample seeds); {dup!r} repeats")


def _open_manifest(path: Path, key: str, shard_size: int, fresh: dict[str, Any]) -> dict[str, Any]:
    """The manifest at ``path`` when it belongs to this configuration, else ``fresh`` (a new one)."""
    if path.exists():
        manifest = json.loads(path.read_text())
        if manifest.get("key") == key and manifest.get("shard_size") == shard_size:
            return manifest
        log.warning("%s: manifest of another configuration; starting over", path)
    return fresh


def _write_and_list(
    folder: Path,
    index: int,
    n_prompts: int,
    shard_rows: list[dict[str, Any]],
    manifest_path: Path,
    manifest: dict,
) -> None:
    """Write shard ``index`` atomically, then list it in ``manifest`` (it counts only once listed)."""
    path = folder / _shard_file(index)
    write_jsonl(path, shard_rows)  # atomic: a kill leaves the old file or none
    kill_point("rejection.shard_written")  # test-only (CJ2_TEST_KILL_AT): written, not listed
    manifest["shards"][str(index)] = {
        "file": _shard_file(index),
        "prompts": n_prompts,
        "rows": len(shard_rows),
        "sha256": _sha256(path),
    }
    atomic_write_json(manifest_path, manifest)
    kill_point("rejection.shard_listed")  # test-only: written and listed


@dataclass
class RejectionDraws:
    """Every candidate drawn for every prompt, in prompt order (``rows[prompt_id]``: ``draws`` rows)."""

    name: str
    folder: Path
    key: str
    draws: int
    prompts: list[JudgePrompt]
    rows: dict[str, list[dict[str, Any]]]
    cache_hit: bool = False
    shards_reused: int = 0
    shards_drawn: int = 0
    # listed shards whose file was missing or changed ("<file>: missing" / "<file>: changed (kept as ...)"),
    # drawn again (among shards_drawn)
    shards_redrawn: list[str] = field(default_factory=list)
    worker: Worker | None = None  # set: only this worker's share of the shards is in ``rows``
    adaptive: bool = False  # drawn adaptively: a prompt may hold fewer than ``draws`` rows

    def select(
        self,
        m: int | None = None,
        *,
        max_keep: int | None = None,
        weight: str = "uniform",
        filter: str = "outcome",
        drop_all_pass: bool = False,
    ) -> Selection:
        """The training data of the first ``m`` draws of each prompt (default: all draws)."""
        return select(
            self.name,
            self.prompts,
            self.rows,
            self.draws if m is None else m,
            max_keep=max_keep,
            weight=weight,
            filter=filter,
            drop_all_pass=drop_all_pass,
            adaptive=self.adaptive,
        )


def rejection_sample(
    prompts: Sequence[JudgePrompt],
    sampler: Any | Callable[[], Any],
    params: Any,
    *,
    draws: int,
    folder_root: str | Path,
    generator_config: Mapping[str, Any],
    shard_size: int = 64,
    stop_on_verdict: bool = True,
    name: str = "rft",
    progress: bool = True,
    worker: Worker | None = None,
    adaptive: Adaptive | None = None,
) -> RejectionDraws:
    """Draw ``draws`` candidates per prompt, resumably, into ``folder_root/<key>`` (module docstring).

    ``sampler`` is a sampler or a zero-argument factory, called only when something must be drawn (a cache
    hit never loads a model). ``params`` is a :class:`~cj2.generation.SamplingParams`; with
    ``stop_on_verdict`` each prompt's generation ends at its template's verdict marker. Two processes on one
    folder take turns (a file lock). ``progress``: a bar over the prompts on stderr (rate, ETA), advanced
    after every generate call (it stands in for the backend's own bar, e.g. vLLM's); off when stderr is
    not a TTY.

    ``worker=(i, N)``: draw only the shards whose index is ``i`` modulo ``N`` and list them in
    ``workers/<i>-of-<N>.json`` (one file per worker, so N processes on a shared folder never wait on each
    other); the returned draws hold that share only. A run without ``worker`` afterwards is the merge: it
    takes every shard a worker listed (checked by its hash), draws what none did, and returns the same draws,
    shard files and selection as a run that drew everything itself (per-sample seeds: a shard's rows do not
    depend on who drew it). Both walk their shards with :func:`_shard_loop`.
    """
    prompts = list(prompts)
    _check_inputs(prompts, draws, shard_size)
    key, material = cache_key(prompts, generator_config, params, draws, stop_on_verdict, adaptive)
    job = _Job(
        name=name,
        folder=Path(folder_root) / key,
        key=key,
        material=material,
        prompts=prompts,
        shards=[prompts[s : s + shard_size] for s in range(0, len(prompts), shard_size)],
        shard_size=shard_size,
        draws=draws,
        params=params,
        stop_on_verdict=stop_on_verdict,
        adaptive=adaptive,
    )
    if worker is not None:
        return _draw_worker_share(job, sampler, progress, worker)
    return _draw_all(job, sampler, progress)


@dataclass
class _Job:
    """One rejection run's fixed inputs: the prompts cut into shards, the folder they go to (named by the
    cache ``key``) and how each shard is drawn."""

    name: str
    folder: Path
    key: str
    material: dict[str, Any]
    prompts: list[JudgePrompt]
    shards: list[list[JudgePrompt]]
    shard_size: int
    draws: int
    params: Any
    stop_on_verdict: bool
    adaptive: Adaptive | None
    redrawn: list[str] = field(default_factory=list)  # listed shards found missing or changed, drawn again

    def fresh_manifest(self, **extra: Any) -> dict[str, Any]:
        """A new manifest: what identifies the run, then ``extra`` (in that key order)."""
        head = {"key": self.key, "name": self.name, "material": self.material, "draws": self.draws}
        return {**head, "shard_size": self.shard_size, **extra}

    def load(self, index: int, entry: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
        """Shard ``index``'s rows as ``entry`` lists them, or None (no entry, or the file does not match)."""
        if not entry:
            return None
        return _load_shard(
            self.folder, entry, self.shards[index], self.draws, self.adaptive is not None, self.redrawn
        )


def _shard_loop(
    job: _Job,
    sampler: Any | Callable[[], Any],
    indices: Sequence[int],
    listed: Sequence[Mapping[str, Any]],
    manifest_path: Path,
    manifest: dict[str, Any],
    desc: str,
    progress: bool,
) -> tuple[dict[int, list[dict[str, Any]]], int, int]:
    """The one shard loop of one-process and worker drawing: each shard in ``indices`` is reused from the
    first of the ``listed`` entry tables that holds a matching file (and listed in ``manifest``), or drawn,
    written and listed there. The sampler is built at the first shard to draw. Returns the rows by shard
    index and the number of shards reused and drawn."""
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for index in indices:  # the listed shards first, so the bar starts at what is done
        for entry in (table.get(str(index)) for table in listed):
            shard_rows = job.load(index, entry)
            if shard_rows is not None:
                by_shard[index] = shard_rows
                manifest["shards"][str(index)] = entry
                break
    reused, drawn, built = len(by_shard), 0, None
    bar = progress_bar(
        total=sum(len(job.shards[i]) for i in indices),
        initial=sum(len(job.shards[i]) for i in by_shard),
        desc=desc,
        unit="prompt",
        enabled=progress,
    )
    try:
        for index in indices:
            if index in by_shard:
                continue
            if built is None:
                built = _build(sampler)
            by_shard[index] = _draw_and_list(job, built, index, manifest_path, manifest, bar.update)
            drawn += 1
    finally:
        bar.close()
    return by_shard, reused, drawn


def _build(sampler: Any) -> Any:
    """The sampler to draw with: a lazy one (:class:`cj2.generation.Lazy`) or a factory (a callable that is
    not itself a sampler) is built now; a sampler is itself."""
    if isinstance(sampler, Lazy):
        return sampler.get()
    return sampler() if callable(sampler) and not hasattr(sampler, "generate") else sampler


def _draw_and_list(
    job: _Job,
    sampler: Any,
    index: int,
    manifest_path: Path,
    manifest: dict[str, Any],
    on_prompts: Callable[[int], Any],
) -> list[dict[str, Any]]:
    """Draw shard ``index`` (plain or adaptive), write it and list it in ``manifest``; its rows."""
    shard = job.shards[index]
    shard_rows = _draw(sampler, shard, job.draws, job.params, job.stop_on_verdict, job.adaptive, on_prompts)
    _write_and_list(job.folder, index, len(shard), shard_rows, manifest_path, manifest)
    log.debug(
        "%s: shard %d/%d drawn (%d prompts x %d)", job.name, index + 1, len(job.shards), len(shard), job.draws
    )
    return shard_rows


def _rows_by_prompt(by_shard: Mapping[int, list[dict[str, Any]]], indices: Sequence[int]) -> dict[str, list]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for index in indices:
        for row in by_shard[index]:
            rows.setdefault(row["prompt_id"], []).append(row)
    return rows


def _draw_all(job: _Job, sampler: Any | Callable[[], Any], progress: bool) -> RejectionDraws:
    """Every shard, listed in ``manifest.json`` under the folder's lock; shards a worker listed are taken."""
    from filelock import FileLock

    job.folder.mkdir(parents=True, exist_ok=True)
    manifest_path = job.folder / "manifest.json"
    indices = range(len(job.shards))
    with FileLock(str(job.folder / ".lock")):
        fresh = job.fresh_manifest(
            n_prompts=len(job.prompts), n_shards=len(job.shards), shards={}, complete=False
        )
        manifest = _open_manifest(manifest_path, job.key, job.shard_size, fresh)
        was_complete = bool(manifest.get("complete"))
        listed = [manifest["shards"], _listed_elsewhere(job.folder)]
        desc = f"{job.name}: prompts x {job.draws}"
        by_shard, reused, drawn = _shard_loop(
            job, sampler, indices, listed, manifest_path, manifest, desc, progress
        )
        rows = _rows_by_prompt(by_shard, indices)
        if not manifest.get("complete"):
            manifest["complete"] = True
            atomic_write_json(manifest_path, manifest)
    if set(rows) != {p.id for p in job.prompts} or any(
        (len(r) != job.draws if job.adaptive is None else not 1 <= len(r) <= job.draws) for r in rows.values()
    ):  # pragma: no cover - guarded above
        raise AssertionError(f"{job.folder}: merged draws do not hold every prompt exactly once")
    return RejectionDraws(
        name=job.name,
        folder=job.folder,
        key=job.key,
        draws=job.draws,
        prompts=job.prompts,
        rows=rows,
        cache_hit=was_complete and drawn == 0,
        shards_reused=reused,
        shards_drawn=drawn,
        shards_redrawn=list(job.redrawn),
        adaptive=job.adaptive is not None,
    )


def _draw_worker_share(
    job: _Job, sampler: Any | Callable[[], Any], progress: bool, worker: Worker
) -> RejectionDraws:
    """One worker's share of :func:`rejection_sample` (see there): its shards, resumably, listed in its own
    manifest under its own lock; a shard the merged manifest already lists is taken from there."""
    from filelock import FileLock

    index_w, count = worker
    own = _worker_manifest(job.folder, worker)
    own.parent.mkdir(parents=True, exist_ok=True)
    mine = [i for i in range(len(job.shards)) if i % count == index_w]
    with FileLock(str(own.with_suffix(".lock"))):
        fresh = job.fresh_manifest(worker=[index_w, count], shards={})
        manifest = _open_manifest(own, job.key, job.shard_size, fresh)
        main_path = job.folder / "manifest.json"
        main = json.loads(main_path.read_text()).get("shards", {}) if main_path.exists() else {}
        desc = f"{job.name} worker {index_w}/{count}: prompts x {job.draws}"
        by_shard, reused, drawn = _shard_loop(
            job, sampler, mine, [manifest["shards"], main], own, manifest, desc, progress
        )
        atomic_write_json(own, manifest)
    log.info(
        "%s: worker %d of %d: %d of %d shards (%d drawn, %d reused); merge with a run without "
        "rejection.worker",
        job.name,
        index_w,
        count,
        len(mine),
        len(job.shards),
        drawn,
        reused,
    )
    return RejectionDraws(
        name=job.name,
        folder=job.folder,
        key=job.key,
        draws=job.draws,
        prompts=[p for i in mine for p in job.shards[i]],
        rows=_rows_by_prompt(by_shard, mine),
        shards_reused=reused,
        shards_drawn=drawn,
        shards_redrawn=list(job.redrawn),
        worker=worker,
        adaptive=job.adaptive is not None,
    )


# --------------------------------------------------------------------------------------------------------
# Selection: nested subsets, records, statistics


@dataclass
class Selection:
    """What the first ``m`` draws give: kept training records, preference pairs, zero-pass prompts, stats."""

    name: str
    m: int
    records: list[TrainRecord]
    preferences: list[PreferenceRecord]
    zero_pass: list[dict[str, Any]]
    stats: dict[str, Any]

    def write(self, out_dir: str | Path) -> dict[str, str]:
        """Write ``train.jsonl``, ``preference.jsonl``, ``zero_pass.jsonl`` and ``stats.json``
        (atomically)."""
        out = Path(out_dir)
        files = {
            "train": out / "train.jsonl",
            "preference": out / "preference.jsonl",
            "zero_pass": out / "zero_pass.jsonl",
            "stats": out / "stats.json",
        }
        write_jsonl(files["train"], (r.to_json() for r in self.records))
        write_jsonl(files["preference"], (r.to_json() for r in self.preferences))
        write_jsonl(files["zero_pass"], self.zero_pass)
        atomic_write_json(files["stats"], self.stats)
        return {k: str(v) for k, v in files.items()}


def _rate(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _group_stats(
    per_prompt: Sequence[tuple[JudgePrompt, list[dict[str, Any]], list[dict[str, Any]]]],
    m: int,
    kept_set: frozenset[str] = FILTERS["outcome"],
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    finish: Counter[str] = Counter()
    hist = Counter({str(c): 0 for c in range(m + 1)})
    parsed = reward = tokens = kept = with_pass = drawn = 0
    flag_rows = kept_flagged = kept_flawed = all_flawed = kept_spurious = 0
    for _, window, kept_rows in per_prompt:
        passes = 0
        for r in window:
            statuses[r["status"]] += 1
            finish[r["finish_reason"]] += 1
            parsed += r["parsed_verdict"] is not None
            reward += r["reward"]
            tokens += r["n_tokens"]
            passes += r["status"] in kept_set
            drawn += 1
            if "flawed" in r["meta"]:
                flag_rows += 1
                all_flawed += bool(r["meta"]["flawed"])
        for r in kept_rows:
            kept_spurious += r["status"] == "spurious"
            if "flawed" in r["meta"]:
                kept_flagged += 1
                kept_flawed += bool(r["meta"]["flawed"])
        hist[str(passes)] += 1
        kept += len(kept_rows)
        with_pass += bool(passes)
    n_prompts = len(per_prompt)
    passing = sum(statuses[s] for s in kept_set)
    statuses["over_k"] = passing - kept
    out: dict[str, Any] = {
        "prompts": n_prompts,
        "samples": drawn,
        "kept": kept,
        "keep_rate": _rate(kept, drawn),
        "pass_at_m": _rate(with_pass, n_prompts),
        "zero_pass": n_prompts - with_pass,
        "parse_rate": _rate(parsed, drawn),
        "reward_mean": _rate(reward, drawn),
        "mean_tokens": _rate(tokens, drawn),
        "tokens": tokens,  # generated, all candidates: what a processed-token budget counts
        # right verdicts for wrong reasons among the candidates whose verdict is right (R-Align's S-Corr)
        "spurious_share": _rate(statuses["spurious"], statuses["pass"] + statuses["spurious"]),
        "kept_spurious": kept_spurious,
        "draws_saved": n_prompts * m - drawn,
        "status": {s: statuses[s] for s in (*STATUSES, "over_k")},
        "finish_reasons": dict(finish),
        "pass_hist": {k: hist[k] for k in sorted(hist, key=int)},
    }
    if flag_rows:
        # Only the simulated teacher knows whether a check was sound: the failure a verdict-only reward
        # cannot see (arXiv 2507.09104 rewards the verdict alone, Eq. 6).
        out["flawed"] = {
            "samples_flagged": flag_rows,
            "flawed_rate_all": _rate(all_flawed, flag_rows),
            "kept_flawed": kept_flawed,
            "kept_flawed_rate": _rate(kept_flawed, kept_flagged),
        }
    return out


def _zero_pass_entry(p: JudgePrompt, window: Sequence[dict[str, Any]], m: int) -> dict[str, Any]:
    """The record of a prompt none of whose first ``m`` candidates is kept."""
    return {
        "prompt_id": p.id,
        "source": p.source,
        "gold_verdict": p.gold,
        "M": m,
        "statuses": [r["status"] for r in window],
        "parsed_verdicts": [r["parsed_verdict"] for r in window],
    }


def _train_record(name: str, p: JudgePrompt, r: Mapping[str, Any], weight: float) -> TrainRecord:
    """A kept candidate ``r`` of prompt ``p`` as training data: the prompt, the response, the gold verdict."""
    return TrainRecord(
        id=f"{p.id}#s{r['sample_idx']}",
        messages=list(p.messages),
        response=r["response"],
        verdict=p.gold,
        format=p.format,
        source=p.source,
        weight=weight,
        meta={
            **p.meta,
            "stage": name,
            "prompt_id": p.id,
            "sample_idx": r["sample_idx"],
            "seed": r["seed"],
            "template": p.template,
            "status": r["status"],
            **({"flawed": r["meta"]["flawed"]} if "flawed" in r["meta"] else {}),
        },
    )


def _preference_pairs(
    name: str, p: JudgePrompt, window: Sequence[dict[str, Any]], kept_rows: Sequence[dict[str, Any]]
) -> list[PreferenceRecord]:
    """Sequence-DPO pairs: each kept candidate against a wrong one, in sample order, each used once."""
    wrong = [r for r in window if r["status"] == "wrong"]
    return [
        PreferenceRecord(
            id=f"{p.id}#s{good['sample_idx']}>s{bad['sample_idx']}",
            messages=list(p.messages),
            chosen=good["response"],
            rejected=bad["response"],
            format=p.format,
            source=p.source,
            meta={
                "stage": name,
                "prompt_id": p.id,
                "chosen_verdict": good["parsed_verdict"],
                "rejected_verdict": bad["parsed_verdict"],
                "template": p.template,
            },
        )
        for good, bad in zip(kept_rows, wrong)
    ]


def select(
    name: str,
    prompts: Sequence[JudgePrompt],
    rows: Mapping[str, Sequence[dict[str, Any]]],
    m: int,
    *,
    max_keep: int | None = None,
    weight: str = "uniform",
    filter: str = "outcome",
    drop_all_pass: bool = False,
    adaptive: bool = False,
) -> Selection:
    """Training data from the first ``m`` candidates of every prompt (nested subsets, arXiv 2507.09104 §5.1).

    All candidates that pass ``filter`` (:data:`FILTERS`) are kept (Eq. 3 sums over every kept sample), or
    the first ``max_keep`` of them. ``weight="inverse_kept"`` gives each kept record the weight ``1/kept`` of
    its prompt, so every prompt weighs the same however many candidates passed. ``drop_all_pass``: a prompt
    whose every candidate passed (pass@M = M; with adaptive drawing, every candidate drawn) is left out, as
    one the sampler already gets right (counted in ``stats["dropped_all_pass"]``). ``adaptive``: the rows
    were drawn adaptively, so a prompt may hold fewer than ``m`` candidates.
    """
    kept_set = kept_statuses(filter)
    if weight not in ("uniform", "inverse_kept"):
        raise ValueError(f"weight={weight!r}; expected 'uniform' or 'inverse_kept'")
    if max_keep is not None and max_keep < 1:
        raise ValueError(f"max_keep={max_keep}: expected >= 1 or None (keep every passing candidate)")
    per_prompt = []
    records: list[TrainRecord] = []
    preferences: list[PreferenceRecord] = []
    zero_pass: list[dict[str, Any]] = []
    dropped_all_pass = 0
    for p in prompts:
        prompt_rows = list(rows[p.id])
        if m < 1 or (m > len(prompt_rows) and not adaptive):
            raise ValueError(
                f"M={m}: expected 1 <= M <= {len(prompt_rows)} (the candidates drawn per prompt)"
            )
        window = prompt_rows[:m]
        passing = [r for r in window if r["status"] in kept_set]
        kept_rows = passing if max_keep is None else passing[:max_keep]
        if drop_all_pass and window and len(passing) == len(window):
            dropped_all_pass += 1
            per_prompt.append((p, window, []))
            continue
        per_prompt.append((p, window, kept_rows))
        if not kept_rows:
            zero_pass.append(_zero_pass_entry(p, window, m))
            continue
        w = 1.0 / len(kept_rows) if weight == "inverse_kept" else 1.0
        records += [_train_record(name, p, r, w) for r in kept_rows]
        preferences += _preference_pairs(name, p, window, kept_rows)
    stats = {
        "name": name,
        "M": m,
        "max_keep": max_keep,
        "weight": weight,
        "filter": filter,
        **_group_stats(per_prompt, m, kept_set),
        "dropped_all_pass": dropped_all_pass,
        "preference_pairs": len(preferences),
    }
    by_source: dict[str, list] = {}
    for entry in per_prompt:
        by_source.setdefault(entry[0].source, []).append(entry)
    stats["per_source"] = {src: _group_stats(group, m, kept_set) for src, group in sorted(by_source.items())}
    return Selection(
        name=name, m=m, records=records, preferences=preferences, zero_pass=zero_pass, stats=stats
    )
