"""Memory and time of the response-token CE alone (forward + backward), naive vs chunked (and GPU kernels).

Setting (issue "Performance", benchmark ``loss_memory``): vocabulary 151,936 and hidden size 896
(Qwen2.5-0.5B's lm_head), batch 1, sequence 2,048 and 8,192 tokens, fp32, every row a response
token with weight ``1 / N`` (``sft_normalization=token``).

Variants, each in a FRESH subprocess so that one variant's allocator state cannot leak into the next:

* ``naive``: full logits ``hidden @ weight.T`` + ``F.cross_entropy(reduction="none")``, weighted sum
  (the reference the fast paths are tested against);
* ``chunked``: :func:`cj2.losses.chunked.chunked_weighted_nll` (the default ``loss.impl``);
* ``cce``: Cut Cross-Entropy (``impl="cce"`` on CUDA, ``impl="torch_compile"`` on CPU), if installed;
* ``liger``: Liger-Kernel fused linear CE, CUDA only, if installed.

Memory method. CPU: after the inputs (hidden, weight, targets, weights) are allocated and touched,
the worker writes ``5`` to ``/proc/self/clear_refs``, which resets the kernel's high-water mark VmHWM
to the current RSS; "peak" is the final VmHWM minus the RSS at that moment, i.e. the peak resident
memory above the inputs over warm-up and timed repetitions (each repetition starts with the gradients
of the previous one freed). Where clear_refs is not writable the worker falls back to the final
VmHWM minus the RSS after the inputs, which is still right as long as the loss is the largest thing
the process ever held (it is, by far); the table says which method ran. Tensors of this size are
mmap-ed by glibc and returned to the kernel on free, so RSS tracks live tensors. CUDA: the peak of
``torch.cuda.max_memory_allocated`` above the allocation after the inputs.

Time: median wall time of the full-size forward+backward passes: ``--rounds`` fresh processes per
variant, run in alternating order (naive, chunked, then chunked, naive) so that a change in the
machine's load hits every variant alike, each doing ``--reps`` timed passes (by default 2 at 2,048
tokens and 1 at 8,192, to stay within 10 minutes on 2 cores) after ``--warmup`` passes on
``--warmup-seq`` rows. The load average is printed: on a shared machine the time ratios are only as
good as the load was steady.

Run: ``python experiments/perf/loss_memory.py`` (about 11 CPU-minutes, so about 6 minutes on an idle
2-core machine; 25 minutes were measured on one shared with a load average of 10; ``--device cuda``
on a GPU). Prints a markdown table with ratios against ``naive`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

VOCAB = 151_936
HIDDEN = 896
TARGETS = {2048: 0.30, 8192: 0.10}  # peak memory ratio vs naive, from the issue
TIME_TARGET = 1.15


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _loss_fn(variant: str, device: str, chunk_size: int):
    import torch.nn.functional as F

    if variant == "naive":

        def naive(h, w, t, tw):
            # Full [N, V] logits in fp32, as a plain training loop computes them.
            return (F.cross_entropy(h @ w.t(), t, reduction="none") * tw).sum()

        return naive
    if variant == "chunked":
        from cj2.losses.chunked import chunked_weighted_nll

        return lambda h, w, t, tw: chunked_weighted_nll(h, w, t, tw, chunk_size=chunk_size)
    if variant == "cce":
        from cj2.losses.chunked import cce_weighted_nll

        impl = "cce" if device == "cuda" else "torch_compile"
        return lambda h, w, t, tw: cce_weighted_nll(h, w, t, tw, impl=impl)
    if variant == "liger":
        from cj2.losses.chunked import liger_weighted_nll

        return liger_weighted_nll
    raise ValueError(f"unknown variant {variant!r}")


def worker(args: argparse.Namespace) -> dict:
    """One variant at one sequence length; returns its measurements."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    n = args.seq
    hidden = (torch.randn(n, args.hidden, device=dev) * 0.5).requires_grad_()
    weight = (torch.randn(args.vocab, args.hidden, device=dev) * 0.02).requires_grad_()
    targets = torch.randint(0, args.vocab, (n,), device=dev)
    token_weights = torch.full((n,), 1.0 / n, device=dev)
    loss_fn = _loss_fn(args.variant, args.device, args.chunk_size)

    def step(h, w, t, tw) -> float:
        h.grad = None
        w.grad = None
        loss = loss_fn(h, w, t, tw)
        loss.backward()
        return float(loss)  # synchronises on CUDA

    # Warm-up on a small problem: BLAS/OpenMP thread pools, code pages, kernel compilation (cce).
    # Each full-size pass then pays its own page faults, as every step of a training loop does.
    small = min(args.warmup_seq, n)
    for _ in range(args.warmup):
        step(hidden.detach()[:small].clone().requires_grad_(), weight, targets[:small], token_weights[:small])
    weight.grad = None

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        method = "CUDA max_memory_allocated"
    else:
        method = "clear_refs+VmHWM" if _reset_hwm() else "VmHWM-VmRSS(inputs)"
        base = _status_kb("VmRSS") * 1024

    times = []
    loss_value = float("nan")
    for _ in range(args.reps):
        t0 = time.perf_counter()
        loss_value = step(hidden, weight, targets, token_weights)
        times.append(time.perf_counter() - t0)

    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kb("VmHWM") * 1024 - base
    return {
        "variant": args.variant,
        "seq": n,
        "peak_bytes": peak,
        "time_s": statistics.median(times),
        "times": times,
        "loss": loss_value,
        "method": method,
    }


