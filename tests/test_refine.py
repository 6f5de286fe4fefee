"""Critique -> revision (``python -m cj2.refine``): the answer checker on every built-in family, the loop on
a scripted policy and scripted critics with exact before/after numbers, the controls on the same items,
``Judge.critique``, resume, and the CLI (a subprocess, killed and resumed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cj2 import Judge
from cj2.data.tasks import FAMILIES, generate_items
from cj2.data.tasks.registry import SPLIT_NAMES
from cj2.generation import SamplingParams, ScriptedSampler
from cj2.refinement import check_response, check_value, extract_answer, run_refine
from cj2.testing import ENV

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the checker
def _family_items(family: str, n: int = 24):
    for split in SPLIT_NAMES:
        try:
            return generate_items(n, split=split, families=[family])
        except ValueError:  # a held-out family lives in one split only
            continue
    raise AssertionError(family)


def test_every_family_carries_its_answer_checker(monkeypatch):
    import dataclasses

    assert all(callable(f.check) for f in FAMILIES.values())
    # a new family's checker is the one its Family names: no other table to extend
    mine = dataclasses.replace(
        FAMILIES["capitals"], name="mine", check=lambda truth, value, params: value == "ok"
    )
    monkeypatch.setitem(FAMILIES, "mine", mine)
    assert check_response("mine", "Paris", "Answer: ok") == ("ok", True)
    assert check_response("mine", "Paris", "Answer: Paris") == ("Paris", False)
    with pytest.raises(KeyError, match="no task family 'nope'"):
        check_value("nope", "1", "1")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_checker_accepts_the_truth_rejects_the_wrong_answer_and_the_unparsable(family):
    for it in _family_items(family):
        m = it.meta
        assert check_response(family, m["truth"], f"Let me see.\nAnswer: {m['truth']}", m["params"])[1], m
        assert not check_response(family, m["truth"], f"Answer: {m['wrong_value']}", m["params"])[1], m
        # no "Answer:" line: unparsable, and so wrong, even when the text holds the truth
        assert check_response(family, m["truth"], m["truth"], m["params"]) == (None, False)
        assert not check_value(family, m["truth"], None, m["params"])


def test_answer_line_extraction():
    assert extract_answer("2 + 2 = 4.\nAnswer: 4") == "4"
    assert extract_answer("**Answer:** 16\n") == "16"
    assert extract_answer("Final answer: Paris") == "Paris"
    assert extract_answer("Answer:\n  Rome") == "Rome"
    assert extract_answer("Answer: 3\nWait.\nAnswer: 5") == "5"  # the last one counts
    assert extract_answer("The answer is 4.") is None
    assert extract_answer("Answer: ") is None


@pytest.mark.parametrize(
    ("family", "truth", "value", "ok"),
    [
        ("unit_conversion", "8100 cm", "8100cm", True),
        ("unit_conversion", "8100 cm", "8,100 centimetres", True),
        ("unit_conversion", "8100 cm", "8100", True),
        ("unit_conversion", "8100 cm", "8100 m", False),
        ("percentages", "7%", "7 percent", True),
        ("percentages", "7%", "70%", False),
        ("sorting", "33, 60, 74, 82", "[33, 60, 74, 82]", True),
        ("sorting", "33, 60, 74, 82", "33, 74, 60, 82", False),
        ("dates", "20 June 2022", "June 20th, 2022", True),
        ("dates", "20 June 2022", "2022-06-20", True),
        ("dates", "20 June 2022", "21 June 2022", False),
        ("dates", "Tuesday", "tuesday.", True),
        ("capitals", "Mexico City", "mexico city", True),
        ("capitals", "Moscow", "Moscow or Saint Petersburg", False),
        ("strings", "'u'", "u", True),
        ("small_arithmetic", "16", "16.0", True),
        ("small_arithmetic", "16", "16 or 17", False),
        ("reading", "6", "6", True),
    ],
)
def test_checker_normalises_the_usual_ways_of_writing_a_value(family, truth, value, ok):
    assert check_value(family, truth, value, {}) is ok


@pytest.mark.parametrize(
    ("subtask", "instruction", "value", "ok"),
    [
        ("word", "Write one sentence about the sea that uses the word 'blue'.", "The sea is blue.", True),
        ("word", "Write one sentence about the sea that uses the word 'blue'.", "It is grey. Blue.", False),
        ("upper", "Answer using only capital letters: What do bees make?", "BEES MAKE HONEY.", True),
        ("upper", "Answer using only capital letters: What do bees make?", "Bees make honey.", False),
        ("lower", "Answer using only lowercase letters: What do bees make?", "bees make honey.", True),
        ("count", "List exactly 3 fruits, separated by commas.", "apple, pear, plum", True),
        ("count", "List exactly 3 fruits, separated by commas.", "apple, pear", False),
        ("fewer", "Describe a cat in fewer than 6 words.", "A small soft pet.", True),
        ("fewer", "Describe a cat in fewer than 6 words.", "A cat is a small soft pet.", False),
        ("at_least", "Describe a cat in at least 6 words.", "A cat is a small soft pet.", True),
    ],
)
def test_instruction_checker_reads_the_instruction(subtask, instruction, value, ok):
    params = {"subtask": subtask, "instruction": instruction}
    assert check_value("instructions", "(a description)", value, params) is ok


# ------------------------------------------------------------------------------------------ Judge.critique
def test_judge_critique_returns_the_verdict_and_the_critique():
    seen = []

    def critic(messages, key, j, seed):
        seen.append((key, messages[-1]["content"]))
        return '{"Problems": "17 * 3 is 51, not 41", "Fix": "answer 51", "Correct": "no"} trailing'

    judge = Judge.from_sampler(ScriptedSampler(critic), format="cj2_choice", max_new_tokens=64)
    c = judge.critique("What is 17 * 3?", "41")
    assert c.verdict == "no" and c.finish_reason == "verdict"
    assert "17 * 3 is 51" in c.critique and '"Correct"' not in c.critique
    assert c.output.endswith('"Correct": "no"')  # cut at the verdict
    assert "What is 17 * 3?" in seen[0][1] and "[Response]\n41" in seen[0][1]
    results = judge.critique_batch([("Q1", "a1"), {"question": "Q2", "answer": "a2"}], keys=["k1", "k2"])
    assert [r.verdict for r in results] == ["no", "no"] and [k for k, _ in seen[1:]] == ["k1", "k2"]
    with pytest.raises(ValueError, match="correctness"):
        Judge.from_sampler(ScriptedSampler(critic), critique_template="cj2_short")


# ------------------------------------------------------------------------------------------ the loop
FAMILY = "small_arithmetic"
N = 5


def _items():
    return generate_items(N, split="test", families=[FAMILY])


def _plan():
    """The script: first answers right for items 0, 1, wrong for 2, 3, unparsable for 4. The judge says
    "yes" to item 0, tells item 1 to change to a wrong value (right -> wrong) and items 2-4 to the truth
    (wrong -> right). The second critic says "yes" to everything; the policy keeps its answer unless a
    critique names a fix, so self-refine and the second critic change nothing."""
    items = _items()
    truth = {it.id: it.meta["truth"] for it in items}
    wrong = {it.id: str(int(it.meta["truth"]) + 1) for it in items}
    first = {}
    for i, it in enumerate(items):
        first[it.id] = f"Answer: {truth[it.id]}" if i < 2 else (f"Answer: {wrong[it.id]}" if i < 4 else "Hm.")
    return items, truth, wrong, first


def _script():
    items, truth, wrong, first = _plan()
    ids = [it.id for it in items]
    log: dict[str, list] = {"policy": [], "critic": [], "second": []}

    def policy(messages, key, j, seed):
        log["policy"].append((key, messages))
        qid, _, stage = key.partition("|")
        if stage == "answer":
            return first[qid]
        fix = re.search(r"FIX: (\S+?)\.", messages[-1]["content"])
        return f"Revised.\nAnswer: {fix.group(1)}" if fix else messages[-2]["content"]  # else keep it

    def critic(messages, key, j, seed):
        log["critic"].append((key, messages))
        i = ids.index(key.split("|")[0])
        if i == 0:
            return '{"Problems": "nothing", "Fix": "nothing", "Correct": "yes"}'
        value = wrong[ids[i]] if i == 1 else truth[ids[i]]
        return f'{{"Problems": "the value is off", "Fix": "FIX: {value}.", "Correct": "no"}}'

    def second(messages, key, j, seed):
        log["second"].append((key, messages))
        return '{"Problems": "nothing", "Fix": "nothing", "Correct": "yes"}'

    critics = {
        "critic": Judge.from_sampler(ScriptedSampler(critic), max_new_tokens=64),
        "second_critic": Judge.from_sampler(ScriptedSampler(second), max_new_tokens=64),
    }
    return ScriptedSampler(policy), critics, log


def _cfg(**refine):
    return {
        "seed": 0,
        "policy": {"backend": "scripted"},
        "judge": {"backend": "scripted", "name": "critic"},
        "second_critic": {"backend": "scripted", "name": "second"},
        "questions": {"source": "builtin", "n": N, "split": "test", "families": [FAMILY]},
        "refine": {
            "rounds": 1,
            "controls": ["self_refine", "second_critic"],
            "batch_size": 2,
            "bootstrap": 200,
            "progress": False,
            "max_items": None,
            "time_budget_s": None,
            **refine,
        },
    }


def _run(tmp_path, name="run", **refine):
    policy, critics, log = _script()
    params = SamplingParams(max_new_tokens=64)
    m = run_refine(_cfg(**refine), tmp_path / name, policy=policy, params=params, critics=critics)
    return m, log


def test_known_critiques_give_known_revisions_and_exact_numbers(tmp_path):
    m, _ = _run(tmp_path)
    res = m["results"]
    assert (
        m["scoring"] == "verifiable"
        and res["n"] == N
        and m["arms"] == list(("critic", "self_refine", "second_critic"))
    )
    assert res["before"]["mean"] == pytest.approx(2 / 5) and res["answer_parse_rate"] == pytest.approx(4 / 5)
    critic = res["arms"]["critic"]
    assert critic["after"]["mean"] == pytest.approx(4 / 5)
    assert critic["delta"]["mean"] == pytest.approx(2 / 5)
    assert (critic["right_to_wrong"]["k"], critic["right_to_wrong"]["n"]) == (1, 2)
    assert (critic["wrong_to_right"]["k"], critic["wrong_to_right"]["n"]) == (3, 3)
    assert critic["critique_agreement"] == pytest.approx(4 / 5) and critic["revision_parse_rate"] == 1.0
    for arm in ("self_refine", "second_critic"):
        a = res["arms"][arm]
        assert a["after"]["mean"] == pytest.approx(2 / 5) and a["delta"]["mean"] == 0.0
        assert a["right_to_wrong"]["k"] == 0 and a["wrong_to_right"]["k"] == 0
    low, high = critic["after"]["ci"]
    assert 0 <= low <= 0.8 <= high <= 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "refine.jsonl").read_text().splitlines()]
    assert len(rows) == N
    step = rows[1]["arms"]["critic"]["rounds"][0]
    assert step["critique"]["verdict"] == "no" and step["revision"]["correct"] is False
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| before: the policy's first answer | 5 | 40.0 [" in report
    assert "| after: critique by the judge `critic` | 5 | 80.0 [" in report and "1/2 = 50.0" in report


def test_controls_revise_the_same_first_answers_of_the_same_items(tmp_path):
    _, log = _run(tmp_path)
    keys = [k for k, _ in log["policy"]]
    ids = [it.id for it in _items()]
    assert sorted(k for k in keys if k.endswith("|answer")) == sorted(f"{i}|answer" for i in ids)  # once each
    shown: dict[str, dict[str, str]] = {}
    for key, messages in log["policy"]:
        qid, _, rest = key.partition("|")
        if rest != "answer":
            arm = rest.split("|")[0]
            shown.setdefault(qid, {})[arm] = messages[-2]["content"]  # the answer being revised
    assert set(shown) == set(ids)
    for qid in ids:
        assert set(shown[qid]) == {"critic", "self_refine", "second_critic"}
        assert len(set(shown[qid].values())) == 1  # the same first answer in every arm
    assert sorted(k.split("|")[0] for k, _ in log["critic"]) == sorted(ids)
    assert sorted(k.split("|")[0] for k, _ in log["second"]) == sorted(ids)
    self_refine = [m for k, m in log["policy"] if "|self_refine|" in k]
    assert all("Review your answer and fix any mistake" in m[-1]["content"] for m in self_refine)


def test_several_rounds_critique_the_latest_revision(tmp_path):
    m, log = _run(tmp_path, rounds=2, controls=["self_refine"])
    assert m["results"]["arms"]["critic"]["rounds"] == [pytest.approx(0.8), pytest.approx(0.8)]
    assert set(m["results"]["arms"]) == {"critic", "self_refine"} and not log["second"]
    round2 = [msgs for k, msgs in log["critic"] if k.endswith("|r2|critique")]
    assert len(round2) == N and all(
        "Revised." in msgs[-1]["content"] or "Hm." not in msgs[-1]["content"] for msgs in round2
    )


def test_a_capped_run_resumed_with_a_larger_cap_equals_an_uncapped_run(tmp_path):
    full, _ = _run(tmp_path, "full")
    part, _ = _run(tmp_path, "part", max_items=2)
    assert part["n_items"] == 2 and "capped at 2 of 5" in part["notes"][0]
    resumed, log = _run(tmp_path, "part")
    assert resumed["run"]["reused_items"] == 2 and resumed["run"]["new_items"] == 3
    assert resumed["results"] == full["results"]
    assert not any(k.startswith(_items()[0].id + "|") for k, _ in log["policy"])  # finished items reused


def test_a_folder_of_another_config_is_refused(tmp_path):
    _run(tmp_path, "x")
    with pytest.raises(ValueError, match="different configuration"):
        _run(tmp_path, "x", rounds=2)


def test_open_ended_questions_are_compared_in_both_orders(tmp_path):
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"Tell me about {i}."}) + "\n" for i in range(3))
    )

    def policy(messages, key, j, seed):
        qid, _, stage = key.partition("|")
        if stage == "answer" or qid == "q2" or "self_refine" in stage:
            return f"short answer {qid}" if stage == "answer" or qid == "q2" else messages[-2]["content"]
        return f"long revised answer {qid}"

    def scorer(messages, key, j, seed):  # prefers the revision in both orders, except q1 in order BA
        text = messages[-1]["content"]
        revised_is_a = text.index("long revised") < text.index("short answer")
        pick = "A" if revised_is_a else "B"
        if key == "q1|critic|BA":
            pick = "B"
        return f'{{"Check A": "", "Check B": "", "Choice": "Model {pick}"}}'

    def critic(messages, key, j, seed):
        return '{"Problems": "too short", "Fix": "say more", "Correct": "no"}'

    cfg = _cfg(controls=["self_refine"])
    cfg["questions"] = {"source": "file", "path": str(qfile)}
    cfg["scorer"] = {"backend": "scripted"}
    m = run_refine(
        cfg,
        tmp_path / "open",
        policy=ScriptedSampler(policy),
        params=SamplingParams(max_new_tokens=64),
        critics={"critic": Judge.from_sampler(ScriptedSampler(critic), max_new_tokens=64)},
        scorer=Judge.from_sampler(ScriptedSampler(scorer), max_new_tokens=64),
    )
    crit = m["results"]["arms"]["critic"]
    # q0: revision wins both orders (1.0); q1: wins AB, loses BA (0.5); q2: identical revision (tie, 0.5)
    assert crit["win_rate"]["mean"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert crit["swap_consistency"] == pytest.approx(1 / 2) and crit["identical_rate"] == pytest.approx(1 / 3)
    assert (crit["wins"], crit["ties"], crit["losses"]) == (1, 2, 0)
    self_refine = m["results"]["arms"]["self_refine"]
    assert self_refine["identical_rate"] == 1.0 and self_refine["win_rate"]["mean"] == 0.5
    assert "win rate vs first answer" in (tmp_path / "open" / "report.md").read_text()


def test_a_missing_quickstart_judge_is_a_clear_error(tmp_path):
    cfg = _cfg()
    cfg["judge"] = {"backend": "hf", "name_or_path": str(tmp_path / "outputs" / "runs" / "quickstart" / "hf")}
    policy, _, _ = _script()
    with pytest.raises(FileNotFoundError, match="train it first"):
        run_refine(cfg, tmp_path / "r", policy=policy, params=SamplingParams())


def test_a_critic_must_write_text(tmp_path, monkeypatch):
    """A kind registered as a judge only (recorded predictions, verdict logits, a user's judge-only kind)
    cannot critique; an unknown kind lists the registered ones; a generator kind is built lazily."""
    from cj2.generation import SAMPLERS, SamplerSpec
    from cj2.refinement.runner import build_critic

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "x", "order": "AB", "output": "[[A]]"}) + "\n")
    monkeypatch.setitem(SAMPLERS, "judge_only", SamplerSpec("judge_only", judge=lambda *a: None))
    for cfg in (
        {"backend": "predictions", "path": str(preds)},
        {"backend": "logits"},
        {"backend": "judge_only"},
    ):
        with pytest.raises(ValueError, match=f"a {cfg['backend']} judge cannot critique"):
            build_critic(cfg, where="second_critic")
    with pytest.raises(ValueError, match="expected one of the registered kinds: .*scripted"):
        build_critic({"backend": "nope"})
    critic = build_critic({"backend": "scripted", "outputs": {}})
    assert critic.writes and not critic.built


# ------------------------------------------------------------------------------------------ the CLI
def _write_configs(folder: Path) -> None:
    """Scripted policy and critics as config files (prompt key -> outputs), for the subprocess runs."""
    _, truth, wrong, first = _plan()
    ids = list(truth)
    pol, crit, sec = {}, {}, {}
    for i, qid in enumerate(ids):
        pol[f"{qid}|answer"] = [first[qid]]
        fixed = wrong[qid] if i == 1 else truth[qid]
        pol[f"{qid}|critic|r1|revision"] = [first[qid] if i == 0 else f"Revised.\nAnswer: {fixed}"]
        pol[f"{qid}|self_refine|r1|revision"] = [first[qid]]
        pol[f"{qid}|second_critic|r1|revision"] = [first[qid]]
        verdict = "yes" if i == 0 else "no"
        crit[f"{qid}|critic|r1|critique"] = [f'{{"Problems": "p", "Fix": "f", "Correct": "{verdict}"}}']
        sec[f"{qid}|second_critic|r1|critique"] = ['{"Problems": "p", "Fix": "f", "Correct": "yes"}']
    for group, name, outputs in (
        ("policy", "scripted", pol),
        ("judge", "scripted_a", crit),
        ("judge", "scripted_b", sec),
    ):
        (folder / group).mkdir(parents=True, exist_ok=True)
        (folder / group / f"{name}.yaml").write_text(json.dumps({"backend": "scripted", "outputs": outputs}))


def _command(tmp_path: Path, run_name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cj2.refine",
        "--config-dir",
        str(tmp_path / "conf"),
        "policy=scripted",
        "judge=scripted_a",
        "judge@second_critic=scripted_b",
        "~second_critic.name_or_path",
        f"questions.n={N}",
        f"questions.families=[{FAMILY}]",
        "refine.batch_size=2",
        "refine.bootstrap=100",
        "refine.progress=false",
        "logger.wandb.enabled=false",
        f"output_root={tmp_path / 'out'}",
        f"run_name={run_name}",
    ]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    return {**env, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_cli_run_killed_after_an_item_then_resumed_equals_an_uninterrupted_run(tmp_path):
    _write_configs(tmp_path / "conf")
    ref = subprocess.run(_command(tmp_path, "ref"), env=_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_dir = tmp_path / "out" / "refine" / "ref"
    a = json.loads((ref_dir / "metrics.json").read_text())
    assert a["results"]["before"]["mean"] == pytest.approx(0.4)
    assert a["results"]["arms"]["critic"]["after"]["mean"] == pytest.approx(0.8)
    assert "critique by the second critic" in ref.stdout  # the report is printed

    folder = tmp_path / "out" / "refine" / "killed"
    killed = subprocess.run(
        _command(tmp_path, "killed"),
        env={**_env(), ENV: "refine.item:3"},  # after the second batch (items 3 and 4 written)
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert len((folder / "refine.jsonl").read_text().splitlines()) == 4
    assert not (folder / "metrics.json").exists()
    resumed = subprocess.run(
        _command(tmp_path, "killed"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    b = json.loads((folder / "metrics.json").read_text())
    assert b["results"] == a["results"]
    assert (b["run"]["reused_items"], b["run"]["new_items"]) == (4, 1)
    rows = lambda d: sorted((d / "refine.jsonl").read_text().splitlines())  # noqa: E731
    assert rows(folder) == rows(ref_dir)


def test_the_default_config_is_the_embedded_demonstration():
    from hydra import compose, initialize_config_module

    import cj2.refine  # noqa: F401 - registers the run-folder resolver

    with initialize_config_module(config_module="cj2.conf", version_base="1.3"):
        cfg = compose(config_name="refine", return_hydra_config=True)
        scored = compose(config_name="refine", overrides=["+judge@scorer=hf"], return_hydra_config=True)
    assert cfg.policy.name_or_path == "smollm2_135m" and cfg.second_critic.name_or_path == "smollm2_135m"
    assert cfg.judge.name_or_path == "outputs/runs/quickstart/hf"
    assert list(cfg.questions.tiers) == ["easy"] and cfg.questions.source == "builtin"
    assert list(cfg.refine.controls) == ["self_refine", "second_critic"]
    assert cfg.hydra.run.dir.startswith("outputs/refine/smollm2_135m-quickstart_hf-")
    # a scorer only compares open-ended answers: built-in questions keep their folder
    assert scored.scorer.backend == "hf" and scored.hydra.run.dir == cfg.hydra.run.dir
