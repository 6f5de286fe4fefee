"""Wall time of drawing M candidate judgments per prompt: cj2's hf sampler vs one generate call per prompt.

Setting (issue "Performance", benchmark ``sampling_throughput``): the embedded SmolLM2-135M-Instruct,
16 judge prompts of mixed length (a question and two responses whose lengths are drawn log-uniformly,
seeded; about 60 to 800 prompt tokens), M=4 candidates of at most 96 new tokens each, temperature 0.7,
top-p 1. Rejection sampling draws exactly this (arXiv 2507.09104, Sec. 3.2: M candidates per prompt).

* ``baseline``: for each prompt, one ``model.generate(do_sample=True, temperature=0.7,
  num_return_sequences=M, max_new_tokens=96)`` call, the usual way to draw M samples;
* ``batched baseline``: what a user who batches would write: all prompts in one left-padded ``generate``
  call with ``num_return_sequences=M`` and a static KV cache (``--batched-cache dynamic`` for the default
  cache); padded to the longest prompt, every row decodes until the longest finishes;
* ``cj2 hf sampler``: :class:`cj2.generation.hf.HFSampler` with the same settings: prompts sorted by
  length, each repeated M times, cut into batches of ``--batch-size`` sequences, left-padded, KV cache,
  per-sample seeded sampling.

Both run in the same process, on the same model and dtype, after a short warm-up of each; the baseline
runs first. The load average is printed: on a shared machine the ratio is only as good as the load was
steady. Target: the sampler takes at most 1/3 of the baseline's time.

Run: ``python experiments/perf/sampling_throughput.py`` (the first run also converts the embedded model,
about 30 s). ``--dtype float32`` to compare precisions; ``--random-weights --device cuda`` times a random
model of the same shape on a GPU (no model files needed, no early stops). On a 2-core machine shared with
other jobs (load average 5), with 1 thread: baseline 560 s, sampler 90 s, 11 minutes in all; an idle
machine is faster.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time

import torch

from cj2.generation import SamplingParams
from cj2.generation.hf import HFSampler
from cj2.models import EMBEDDED, load_model, load_tokenizer

_WORDS = (
    "the answer uses a clear step by step method and checks each value against the question before it "
    "gives a final result which matches the expected number but the explanation skips one detail about "
    "units and rounding so a careful reader might ask why the second response prefers a shorter form "
    "while still covering the key constraint on time format and quantity mentioned by the user"
).split()


# SmolLM2-135M-Instruct's architecture (for --random-weights).
SMOLLM2_SHAPE = {
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}


def make_prompts(n: int, seed: int) -> list[list[dict[str, str]]]:
    """``n`` pairwise judge prompts whose responses have log-uniform lengths (seeded)."""
    rng = random.Random(seed)
    prompts = []
    for i in range(n):

        def text(lo: int, hi: int) -> str:
            k = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            return " ".join(rng.choice(_WORDS) for _ in range(k)).capitalize() + "."

        question = f"Question {i}: " + text(8, 40).rstrip(".") + "?"
        prompt = (
            f"Please act as an impartial judge and decide which response answers the question better. "
            f"Explain briefly, then give your choice.\n\n[Question]\n{question}\n\n[Model A]\n"
            f"{text(10, 280)}\n\n[Model B]\n{text(10, 280)}"
        )
        prompts.append([{"role": "user", "content": prompt}])
    return prompts


def baseline(model, tokenizer, prompts, m: int, max_new_tokens: int, temperature: float) -> tuple[float, int]:
    """One ``generate(num_return_sequences=m)`` call per prompt; returns (seconds, new tokens)."""
    eos = tokenizer.eos_token_id
    tokens = 0
    start = time.perf_counter()
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]], device=model.device)
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            num_return_sequences=m,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        for row in out[:, ids.shape[1] :].tolist():
            tokens += next((k + 1 for k, t in enumerate(row) if t == eos), len(row))
    return time.perf_counter() - start, tokens


def batched_baseline(
    model, tokenizer, prompts, m: int, max_new_tokens: int, temperature: float, cache: str | None
) -> tuple[float, int]:
    """The batched loop a user would write: every prompt in ONE left-padded ``generate`` call with
    ``num_return_sequences=m`` (and a static KV cache when ``cache="static"``); (seconds, new tokens)."""
    eos = tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        texts = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
        ]
        enc = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
    finally:
        tokenizer.padding_side = side
    extra = {"cache_implementation": cache} if cache else {}
    start = time.perf_counter()
    out = model.generate(
        **enc,
        do_sample=True,
        temperature=temperature,
        top_p=1.0,
        top_k=0,
        num_return_sequences=m,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
        **extra,
    )
    seconds = time.perf_counter() - start
    tokens = 0
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        tokens += next((k + 1 for k, t in enumerate(row) if t == eos), len(row))
    return seconds, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=EMBEDDED)
    parser.add_argument(
        "--dtype",
        default="bfloat16",
        help="bfloat16 (1.6-2x faster on CPUs with AVX-512 BF16 or AMX) or float32",
    )
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument(
        "--batch-size", type=int, default=64, help="sequences per generate call of the sampler"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: all cores on an idle machine, 1 when the load average is "
        "at least half the cores: OpenMP threads that wait on each other made a busy "
        "2-core machine up to 10x slower)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--batched-cache",
        default="static",
        help="KV cache of the batched baseline's generate call: static (default) or dynamic",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="a randomly initialised model of SmolLM2-135M's shape (needs only the tokenizer): "
        "for timing where the embedded model is not installed; it never stops early",
    )
    args = parser.parse_args(argv)

    if args.threads is None and os.getloadavg()[0] >= len(os.sched_getaffinity(0)) / 2:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.random_weights:
        model = load_model(
            "tiny", dtype=args.dtype, tokenizer=tokenizer, tiny_config=SMOLLM2_SHAPE, seed=args.seed
        )
        args.model = "random weights, SmolLM2-135M shape"
    else:
        model = load_model(args.model, dtype=args.dtype, tokenizer=tokenizer)
    model = model.to(args.device).eval()
    prompts = make_prompts(args.prompts, args.seed)
    sampler = HFSampler(model, tokenizer, batch_size=args.batch_size)
    lengths = [len(sampler.encode(p)) for p in prompts]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)

    # Warm-up (first-call allocations, kernel selection) on two short prompts, for both paths.
    short = sorted(range(len(prompts)), key=lambda i: lengths[i])[:2]
    with torch.inference_mode():
        baseline(model, tokenizer, [prompts[i] for i in short], args.m, 4, args.temperature)
    sampler.generate([prompts[i] for i in short], args.m, SamplingParams(max_new_tokens=4, temperature=0.7))
    cache = None if args.batched_cache == "dynamic" else args.batched_cache
    with torch.inference_mode():
        batched_baseline(model, tokenizer, [prompts[i] for i in short], args.m, 4, args.temperature, cache)

    load_before = os.getloadavg()[0]
    with torch.inference_mode():
        base_s, base_tokens = baseline(
            model, tokenizer, prompts, args.m, args.max_new_tokens, args.temperature
        )
    with torch.inference_mode():
        batched_s, batched_tokens = batched_baseline(
            model, tokenizer, prompts, args.m, args.max_new_tokens, args.temperature, cache
        )
    start = time.perf_counter()
    samples = sampler.generate(prompts, args.m, params)
    ours_s = time.perf_counter() - start
    if args.device != "cpu":
        torch.cuda.synchronize()
    load_after = os.getloadavg()[0]
    ours_tokens = sum(s.n_tokens for row in samples for s in row)
    finishes = [s.finish_reason for row in samples for s in row]

    ratio = ours_s / base_s
    where = (
        torch.cuda.get_device_name()
        if args.device != "cpu"
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} usable of {os.cpu_count()} CPUs; "
        f"ran on {where}; torch {torch.__version__}, python {platform.python_version()}"
    )
    print(
        f"model: {args.model} ({args.dtype}); {args.prompts} prompts of {min(lengths)}-{max(lengths)} tokens "
        f"(median {statistics.median(lengths):.0f}); M={args.m}, max_new_tokens={args.max_new_tokens}, "
        f"temperature={args.temperature}; sampler batch {args.batch_size} sequences"
    )
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print()
    print("| method | wall time (s) | new tokens | new tokens/s | time vs baseline |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| baseline: generate(num_return_sequences={args.m}) per prompt | {base_s:.1f} | {base_tokens} | "
        f"{base_tokens / base_s:.1f} | 1.00 |"
    )
    print(
        f"| batched baseline: one left-padded generate(num_return_sequences={args.m}), "
        f"{args.batched_cache} cache | {batched_s:.1f} | {batched_tokens} | {batched_tokens / batched_s:.1f} "
        f"| {batched_s / base_s:.2f} |"
    )
    print(f"| cj2 hf sampler | {ours_s:.1f} | {ours_tokens} | {ours_tokens / ours_s:.1f} | {ratio:.2f} |")
    print(f"\ncj2 hf sampler time / batched baseline time: {ours_s / batched_s:.2f}")
    print()
    print(f"sampler finish reasons: stop={finishes.count('stop')}, length={finishes.count('length')}")
    met = ratio <= 1 / 3
    print(f"target: sampler time <= 1/3 of the baseline's -> {'met' if met else 'NOT met'} ({ratio:.2f})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
