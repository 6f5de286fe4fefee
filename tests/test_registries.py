"""The plug-in registries: a benchmark registered in BENCHMARKS is read by load_benchmark and scored by
score (and by the whole evaluate run loop); a sampler registered in SAMPLERS is built by build_sampler;
unknown names are errors that list the registered ones."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from cj2.data.schema import PairwiseItem
from cj2.evaluation.benchmarks import BENCHMARKS, Benchmark, load_benchmark, register_benchmark
from cj2.evaluation.runner import run_evaluation
from cj2.evaluation.scoring import score
from cj2.generation import (
    SAMPLERS,
    Sample,
    SamplingParams,
    build_sampler,
    finalize,
    register_sampler,
    sample_seed,
)
from cj2.generation.base import check_request
from cj2.verdict import render_verdict

FLIP = {"A": "B", "B": "A", "tie": "tie"}


# ------------------------------------------------------------------------------------------ benchmarks
def _sums_score(
    bench: Benchmark, pairs: Sequence, metrics: Mapping[str, float], *, bootstrap: int, seed: int
):
    """The test benchmark's own number: accuracy on the 0-100 scale, plus how many pairs it saw."""
    right = sum(r["verdict"] == it.label for it, r in pairs)
    return {"sums/score": 100.0 * right / len(pairs)}, {"sums_pairs": len(pairs)}


@pytest.fixture
def sums_benchmark():
    """``sums``: n sums built in code, the right answer first for even i and second for odd i."""

    @register_benchmark("sums", kind="sums", template="cj2_short", keys=("n", "offset"), score=_sums_score)
    def _load_sums(cfg: dict, bench: Benchmark) -> None:
        n, offset = int(cfg.get("n") or 4), int(cfg.get("offset") or 0)
        items = []
        for i in range(n):
            a, b = offset + i, 2 * i + 1
            right, wrong = f"{a} + {b} = {a + b}.", f"{a} + {b} = {a + b + 1}."
            first, second, label = (right, wrong, "A") if i % 2 == 0 else (wrong, right, "B")
            items.append(PairwiseItem(f"sum-{i}", f"What is {a} + {b}?", first, second, label, domain="math"))
        bench.items = items
        bench.info["offset"] = offset

    yield "sums"
    BENCHMARKS.pop("sums", None)


