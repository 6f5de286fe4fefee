"""The hf sampler end to end on the tiny random model (2 layers, 64 dims, SmolLM2 tokenizer)."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from cj2.generation import SamplingParams, base, build_sampler, sample_seed
from cj2.generation.hf import HFSampler
from cj2.models import load_model, load_tokenizer

PROMPTS = [
    [{"role": "user", "content": "Short question?"}],
    [
        {"role": "system", "content": "You are a careful judge."},
        {
            "role": "user",
            "content": "Compare these two long responses about photosynthesis and pick one. " * 4,
        },
    ],
    [{"role": "user", "content": "A prompt of middling length, to sit between the others."}],
    [{"role": "user", "content": "Hi"}],
]
SAMPLING = SamplingParams(max_new_tokens=16, temperature=1.0, seed=11)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The tiny model gains nothing from a second thread, and on a busy 2-core machine OpenMP threads
    # waiting on each other make generation many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = load_tokenizer("tiny")
    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    return model, tokenizer


@pytest.fixture(scope="module")
def sampler(tiny):
    return HFSampler(*tiny, batch_size=5)


@pytest.fixture(scope="module")
def reference(sampler):
    """Sampled texts without stops: the ground truth the stop tests cut."""
    return sampler.generate(PROMPTS, 3, SAMPLING)


def test_n_samples_per_prompt_in_prompt_order(sampler, reference):
    assert len(reference) == len(PROMPTS)
    for i, row in enumerate(reference):
        assert [(s.prompt_index, s.sample_index) for s in row] == [(i, 0), (i, 1), (i, 2)]
        assert [s.seed for s in row] == [sample_seed(11, i, j) for j in range(3)]
        assert all(s.finish_reason == "length" and s.n_tokens == 16 for s in row)
    # Samples differ (distinct seeds), and prompts sorted by length inside the sampler still come back
    # in the caller's order: each prompt alone (its own batch, no padding) gives the same samples.
    assert len({s.text for row in reference for s in row}) == 12
    for i, prompt in enumerate(PROMPTS):
        alone = sampler.generate([prompt], 3, SAMPLING, keys=[i])[0]
        assert [s.text for s in alone] == [s.text for s in reference[i]]


def test_samples_do_not_depend_on_batch_composition(tiny, reference):
    for batch_size in (1, 12):
        other = HFSampler(*tiny, batch_size=batch_size).generate(PROMPTS, 3, SAMPLING)
        assert [[s.text for s in row] for row in other] == [[s.text for s in row] for row in reference]
    # Reversed prompts with keys that follow them: the same samples, in the new order.
    reverse = HFSampler(*tiny, batch_size=4).generate(PROMPTS[::-1], 3, SAMPLING, keys=[3, 2, 1, 0])
    assert [[s.text for s in row] for row in reverse] == [[s.text for s in row] for row in reference[::-1]]


@pytest.mark.parametrize("prefill", ["per_prompt", "padded"])
def test_shared_prefill_gives_the_same_samples(tiny, reference, prefill, monkeypatch):
    # Each prompt is prefilled once and its cache copied to its n sequences; the samples must equal those
    # of plain generate, which prefills every sequence (padded) itself.
    if prefill == "padded":  # the fallback for caches that are not plain dynamic layers

        def padded(self, batch, input_ids, attention, capacity):
            firsts = {}
            for row, (i, _) in enumerate(batch):
                firsts.setdefault(i, row)
            index = {i: u for u, i in enumerate(firsts)}
            select = torch.tensor([index[i] for i, _ in batch])
            return self._padded_prefill(list(firsts.values()), select, input_ids, attention)

        monkeypatch.setattr(HFSampler, "_shared_prefill", padded)
    plain = HFSampler(*tiny, batch_size=5, share_prefill=False).generate(PROMPTS, 3, SAMPLING)
    shared = HFSampler(*tiny, batch_size=5).generate(PROMPTS, 3, SAMPLING)
    assert [[s.text for s in row] for row in shared] == [[s.text for s in row] for row in plain]
    assert [[s.text for s in row] for row in shared] == [[s.text for s in row] for row in reference]


def test_grouped_attention_matches_the_models_own(tiny):
    from cj2.generation.attention import GROUPED, generation_attention

    model, _ = tiny
    ids = torch.randint(5, 1000, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    mask[2, :1] = 0
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        with generation_attention(model, "grouped", torch.device("cpu")) as used:
            assert used == GROUPED == model.config._attn_implementation
            grouped = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"  # restored
    real = mask.bool()
    torch.testing.assert_close(grouped[real], reference[real], atol=1e-5, rtol=1e-5)
    # GQA for real: 4 query heads share 2 key/value heads in the tiny model.
    assert model.config.num_attention_heads // model.config.num_key_value_heads == 2


def test_attention_choices(tiny):
    from cj2.generation.attention import generation_attention

    model, tokenizer = tiny
    own = HFSampler(model, tokenizer, batch_size=6, attention="model").generate(PROMPTS, 2, SAMPLING)
    auto = HFSampler(model, tokenizer, batch_size=6).generate(PROMPTS, 2, SAMPLING)
    assert [[s.text for s in r] for r in own] == [[s.text for s in r] for r in auto]
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="attention='fast'"):
        HFSampler(model, tokenizer, attention="fast")
    with generation_attention(model, "auto", torch.device("cuda")) as used:
        assert used == "sdpa"  # CUDA keeps the model's own kernel
    model.config.model_type, original = "gemma2", model.config.model_type
    try:
        with (
            pytest.raises(ValueError, match="not 'gemma2'"),
            generation_attention(model, "grouped", torch.device("cpu")),
        ):
            pass
    finally:
        model.config.model_type = original


@pytest.mark.parametrize("full_buffers", [False, True])
def test_preallocated_cache_layer(full_buffers):
    from cj2.generation.hf import _preallocated_layer_class

    layer = _preallocated_layer_class()(torch.ones(2, 1, 2, 3), 2 * torch.ones(2, 1, 2, 3), 3, full_buffers)
    assert layer.get_seq_length() == 2
    keys, values = layer.update(torch.full((2, 1, 1, 3), 5.0), torch.full((2, 1, 1, 3), 6.0))
    assert layer.get_seq_length() == 3 and keys.shape[-2] == 3  # capacity reached, no growth yet
    assert keys[0, 0, :, 0].tolist() == [1, 1, 5] and values[1, 0, :, 0].tolist() == [2, 2, 6]
    keys, _ = layer.update(torch.full((2, 1, 2, 3), 7.0), torch.full((2, 1, 2, 3), 8.0))  # grows
    assert layer.get_seq_length() == 5
    assert layer.keys[0, 0, :, 0].tolist() == [1, 1, 5, 7, 7]
    assert keys.shape[-2] == (6 if full_buffers else 5)  # full buffers include the unfilled slot
    layer.crop(-2)
    assert layer.get_seq_length() == 3 and layer.keys.shape[-2] == 3
    layer.batch_select_indices(torch.tensor([1, 1, 0]))
    assert layer.keys.shape == (3, 1, 3, 3)


def test_sampling_matches_a_step_by_step_reference(tiny, sampler):
    # Without generate or a KV cache: full forward each step, softmax(logits / T), inverse CDF with the
    # sample's own uniform stream. The sampler must pick the same tokens.
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=6, temperature=0.8, seed=3)
    got = sampler.generate(PROMPTS[:2], 2, params)
    for i in range(2):
        for j in range(2):
            ids = sampler.encode(PROMPTS[i])
            rng = random.Random(sample_seed(3, i, j))
            new = []
            with torch.no_grad():
                for _ in range(6):
                    logits = model(torch.tensor([ids + new])).logits[0, -1].double()
                    cdf = torch.softmax(logits / 0.8, dim=-1).cumsum(0)
                    new.append(int(torch.searchsorted(cdf, rng.random() * cdf[-1], right=True)))
            assert got[i][j].text == tokenizer.decode(new, skip_special_tokens=True)


def test_greedy_is_deterministic_and_matches_transformers(tiny, sampler):
    model, tokenizer = tiny
    params = SamplingParams(max_new_tokens=8)
    first = sampler.generate(PROMPTS, 2, params)
    second = sampler.generate(PROMPTS, 2, params)
    assert [[s.text for s in r] for r in first] == [[s.text for s in r] for r in second]
    assert all(r[0].text == r[1].text for r in first)  # greedy: the n samples agree
    ids = torch.tensor([sampler.encode(PROMPTS[1])])
    plain = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert first[1][0].text == tokenizer.decode(plain[0, ids.shape[1] :], skip_special_tokens=True)


def test_max_new_tokens_gives_length(sampler):
    out = sampler.generate(PROMPTS[:1], 1, SamplingParams(max_new_tokens=3, temperature=1.0))[0][0]
    assert (out.finish_reason, out.n_tokens) == ("length", 3)


def test_eos_gives_stop_without_the_eos_text(tiny):
    model, tokenizer = tiny
    # The random tiny model greedily writes "\n" forever; make "\n" an end-of-sequence token.
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert len(newline) == 1
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, newline[0]]
    try:
        out = HFSampler(model, tokenizer).generate(PROMPTS[:2], 1, SamplingParams(max_new_tokens=8))
    finally:
        model.generation_config.eos_token_id = original
    assert [(r[0].text, r[0].finish_reason, r[0].n_tokens) for r in out] == [("", "stop", 1)] * 2


def _stop_after_word(text: str) -> str:
    # A stop string from the middle of a sampled text: a word and the character after it.
    words = [m for m in text.split(" ") if len(m) >= 3]
    assert words, text
    word = words[len(words) // 2]
    return word


def test_stop_strings_cut_the_text(sampler, reference):
    target = reference[1][2].text
    stop = _stop_after_word(target)
    out = sampler.generate(
        PROMPTS, 3, SamplingParams(max_new_tokens=16, temperature=1.0, seed=11, stop=(stop,))
    )
    for ref_row, row in zip(reference, out):
        for ref, got in zip(ref_row, row):
            if stop in ref.text:
                assert (got.text, got.finish_reason) == (ref.text[: ref.text.index(stop)], "stop")
                assert got.n_tokens <= ref.n_tokens
            else:
                assert (got.text, got.finish_reason) == (ref.text, "length")
    assert out[1][2].n_tokens < 16  # the sequence stopped early, it was not only cut afterwards


def _punctuated_stretch(reference) -> str:
    # A stretch of a sampled text that ends in punctuation (as every verdict marker does).
    for row in reference:
        for sample in row:
            text = sample.text
            for end in range(6, len(text) // 2 + 1):
                if not (text[end - 1].isalnum() or text[end - 1].isspace() or text[end - 1] == "_"):
                    return text[end - 6 : end]
    raise AssertionError("no punctuation in the reference samples")


def test_stop_on_verdict_stops_each_sequence_early(sampler, reference, monkeypatch):
    # A scripted verdict format whose "marker" is a stretch of a reference sample ending in punctuation:
    # the samples that contain it must stop right after it, the others run on unchanged.
    marker = _punctuated_stretch(reference)

    def locate(text, fmt):
        assert fmt == "scripted"
        pos = text.rfind(marker)
        return None if pos < 0 else ("A", pos, pos + len(marker))

    monkeypatch.setattr(base, "_locate", locate)
    full = sampler.generate(PROMPTS, 3, SamplingParams(max_new_tokens=48, temperature=1.0, seed=11))
    cut = sampler.generate(
        PROMPTS, 3, SamplingParams(max_new_tokens=48, temperature=1.0, seed=11, stop_on_verdict="scripted")
    )
    hits = 0
    for full_row, cut_row in zip(full, cut):
        for ref, got in zip(full_row, cut_row):
            first = ref.text.find(marker)
            if first >= 0:
                hits += 1
                assert (got.text, got.finish_reason) == (ref.text[: first + len(marker)], "verdict")
                assert got.n_tokens < ref.n_tokens  # generation stopped, it was not only cut afterwards
            else:
                assert (got.text, got.finish_reason, got.n_tokens) == (
                    ref.text,
                    ref.finish_reason,
                    ref.n_tokens,
                )
    assert hits >= 1


def test_build_sampler_hf_and_model_mode_restored(tiny):
    sampler = build_sampler({"backend": "hf", "name_or_path": "tiny", "batch_size": 3, "seed": 0})
    assert isinstance(sampler, HFSampler) and sampler.batch_size == 3
    assert "HFSampler(" in repr(sampler)
    model, tokenizer = tiny
    model.train()
    HFSampler(model, tokenizer).generate(PROMPTS[:1], 1, SamplingParams(max_new_tokens=2))
    assert model.training
    model.eval()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hf_sampler_on_cuda(tiny):
    model, tokenizer = tiny
    gpu = copy.deepcopy(model).to("cuda")
    runs = [
        HFSampler(gpu, tokenizer, batch_size=b, share_prefill=share).generate(PROMPTS, 3, SAMPLING)
        for b, share in ((5, True), (12, True), (5, False), (1, True))
    ]
    texts = [[[s.text for s in row] for row in run] for run in runs]
    assert texts[0] == texts[1] == texts[2] == texts[3]
    assert len({t for row in texts[0] for t in row}) == 12
    target = runs[0][1][2].text
    stop = _stop_after_word(target)
    cut = HFSampler(gpu, tokenizer, batch_size=6).generate(
        PROMPTS, 3, SamplingParams(max_new_tokens=16, temperature=1.0, seed=11, stop=(stop,))
    )
    assert (cut[1][2].text, cut[1][2].finish_reason) == (target[: target.index(stop)], "stop")
    ids = torch.tensor([HFSampler(gpu, tokenizer).encode(PROMPTS[1])], device="cuda")
    plain = gpu.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    greedy = HFSampler(gpu, tokenizer, batch_size=8).generate(PROMPTS, 2, SamplingParams(max_new_tokens=8))
    assert greedy[1][0].text == tokenizer.decode(plain[0, ids.shape[1] :], skip_special_tokens=True)