def _reps(reps: int | None, seq: int) -> int:
    return reps if reps is not None else (2 if seq <= 4096 else 1)


def _available(variant: str, device: str) -> str | None:
    """None if the variant can run here, else why not."""
    import importlib.util

    if variant == "cce" and importlib.util.find_spec("cut_cross_entropy") is None:
        return "cut-cross-entropy not installed"
    if variant == "liger":
        if device != "cuda":
            return "Liger-Kernel needs CUDA"
        if importlib.util.find_spec("liger_kernel") is None:
            return "liger-kernel not installed"
    return None


def _machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name()}"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seqs", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--variants", nargs="+", default=["naive", "chunked", "cce", "liger"])
    p.add_argument("--vocab", type=int, default=VOCAB)
    p.add_argument("--hidden", type=int, default=HIDDEN)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--chunk-size", type=int, default=None, help="rows per chunk (default: the library's)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--warmup-seq", type=int, default=256)
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help="timed passes per process (default: 2 up to 4,096 rows, else 1)",
    )
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per variant and length")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.chunk_size is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from cj2.losses.chunked import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    runs: list[dict] = []
    skipped: dict[str, str] = {}
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[2])] + [x for x in [os.environ.get("PYTHONPATH")] if x]
        ),
    )
    variants = []
    for variant in args.variants:
        why_not = _available(variant, args.device)
        if why_not:
            skipped[variant] = why_not
        else:
            variants.append(variant)
    for seq in args.seqs:
        for rnd in range(args.rounds):
            # Alternate the order (A B, B A, ...) so that a drift in the machine's load hits all variants.
            for variant in variants if rnd % 2 == 0 else variants[::-1]:
                if variant in skipped:
                    continue
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--variant",
                    variant,
                    "--seq",
                    str(seq),
                    "--vocab",
                    str(args.vocab),
                    "--hidden",
                    str(args.hidden),
                    "--device",
                    args.device,
                    "--chunk-size",
                    str(args.chunk_size),
                    "--warmup",
                    str(args.warmup),
                    "--warmup-seq",
                    str(args.warmup_seq),
                    "--reps",
                    str(_reps(args.reps, seq)),
                    "--threads",
                    str(args.threads),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"{variant} seq={seq} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    skipped[variant] = f"failed (exit {proc.returncode})"
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                runs.append(res)
                print(
                    f"# {variant:8s} seq={seq:5d} peak={res['peak_bytes'] / 2**20:8.0f} MiB "
                    f"times={' '.join(f'{t:.2f}' for t in res['times'])}s loss={res['loss']:.6f}",
                    file=sys.stderr,
                    flush=True,
                )

    # One row per (seq, variant): the largest peak and the median of every timed pass of its rounds.
    results = []
    for seq in args.seqs:
        for variant in variants:
            mine = [r for r in runs if r["seq"] == seq and r["variant"] == variant]
            if mine:
                times = [t for r in mine for t in r["times"]]
                results.append(
                    {
                        "variant": variant,
                        "seq": seq,
                        "peak_bytes": max(r["peak_bytes"] for r in mine),
                        "time_s": statistics.median(times),
                        "times": times,
                        "loss": mine[-1]["loss"],
                        "method": mine[-1]["method"],
                    }
                )

    print(
        f"\nMachine: {_machine(args.device)}; device {args.device}, {args.threads} threads, fp32, "
        f"vocab {args.vocab:,}, hidden {args.hidden}, batch 1, chunk_size {args.chunk_size}. "
        f"Time = median of {args.rounds} fresh processes per variant (order alternated) x "
        f"{' / '.join(f'{_reps(args.reps, q)} at {q}' for q in args.seqs)} timed passes, after "
        f"{args.warmup} warm-up pass on {args.warmup_seq} rows; load average "
        f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end."
    )
    methods = sorted({r["method"] for r in results})
    print(f"Peak = memory above the inputs ({', '.join(methods)}).\n")
    print("| seq | variant | peak MiB | peak / naive | time s | time / naive | target (peak / time) | loss |")
    print("|---:|---|---:|---:|---:|---:|---|---:|")
    ok = True
    for seq in args.seqs:
        base = next((r for r in results if r["seq"] == seq and r["variant"] == "naive"), None)
        for r in (r for r in results if r["seq"] == seq):
            mem_ratio = time_ratio = "n/a"
            target = ""
            if base is not None:
                m = r["peak_bytes"] / base["peak_bytes"]
                t = r["time_s"] / base["time_s"]
                mem_ratio, time_ratio = f"{m:.3f}", f"{t:.2f}"
                if r["variant"] != "naive" and seq in TARGETS:
                    good = m <= TARGETS[seq] and t <= TIME_TARGET
                    target = f"≤{TARGETS[seq]:.2f} / ≤{TIME_TARGET}: {'met' if good else 'MISSED'}"
                    ok = ok and (good or r["variant"] != "chunked")
            print(
                f"| {seq} | {r['variant']} | {r['peak_bytes'] / 2**20:,.0f} | {mem_ratio} | "
                f"{r['time_s']:.2f} | {time_ratio} | {target} | {r['loss']:.6f} |"
            )
    for variant, why in skipped.items():
        print(f"\n{variant}: skipped ({why})")
    print(f"\nTotal wall time {time.perf_counter() - started:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
