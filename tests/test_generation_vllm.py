"""The vllm backend against a fake engine that implements the calls it uses (unverified on a GPU)."""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass, field

import pytest

from cj2.generation import GenerationError, SamplingParams, base, build_sampler, sample_seed
from cj2.generation.vllm_engine import VLLMSampler

PROMPTS = [[{"role": "user", "content": "first"}], [{"role": "user", "content": "second"}]]


@dataclass
class FakeSamplingParams:
    """vllm.SamplingParams as far as cj2 uses it."""

    n: int = 1
    seed: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list[str] | None = None


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class FakeRequestOutput:
    outputs: list[FakeCompletion]


@dataclass
class FakeLLM:
    """vllm.LLM as far as cj2 uses it: ``chat(conversations, sampling_params=[...], use_tqdm=...)``."""

    model: str = ""
    kwargs: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    script: object = None

    def chat(self, messages, sampling_params=None, use_tqdm=True):
        self.calls.append((messages, sampling_params, use_tqdm))
        results = []
        for conversation, sp in zip(messages, sampling_params):
            completions = [self.script(conversation, sp, j) for j in range(sp.n)]
            # Returned out of index order, as a real engine may finish them.
            results.append(FakeRequestOutput(outputs=completions[::-1]))
        return results


def default_script(conversation, sp, j):
    text = f"{conversation[-1]['content']} seed={sp.seed} j={j} [[A]] tail"
    return FakeCompletion(index=j, text=text, token_ids=list(range(3 + j)), finish_reason="stop")


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    made = []

    def llm(model, **kwargs):
        made.append(FakeLLM(model=model, kwargs=kwargs, script=default_script))
        return made[-1]

    module.LLM = llm
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return made


def test_build_sampler_vllm_requests_n_per_prompt(fake_vllm, monkeypatch):
    monkeypatch.setattr(
        base,
        "_locate",
        lambda text, fmt: (lambda m: (m.group(1), m.start(), m.end()) if m else None)(
            re.search(r"\[\[([AB])\]\]", text)
        ),
    )
    sampler = build_sampler(
        {
            "backend": "vllm",
            "name_or_path": "org/model",
            "engine_kwargs": {"tensor_parallel_size": 2, "dtype": "bfloat16"},
        }
    )
    assert isinstance(sampler, VLLMSampler)
    engine = fake_vllm[0]
    assert (engine.model, engine.kwargs) == ("org/model", {"tensor_parallel_size": 2, "dtype": "bfloat16"})

    params = SamplingParams(
        max_new_tokens=32, temperature=0.7, top_p=0.95, seed=4, stop_on_verdict="brackets"
    )
    got = sampler.generate(PROMPTS, 3, params, keys=["a", "b"])
    ((messages, request_params, use_tqdm),) = engine.calls
    assert messages == PROMPTS and use_tqdm is False
    assert request_params == [
        FakeSamplingParams(
            n=3, seed=sample_seed(4, key, 0), temperature=0.7, top_p=0.95, top_k=-1, max_tokens=32, stop=None
        )
        for key in ("a", "b")
    ]
    for i, (key, row) in enumerate(zip(["a", "b"], got)):
        request_seed = sample_seed(4, key, 0)
        assert [s.text for s in row] == [
            f"{PROMPTS[i][0]['content']} seed={request_seed} j={j} [[A]]" for j in range(3)
        ]
        assert [s.finish_reason for s in row] == ["verdict"] * 3
        assert [s.n_tokens for s in row] == [3, 4, 5]
        assert [(s.prompt_index, s.sample_index, s.seed) for s in row] == [
            (i, j, sample_seed(4, key, j)) for j in range(3)
        ]


def test_vllm_stop_strings_top_k_and_length(fake_vllm):
    sampler = VLLMSampler(name_or_path="m")
    engine = fake_vllm[0]

    def script(conversation, sp, j):
        return FakeCompletion(
            index=j,
            text="abc STOP def" if j == 0 else "cut short",
            token_ids=[1, 2],
            finish_reason="stop" if j == 0 else "length",
        )

    engine.script = script
    got = sampler.generate(PROMPTS[:1], 2, SamplingParams(top_k=40, stop=("STOP",)))[0]
    assert [(s.text, s.finish_reason) for s in got] == [("abc ", "stop"), ("cut short", "length")]
    sp = engine.calls[0][1][0]
    assert (sp.top_k, sp.stop, sp.temperature) == (40, ["STOP"], 0.0)


def test_vllm_engine_errors_are_reported(fake_vllm):
    sampler = VLLMSampler(name_or_path="m")
    engine = fake_vllm[0]
    engine.script = lambda c, sp, j: FakeCompletion(index=j, text="", token_ids=[], finish_reason="abort")
    with pytest.raises(GenerationError, match="prompt 0, sample 0: vllm finished with 'abort'"):
        sampler.generate(PROMPTS[:1], 1, SamplingParams())
    engine.chat = lambda messages, sampling_params=None, use_tqdm=True: [
        FakeRequestOutput(outputs=[FakeCompletion(0, "x", [1], "stop")])
    ]
    with pytest.raises(GenerationError, match="prompt 0: vllm returned 1 samples, 2 were asked"):
        sampler.generate(PROMPTS[:1], 2, SamplingParams())
    with pytest.raises(GenerationError, match="returned 1 results for 2 prompts"):
        sampler.generate(PROMPTS, 2, SamplingParams())


def test_a_ready_engine_needs_no_vllm_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now fails
    engine = FakeLLM(script=default_script)
    sampler = VLLMSampler(engine, sampling_params_cls=FakeSamplingParams)
    assert sampler.generate(PROMPTS[:1], 1, SamplingParams())[0][0].text.startswith("first seed=")


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r'pip install "cj2\[vllm\]"'):
        build_sampler({"backend": "vllm", "name_or_path": "m"})