def _predictions(items: Sequence[PairwiseItem], path: Path, wrong: set[str]) -> Path:
    rows = []
    for it in items:
        for order in ("AB", "BA"):
            gold = it.label if order == "AB" else FLIP[it.label]
            verdict = FLIP[gold] if it.id in wrong else gold
            rows.append(
                {"id": it.id, "order": order, "output": f"Sum.\n{{{render_verdict(verdict, 'cj2_choice')}}}"}
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_registered_benchmark_loads_and_scores(sums_benchmark):
    assert "sums" in BENCHMARKS and BENCHMARKS["sums"].keys == ("n", "offset")
    bench = load_benchmark({"name": "sums", "n": 6, "offset": 10})
    assert (bench.name, bench.kind, bench.template, len(bench)) == ("sums", "sums", "cj2_short", 6)
    assert bench.items[1].question == "What is 11 + 3?" and bench.info == {"offset": 10}
    assert load_benchmark({"name": "sums", "template": "cj2_eval"}).template == "cj2_eval"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['adapter'\]; expected some of .*'offset'"):
        load_benchmark({"name": "sums", "adapter": "pairwise"})

    # one headline row per item, the third one wrong: 5/6 right
    rows = {
        (it.id, "headline"): {
            "verdict": FLIP[it.label] if i == 2 else it.label,
            "parsed": None,
            "order": "AB",
        }
        for i, it in enumerate(bench.items)
    }
    metrics, extras = score(bench, bench.items, rows, bootstrap=0)
    assert metrics["sums/score"] == pytest.approx(100 * 5 / 6)
    assert metrics["accuracy"] == pytest.approx(5 / 6) and extras == {"sums_pairs": 6}
    assert not any(k.startswith(("jbv2/", "rewardbench/", "rmb/", "judgebench/")) for k in metrics)


def test_a_registered_benchmark_runs_through_evaluate(sums_benchmark, tmp_path):
    bcfg = {"name": "sums", "n": 8}
    items = load_benchmark(bcfg).items
    preds = _predictions(items, tmp_path / "p.jsonl", wrong={items[5].id})
    cfg = {
        "judge": {"backend": "predictions", "path": str(preds)},
        "benchmark": bcfg,
        "placement": "balanced",
        "seed": 0,
        "evaluate": {"mode": "generate", "swap": True, "bootstrap": 0, "progress": False},
    }
    result = run_evaluation(cfg, tmp_path / "run")["results"]["generate"]
    assert result["sums/score"] == pytest.approx(100 * 7 / 8) and result["n"] == 8
    assert result["swap/consistency"] == 1.0


def test_unknown_benchmark_lists_the_registered_ones(sums_benchmark):
    with pytest.raises(ValueError, match=r"benchmark.name='nope' is not a registered benchmark") as info:
        load_benchmark({"name": "nope"})
    for name in ("embedded", "judgerbenchv2", "rewardbench", "judgebench", "rmb", "pairwise", "sums"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="registered: embedded, "):
        score(Benchmark(name="nope", kind="pairwise", items=[], template="cj2_eval"), [], {})
    with pytest.raises(ValueError, match="not a registered benchmark"):
        load_benchmark({"name": ["embedded"]})


def test_builtin_benchmarks_are_registered():
    assert list(BENCHMARKS) == [
        "embedded",
        "judgerbenchv2",
        "rewardbench",
        "judgebench",
        "rmb",
        "rmbench",
        "rewardbench2",
        "pairwise",
    ]
    kinds = {name: spec.kind for name, spec in BENCHMARKS.items()}
    assert kinds == {
        "embedded": "judgerbench",
        "judgerbenchv2": "judgerbench",
        "rewardbench": "rewardbench",
        "judgebench": "judgebench",
        "rmb": "rmb",
        "rmbench": "rmbench",
        "rewardbench2": "rewardbench2",
        "pairwise": "pairwise",
    }
    # every benchmark is scored by its own scorer or judged by its own loop, except the plain pairwise one
    assert BENCHMARKS["pairwise"].score is None and all(
        s.score or s.run for n, s in BENCHMARKS.items() if n != "pairwise"
    )
    # every benchmark with numbers of its own has a report section and a protocol (issue: no number
    # without its protocol), and every benchmark read from files says how to fetch them
    for name, spec in BENCHMARKS.items():
        if name != "pairwise":
            assert spec.report and spec.protocol is not None, name
        if name not in ("pairwise", "embedded"):
            assert spec.fetch and spec.table.get("official"), name
    for name in BENCHMARKS:
        assert (Path(__file__).resolve().parents[1] / "cj2" / "conf" / "benchmark" / f"{name}.yaml").exists()


# -------------------------------------------------------------------------------------------- samplers
class EchoSampler:
    """Answers each prompt with its last message, upper-cased or not, through the shared stop logic."""

    def __init__(self, upper: bool = False, suffix: str = ""):
        self.upper, self.suffix = upper, suffix

    def generate(self, prompts, n: int, params: SamplingParams, *, keys=None) -> list[list[Sample]]:
        keys = check_request(prompts, n, keys)
        out = []
        for i, (messages, key) in enumerate(zip(prompts, keys)):
            text = messages[-1]["content"] + self.suffix
            text, finish = finalize(text.upper() if self.upper else text, "stop", params)
            seeds = [sample_seed(params.seed, key, j) for j in range(n)]
            out.append([Sample(text, finish, i, j, seeds[j], len(text.split())) for j in range(n)])
        return out


@pytest.fixture
def echo_backend():
    @register_sampler("echo", keys=("upper", "suffix"))
    def _echo(options: dict) -> EchoSampler:
        return EchoSampler(upper=bool(options.get("upper", False)), suffix=options.get("suffix", ""))

    yield "echo"
    SAMPLERS.pop("echo", None)


def test_a_registered_sampler_is_built_and_generates(echo_backend):
    assert "echo" in SAMPLERS
    sampler = build_sampler({"backend": "echo", "upper": True, "suffix": " stop here", "sampling": {}})
    assert isinstance(sampler, EchoSampler)
    out = sampler.generate([[{"role": "user", "content": "hi there"}]], 2, SamplingParams(stop=(" STOP",)))
    assert [s.text for s in out[0]] == ["HI THERE", "HI THERE"] and out[0][0].finish_reason == "stop"
    with pytest.raises(ValueError, match=r"backend 'echo'\): unknown key\(s\) \['lower'\]"):
        build_sampler({"backend": "echo", "lower": True})


def test_a_registered_sampler_omegaconf(echo_backend):
    from omegaconf import OmegaConf

    sampler = build_sampler(OmegaConf.create({"backend": "echo", "suffix": "!", "name": "mine"}))
    assert sampler.generate([[{"role": "user", "content": "x"}]], 1, SamplingParams())[0][0].text == "x!"


def test_unknown_sampler_lists_the_registered_ones(echo_backend):
    with pytest.raises(ValueError, match="backend='gpt' is not one of the registered backends") as info:
        build_sampler({"backend": "gpt"})
    for name in ("hf", "vllm", "openai", "scripted", "simulated", "echo"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="backend=None"):
        build_sampler({})


def test_builtin_samplers_are_registered():
    import cj2.evaluation.backends  # noqa: F401 - registers the judge kinds
    from cj2.generation import generators

    assert generators() == ["hf", "vllm", "openai", "scripted", "simulated"]
    # the judge kinds that are not generators, in the same registry
    assert {n for n, s in SAMPLERS.items() if not s.generates} == {"predictions", "logits"}
    assert SAMPLERS["hf"].judge is not None and SAMPLERS["hf"].local and SAMPLERS["hf"].verdict_logits
    assert SAMPLERS["scripted"].keys == ("outputs",) and "engine_kwargs" in SAMPLERS["vllm"].keys
    for name in generators():
        if name != "scripted":  # scripted is for tests; it has no config file
            assert (
                Path(__file__).resolve().parents[1] / "cj2" / "conf" / "generator" / f"{name}.yaml"
            ).exists()


# ------------------------------------------------------------------------------------------ judges
@pytest.fixture
def user_generator():
    import importlib

    import tests.user_generator as module

    importlib.reload(module)  # registers it (again, after an earlier test's unregister)
    yield module.NAME
    module.unregister()


def test_a_generator_registered_in_a_user_module_judges_evaluate_refine_and_training(
    user_generator, sums_benchmark, tmp_path
):
    """One registry: the user's generator (always the first choice) is the judge of cj2.evaluate, the
    critic of cj2.refine and the judge of the in-training generated evaluation, from its config alone."""
    from cj2.data.tasks import generate_items
    from cj2.evaluation.backends import build_judge
    from cj2.evaluation.generated import GeneratedEval
    from cj2.judge import JudgeProtocol
    from cj2.refinement import run_refine

    judge_cfg = {"backend": user_generator, "note": "Looked at both.", "max_new_tokens": 32}
    # cj2.evaluate: every verdict is "A" as shown, so the first-shown response always wins
    cfg = {
        "judge": judge_cfg,
        "benchmark": {"name": "sums", "n": 8},
        "placement": "balanced",
        "seed": 0,
        "evaluate": {"swap": True, "bootstrap": 0, "progress": False},
    }
    metrics = run_evaluation(cfg, tmp_path / "eval")
    assert list(metrics["results"]) == ["generate"]  # mode auto: a generator has no verdict logits
    res = metrics["results"]["generate"]
    assert res["parse_rate"] == 1.0 and res["n"] == 8
    assert res["swap/prefer_first_rate"] == 1.0 and res["swap/consistency"] == 0.0
    assert res["swap/double_order_accuracy"] == 0.0  # never right in both orders
    # cj2.refine: the critic (and the policy) from configs naming the user's kind
    refine = {
        "seed": 0,
        "policy": {"backend": user_generator},
        "judge": judge_cfg,
        "questions": {"source": "builtin", "n": 2, "split": "test", "families": ["small_arithmetic"]},
        "refine": {"rounds": 1, "bootstrap": 0, "progress": False, "max_items": None, "time_budget_s": None},
    }
    m = run_refine(refine, tmp_path / "refine")
    assert m["critics"] == {"critic": user_generator} and m["n_items"] == 2
    rows = [json.loads(line) for line in (tmp_path / "refine" / "refine.jsonl").read_text().splitlines()]
    steps = [r["arms"]["critic"]["rounds"][0] for r in rows]
    assert [s["critique"]["verdict"] for s in steps] == ["yes", "yes"]
    assert all(s["critique"]["output"].startswith("Looked at both.") for s in steps)
    # the in-training evaluation: the same rows and metrics route, with the user's judge
    judge = build_judge(judge_cfg, GeneratedEval([]).template)
    assert isinstance(judge, JudgeProtocol)
    items = generate_items(3, split="validation", seed=0, tiers=["easy"])
    ev = GeneratedEval(items, template="cj2_short")
    scores = ev.score(ev.judge_rows(judge))
    assert scores["val/parse_rate"] == 1.0 and scores["val/n_judgments"] == 6
    assert scores["val/position_bias"] == 1.0 and scores["val/swap_consistency"] == 0.0


def test_every_judge_kind_is_one_protocol(tmp_path, tiny_model, tokenizer):
    """Judge, LazyJudge, PredictionsJudge and the verdict-logit judge all have the JudgeProtocol shape, and
    the kinds that cannot write or critique say so."""
    from cj2.data.templates import get_template
    from cj2.evaluation.backends import LazyJudge, LogitJudge, PredictionsJudge, build_judge, recorded_ids
    from cj2.evaluation.logits import VerdictLogitScorer
    from cj2.generation import ScriptedSampler
    from cj2.judge import Judge, JudgeProtocol

    tpl = get_template("cj2_short")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "x", "order": "AB", "output": "{[[A]]}"}) + "\n")
    scorer = VerdictLogitScorer(tiny_model, tokenizer, tpl)
    judges = [
        Judge.from_sampler(ScriptedSampler({}), template=tpl),
        LazyJudge({"backend": "hf", "name_or_path": "tiny", "device": "cpu"}, tpl),
        build_judge({"backend": "predictions", "path": str(preds)}, tpl),
        LogitJudge(scorer.score_items, on_cpu=True),
    ]
    for judge in judges:
        assert isinstance(judge, JudgeProtocol), judge
    lazy = judges[1]
    assert lazy.supports_logits and lazy.on_cpu and lazy.writes and not lazy.built  # known, nothing loaded
    assert isinstance(judges[2], PredictionsJudge) and judges[2].writes and not judges[2].supports_logits
    item = PairwiseItem("x", "q?", "a", "b", "A")
    with pytest.raises(ValueError, match="cannot critique"):
        judges[2].critique_batch([("q?", "a")])
    with pytest.raises(ValueError, match="writes no judgments"):
        judges[3].judge_items([item])
    assert set(judges[3].verdict_probs_for([item])[0]) == {"A", "B"}
    # the ids a recorded file holds (the runner's note on unknown ids), also behind a LazyJudge; else None
    lazy_preds = LazyJudge({"backend": "predictions", "path": str(preds)}, tpl)
    assert [recorded_ids(j) for j in (*judges, lazy_preds)] == [
        None,
        None,
        (str(preds), ["x"]),
        None,
        (str(preds), ["x"]),
    ]
