"""Decoding throughput of cj2's hf sampler against today's path and transformers' batched ``generate``.

Setting (issue "Decoding near the hardware's limit"): the embedded SmolLM2-135M-Instruct in the dtype this
machine runs fast (bf16 where the CPU has AVX-512 BF16 or AMX, fp32 where it has AVX2 only: the rule of
``precision=auto``, :func:`cj2.generation.hf.decoding_dtype`), 16 judge prompts of mixed length (a question
and two responses whose lengths are drawn log-uniformly, seeded; about 60 to 500 prompt tokens), M=4
candidates of at most 96 new tokens each, temperature 0.7 (rejection sampling draws exactly this: arXiv
2507.09104, Sec. 3.2, M candidates per prompt). Arms, each at sampler batch 1, 16 and 64 (batch 1 on the
first ``--batch1-prompts`` prompts only, to keep the run short):

* ``generate``: what a user who batches would write: left-padded ``generate(num_return_sequences=M)``
  calls over ``batch / M`` prompts at a time (one prompt and ``num_return_sequences=batch`` below M),
  static KV cache; every row of a call decodes until its longest finishes;
* ``legacy``: ``HFSampler(engine="legacy")``, cj2's sampler before continuous batching (one ``generate`` per
  batch of rows, shared prefill, grouped attention, per-sequence seeded draws);
* ``cj2 static``: the new decode loop (:mod:`cj2.generation.continuous`) with its slots refilled only when
  all are free (``refill=False``): the step's own gain, without continuous batching;
* ``cj2``: the new loop with continuous batching (the default ``HFSampler``);
* ``cj2+fused``: plus fused q/k/v and gate/up projections (``fuse=True``).

Every round measures the matmul peak of the decode dtype (:mod:`peak`, shared with train_throughput.py), then
runs every arm at every batch size, the arm order rotating from round to round; the table gives the median
and range over rounds of new tokens/s (generated tokens, end-of-sequence included, over the arm's wall
time, prefill included), of the decode utilisation ``2 x parameters x new tokens/s / peak`` and of the
speed-ups paired within a round. Prefill tokens/s is the prompt tokens the new loop ran through the model
over the time that took. Before the rounds, greedy decoding of every prompt by ``legacy`` and ``cj2`` is
compared token for token.

Run: ``python experiments/perf/sampling_throughput.py`` (the first run also converts the embedded model,
about 30 s); ``--quick`` is a smoke test on the tiny random model (seconds). ``--threads`` (default: every
usable core) is fixed for the whole run and printed. ``--random-weights --device cuda`` times a random
model of SmolLM2-135M's shape on a GPU (see gpu_check.sh).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from cj2.generation import SamplingParams
from cj2.generation.hf import HFSampler, decoding_dtype
from cj2.models import EMBEDDED, load_model, load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak.py beside this file, however it is run
from peak import machine, matmul_peak, matrix_features  # noqa: E402

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


def batched_generate(
    model, tokenizer, prompts, m: int, batch: int, max_new_tokens: int, temperature: float, cache: str | None
) -> tuple[float, int]:
    """Left-padded ``generate(num_return_sequences=...)`` calls of ``batch`` sequences each (``batch // m``
    prompts, or one prompt ``m // batch`` times when ``batch < m``), with a static KV cache when
    ``cache="static"``; returns (seconds, new tokens up to and including each row's end of sequence)."""
    eos = tokenizer.eos_token_id
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    if batch >= m:
        per_call, returns = max(batch // m, 1), m
        calls = [texts[k : k + per_call] for k in range(0, len(texts), per_call)]
    else:
        returns = batch
        calls = [[t] for t in texts for _ in range(-(-m // batch))]
    extra = {"cache_implementation": cache} if cache else {}
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    tokens = 0
    seconds = 0.0
    try:
        for group in calls:
            enc = tokenizer(group, add_special_tokens=False, padding=True, return_tensors="pt").to(
                model.device
            )
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_p=1.0,
                    top_k=0,
                    num_return_sequences=returns,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos,
                    **extra,
                )
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            for row in out[:, enc["input_ids"].shape[1] :].tolist():
                tokens += next((k + 1 for k, t in enumerate(row) if t == eos), len(row))
    finally:
        tokenizer.padding_side = side
    return seconds, tokens


ARMS = {
    "generate": "transformers generate, left-padded batches, static cache",
    "legacy": "cj2 sampler before (engine=legacy)",
    "cj2 static": "new decode loop, no refill (refill=False)",
    "cj2": "new decode loop + continuous batching (default)",
    "cj2+fused": "cj2 + fused q/k/v and gate/up (fuse=True)",
}


def run_arm(arm: str, model, tokenizer, prompts, args, batch: int) -> dict:
    """One timed run of ``arm`` at sampler batch ``batch``: seconds, new tokens, prefill figures."""
    if arm == "generate":
        cache = None if args.batched_cache == "dynamic" else args.batched_cache
        seconds, tokens = batched_generate(
            model, tokenizer, prompts, args.m, batch, args.max_new_tokens, args.temperature, cache
        )
        return {"seconds": seconds, "tokens": tokens}
    sampler = make_sampler(arm, model, tokenizer, batch)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    start = time.perf_counter()
    samples = sampler.generate(prompts, args.m, params)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    stats = sampler.last_stats
    return {
        "seconds": seconds,
        "tokens": sum(s.n_tokens for row in samples for s in row),
        "prefill_tokens": stats.get("prefill_tokens", 0),
        "prefill_s": stats.get("prefill_s", 0.0),
        "occupancy": stats["live_slot_steps"] / stats["slot_steps"] if stats.get("slot_steps") else None,
    }


def make_sampler(arm: str, model, tokenizer, batch: int) -> HFSampler:
    options = {
        "legacy": {"engine": "legacy"},
        "cj2 static": {"engine": "continuous", "refill": False},
        "cj2": {"engine": "continuous"},
        "cj2+fused": {"engine": "continuous", "fuse": True},
    }[arm]
    return HFSampler(model, tokenizer, batch_size=batch, **options)


def greedy_check(model, tokenizer, prompts, max_new_tokens: int, batch: int) -> tuple[int, int, int]:
    """Greedy decoding of every prompt by ``legacy`` and ``cj2``: (prompts, identical token for token, same
    text)."""
    params = SamplingParams(max_new_tokens=max_new_tokens)
    runs = [
        make_sampler(arm, model, tokenizer, batch).generate(prompts, 1, params) for arm in ("legacy", "cj2")
    ]
    same_ids = sum(a[0].meta["token_ids"] == b[0].meta["token_ids"] for a, b in zip(*runs))
    same_text = sum(a[0].text == b[0].text for a, b in zip(*runs))
    return len(prompts), same_ids, same_text


def _paired(runs: dict, batch: int, arm: str, other: str) -> list[float]:
    """tok/s of ``arm`` over that of ``other`` at ``batch``, round by round."""
    if (batch, other) not in runs:
        return []
    base = {x["round"]: x["tokens"] / x["seconds"] for x in runs[(batch, other)]}
    return [x["tokens"] / x["seconds"] / base[x["round"]] for x in runs[(batch, arm)]]


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def _spread(values: list[float], fmt: str) -> str:
    return f"{min(values):{fmt}}–{max(values):{fmt}}" if len(values) > 1 else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=EMBEDDED)
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (bf16 where the CPU or GPU runs it natively, else fp32), bfloat16 or float32",
    )
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch1-prompts", type=int, default=2, help="prompts of the batch-1 runs")
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--time-limit-s",
        type=float,
        default=0,
        help="start no new round after this many seconds of rounds (0: none); the table says how many ran",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads, fixed for the run (0: every usable core)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--batched-cache", default="static", help="KV cache of the generate arm: static (default) or dynamic"
    )
    parser.add_argument("--peak-size", type=int, default=2048, help="n of the n x n matmuls of the peak")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="a randomly initialised model of SmolLM2-135M's shape (needs only the tokenizer)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: the tiny random model, 4 prompts, M=2, 8 new tokens, batch 1 and 4, one round, "
        "1 thread unless --threads",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.prompts, args.batch1_prompts, args.m = "tiny", 4, 1, 2
        args.max_new_tokens, args.rounds, args.peak_size = 8, 1, 256
        if args.batch_sizes == [1, 16, 64]:
            args.batch_sizes = [1, 4]
        args.threads = args.threads or 1

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    dtype = decoding_dtype(args.device) if args.dtype == "auto" else args.dtype
    peak_key = "bf16" if str(dtype).removeprefix("torch.") in ("bfloat16", "bf16") else "fp32"
    tokenizer = load_tokenizer(args.model)
    if args.random_weights:
        model = load_model(
            "tiny", dtype=dtype, tokenizer=tokenizer, tiny_config=SMOLLM2_SHAPE, seed=args.seed
        )
        args.model = "random weights, SmolLM2-135M shape"
    else:
        model = load_model(args.model, dtype=dtype, tokenizer=tokenizer)
    model = model.to(args.device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    prompts = make_prompts(args.prompts, args.seed)
    lengths = [len(make_sampler("cj2", model, tokenizer, 1).encode(p)) for p in prompts]

    print(f"machine: {machine(args.device)}; matrix instructions: {matrix_features(args.device)}")
    print(
        f"model: {args.model}, {n_params / 1e6:.1f}M parameters, {peak_key}; {args.prompts} prompts of "
        f"{min(lengths)}-{max(lengths)} tokens (median {statistics.median(lengths):.0f}), M={args.m}, "
        f"max_new_tokens={args.max_new_tokens}, temperature={args.temperature}; batch 1 runs use the first "
        f"{args.batch1_prompts} prompts; {threads} torch threads (fixed); {args.rounds} rounds"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    # Warm-up (first-call allocations, kernel selection, the closing-token table) of every arm.
    short = sorted(range(len(prompts)), key=lambda i: lengths[i])[:2]
    warm = argparse.Namespace(**{**vars(args), "max_new_tokens": 4})
    for arm in args.arms:
        run_arm(arm, model, tokenizer, [prompts[i] for i in short], warm, min(args.batch_sizes))

    started = time.perf_counter()
    checked = greedy_check(model, tokenizer, prompts, args.max_new_tokens, max(args.batch_sizes))
    print(
        f"greedy check ({peak_key}, {time.perf_counter() - started:.0f} s): legacy and cj2 agree token for "
        f"token on {checked[1]}/{checked[0]} prompts, same text on {checked[2]}/{checked[0]}",
        flush=True,
    )

    runs: dict[tuple[int, str], list[dict]] = {}
    peaks = []
    rounds_started = time.perf_counter()
    for r in range(args.rounds):
        if r and args.time_limit_s and time.perf_counter() - rounds_started > args.time_limit_s:
            print(
                f"time limit {args.time_limit_s:.0f} s reached: {r} of {args.rounds} rounds ran", flush=True
            )
            args.rounds = r
            break
        peak = matmul_peak(args.device, (peak_key,), n=args.peak_size)[peak_key]
        peaks.append(peak)
        print(f"round {r}: {peak_key} matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
        for batch in args.batch_sizes:
            work = prompts[: args.batch1_prompts] if batch == 1 else prompts
            order = args.arms[r % len(args.arms) :] + args.arms[: r % len(args.arms)]
            for arm in order:
                res = run_arm(arm, model, tokenizer, work, args, batch)
                res.update(round=r, peak=peak, load=os.getloadavg()[0])
                runs.setdefault((batch, arm), []).append(res)
                print(
                    f"  batch {batch:3d} {arm:10s}: {res['tokens'] / res['seconds']:7.1f} new tok/s "
                    f"({res['tokens']} in {res['seconds']:.1f} s, load {res['load']:.2f})",
                    flush=True,
                )
    wall = time.perf_counter() - started
    load_end = os.getloadavg()

    print(
        f"\nload average at end: {' '.join(f'{x:.2f}' for x in load_end)}; {wall:.0f} s; measured "
        f"{peak_key} matmul peak {statistics.median(peaks) / 1e9:.1f} GFLOP/s "
        f"({_spread([p / 1e9 for p in peaks], '.1f')})"
    )
    print(
        "\n| batch | arm | new tok/s | decode utilisation | vs legacy | vs generate | prefill tok/s "
        "| new tok/s without prefill | slots busy |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[tuple[int, str], dict[str, float]] = {}
    for batch in args.batch_sizes:
        for arm in args.arms:
            rs = runs[(batch, arm)]
            tps = [x["tokens"] / x["seconds"] for x in rs]
            util = [2 * n_params * t / x["peak"] for t, x in zip(tps, rs)]

            ratios = {other: _paired(runs, batch, arm, other) for other in ("legacy", "generate")}
            cells = []
            for other in ("legacy", "generate"):
                p = ratios[other]
                cells.append(
                    f"{statistics.median(p):.2f}x ({_spread(p, '.2f')})" if p and arm != other else ""
                )
            pre = [x["prefill_tokens"] / x["prefill_s"] for x in rs if x.get("prefill_s")]
            busy = [x["occupancy"] for x in rs if x.get("occupancy") is not None]
            # the new loop's decode alone: its wall time less the time it spent prefilling prompts
            decode = [x["tokens"] / (x["seconds"] - x["prefill_s"]) for x in rs if x.get("prefill_s")]
            summary[(batch, arm)] = {"tps": statistics.median(tps), "util": statistics.median(util)}
            for other, p in ratios.items():
                if p:
                    summary[(batch, arm)][other] = statistics.median(p)
            print(
                f"| {batch} | {arm} | {statistics.median(tps):.1f} ({_spread(tps, '.1f')}) | "
                f"{100 * statistics.median(util):.1f}% ({_spread([100 * u for u in util], '.1f')}) | "
                f"{cells[0]} | {cells[1]} | "
                f"{f'{statistics.median(pre):.0f}' if pre else '-'} | "
                f"{f'{statistics.median(decode):.1f}' if decode else '-'} | "
                f"{f'{100 * statistics.median(busy):.0f}%' if busy else '-'} |"
            )
    print(
        f"\nnew tok/s and utilisation: median (range) of {args.rounds} rounds; decode utilisation = 2 x "
        f"{n_params / 1e6:.1f}M parameters x new tok/s / the {peak_key} matmul peak of the same round; "
        "speed-ups paired within a round; slots busy = decoded slot positions that belonged to a live row."
    )
    big, one = max(args.batch_sizes), min(args.batch_sizes)
    if "cj2" in args.arms and not args.quick:
        # The targets, each only where this run measured it.
        s, targets = summary[(big, "cj2")], []
        targets.append(f"batch {big} utilisation >= 25%: {100 * s['util']:.1f}% ({_met(s['util'], 0.25)})")
        if "generate" in s:
            targets.append(f"batch {big} >= 2x generate: {s['generate']:.2f}x ({_met(s['generate'], 2)})")
        if one == 1 and "legacy" in summary[(1, "cj2")]:
            ratio = summary[(1, "cj2")]["legacy"]
            targets.append(f"batch 1 >= 2x legacy: {ratio:.2f}x ({_met(ratio, 2)})")
        print("targets: " + "; ".join(targets))
    exact = checked[1] == checked[0]
    if peak_key == "fp32" and not exact:
        print("greedy check FAILED: in fp32 the new loop must reproduce the legacy path token for token")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
