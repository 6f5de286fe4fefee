"""The hf sampler's continuous-batching engine against its legacy ``generate`` path, on the tiny model."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from cj2.generation import SamplingParams
from cj2.generation.hf import HFSampler, decoding_dtype
from cj2.models import load_model, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    [{"role": "user", "content": "Short question?"}],
    [{"role": "user", "content": "Compare these two long responses about photosynthesis and pick one. " * 3}],
    [{"role": "user", "content": "A prompt of middling length, to sit between the others."}],
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Which is larger, 7 or 9? Explain."}],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = load_tokenizer("tiny")
    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    # One token in 24 ends a sequence, so rows stop at many different lengths: slots are refilled
    # (while rows are pending) and the live rows compacted (once none are).
    model.generation_config.eos_token_id = list(range(3, len(tokenizer), 24))
    return model, tokenizer


def _facts(result):
    return [[(s.text, s.finish_reason, s.n_tokens, s.meta["token_ids"]) for s in row] for row in result]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=24),
        SamplingParams(max_new_tokens=24, temperature=1.0, seed=5),
        SamplingParams(max_new_tokens=24, temperature=0.8, top_k=40, top_p=0.9, seed=2, stop=("ab",)),
    ],
    ids=["greedy", "sampled", "top-k-p-stop"],
)
def test_continuous_engine_equals_legacy(tiny, params):
    model, tokenizer = tiny
    legacy = HFSampler(model, tokenizer, batch_size=4, engine="legacy").generate(PROMPTS, 3, params)
    lengths = {s.n_tokens for row in legacy for s in row}
    # Sampled rows end at different lengths (the random tiny model greedily repeats one token: one length).
    assert len(lengths) > 3 or params.greedy
    for batch_size, sync_every in ((1, 1), (4, 1), (6, 3), (32, 1)):
        sampler = HFSampler(model, tokenizer, batch_size=batch_size, sync_every=sync_every)
        got = sampler.generate(PROMPTS, 3, params)
        assert sampler.last_stats["engine"] == "continuous"
        assert _facts(got) == _facts(legacy), (batch_size, sync_every)
        stats = sampler.last_stats
        if sync_every == 1:  # no row decodes past its end: every live slot-step is one kept token
            assert stats["live_slot_steps"] == sum(s.n_tokens for row in got for s in row)
        if batch_size == 32 and not params.greedy:  # one batch, then fewer slots as rows end
            assert stats["slot_steps"] < 15 * stats["steps"]


def test_token_ids_of_each_sample(tiny):
    model, tokenizer = tiny
    eos = set(model.generation_config.eos_token_id)
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=3)
    for engine in ("continuous", "legacy"):
        sampler = HFSampler(model, tokenizer, batch_size=4, engine=engine)
        full = [s for row in sampler.generate(PROMPTS, 2, params) for s in row]
        kinds = set()
        for s in full:
            ids = s.meta["token_ids"]
            assert len(ids) == s.n_tokens and all(isinstance(t, int) for t in ids)
            if s.finish_reason == "length":
                assert tokenizer.decode(ids, skip_special_tokens=True) == s.text
                kinds.add("length")
            else:  # ended by an end-of-sequence token: generated, kept in the ids, not in the text
                assert ids[-1] in eos and tokenizer.decode(ids[:-1], skip_special_tokens=True) == s.text
                kinds.add("eos")
        assert kinds == {"length", "eos"}
        # A stop string cuts the text: the ids run through the token holding the cut, no further.
        long = next(s for s in full if s.n_tokens >= 12 and s.finish_reason == "length")
        stop = long.text[len(long.text) // 2 : len(long.text) // 2 + 2]
        cut = sampler.generate(PROMPTS, 2, SamplingParams(**{**params.__dict__, "stop": (stop,)}))
        sample = cut[long.prompt_index][long.sample_index]
        assert sample.finish_reason == "stop" and stop not in sample.text
        ids = sample.meta["token_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True).startswith(sample.text)
        assert len(tokenizer.decode(ids[:-1], skip_special_tokens=True)) < len(sample.text) or not ids
        assert ids == long.meta["token_ids"][: len(ids)]


@pytest.mark.parametrize("fuse", [False, True])
def test_weights_updated_between_calls_are_used(tiny, fuse):
    """A live model in training (train mode, parameters requiring gradients) changed in place by an
    optimizer step between two calls: the second call decodes with the new weights."""
    _, tokenizer = tiny
    model = load_model("tiny", seed=1, tokenizer=tokenizer)
    model.train()
    sampler = HFSampler(model, tokenizer, batch_size=4, fuse=fuse)
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=9)
    before = _facts(sampler.generate(PROMPTS, 2, params))
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=2.0)
    ids = torch.tensor([sampler.encode(PROMPTS[1])])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    after = _facts(sampler.generate(PROMPTS, 2, params))
    fresh = _facts(HFSampler(model, tokenizer, batch_size=3, engine="legacy").generate(PROMPTS, 2, params))
    assert after == fresh and after != before
    assert model.training


def test_under_autocast(tiny):
    # The in-training evaluation decodes under the training's autocast (bf16-mixed on a GPU).
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = HFSampler(model, tokenizer, batch_size=3).generate(PROMPTS[:2], 2, params)
    assert [len(row) for row in out] == [2, 2] and all(s.n_tokens >= 1 for row in out for s in row)


def test_lora_wrapped_model(tiny):
    pytest.importorskip("peft")
    from cj2.models import apply_peft

    _, tokenizer = tiny
    model = apply_peft(
        load_model("tiny", seed=2, tokenizer=tokenizer),
        {"peft_type": "lora", "r": 4, "lora_alpha": 8, "target_modules": "all-linear", "lora_dropout": 0.1},
    )
    with torch.no_grad():  # adapters that change the output (B starts at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=4)
    sampler = HFSampler(model, tokenizer, batch_size=4)
    assert sampler.engine_for() == "continuous"
    got = _facts(sampler.generate(PROMPTS, 2, params))
    legacy = _facts(HFSampler(model, tokenizer, batch_size=4, engine="legacy").generate(PROMPTS, 2, params))
    assert got == legacy
    plain = copy.deepcopy(model).merge_and_unload()
    assert got != _facts(
        HFSampler(load_model("tiny", seed=2, tokenizer=tokenizer), tokenizer).generate(PROMPTS, 2, params)
    )
    assert got == _facts(
        HFSampler(plain, tokenizer, batch_size=4, engine="legacy").generate(PROMPTS, 2, params)
    )


def test_unsupported_models_fall_back_to_generate(tiny):
    model, tokenizer = tiny
    original = model.config.model_type
    model.config.model_type = "gemma2"
    try:
        assert HFSampler(model, tokenizer).engine_for() == "legacy"
        with pytest.raises(ValueError, match="cannot run this model: model type 'gemma2'"):
            HFSampler(model, tokenizer, engine="continuous").engine_for()
    finally:
        model.config.model_type = original
    assert HFSampler(model, tokenizer, share_prefill=False).engine_for() == "legacy"
    with pytest.raises(ValueError, match="engine='fast'"):
        HFSampler(model, tokenizer, engine="fast")


def test_decoding_dtype_follows_precision_auto(monkeypatch):
    import cj2.runtime

    monkeypatch.setattr(cj2.runtime, "cpu_supports_bf16", lambda: False)
    assert decoding_dtype("cpu") == torch.float32
    monkeypatch.setattr(cj2.runtime, "cpu_supports_bf16", lambda: True)
    assert decoding_dtype("cpu") == torch.bfloat16


def test_sampling_benchmark_quick(capsys):
    spec = importlib.util.spec_from_file_location(
        "sampling_throughput", ROOT / "experiments" / "perf" / "sampling_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        code = module.main(["--quick", "--batch-sizes", "2", "--arms", "generate", "legacy", "cj2"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "legacy and cj2 agree token for token on 4/4 prompts" in out
    assert "| 2 | cj2 |" in out and "decode utilisation" in out and "load average" in out
