"""The matmul peak and the CPU facts that every utilisation figure of experiments/perf is divided by.

One copy, used by ``train_throughput.py`` (MFU of training), ``sampling_throughput.py`` (decode
utilisation) and ``gpu_check.py``: the peak is measured on the machine at hand, in the same run as the
throughput it is compared with (a shared machine's load moves both), as the best of several
``n x n @ n x n`` products (``2 n^3`` FLOP each) after a warm-up.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

import torch

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def matmul_peak(
    device: str | torch.device = "cpu",
    dtypes: tuple[str, ...] = ("bf16", "fp32"),
    n: int = 2048,
    repeats: int = 8,
) -> dict[str, float]:
    """FLOP/s of the best of ``repeats`` timed ``n x n`` matmuls per dtype (``"bf16"``, ``"fp32"``), with the
    current thread count."""
    device = torch.device(device)
    out: dict[str, float] = {}
    for name in dtypes:
        a = torch.randn(n, n, device=device).to(DTYPES[name])
        b = torch.randn(n, n, device=device).to(DTYPES[name])
        for _ in range(2):
            a @ b
        best = 0.0
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
        out[name] = best
    return out


def cpuinfo(key: str) -> str:
    """The value of the first ``key`` line of /proc/cpuinfo ("" where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return ""


def matrix_features(device: str = "cpu") -> str:
    """The CPU flags that bound the bf16 peak: with AVX-512 BF16 alone (no AMX) a bf16 dot product does two
    products per fp32 lane, so bf16 matmuls reach at most about 2x the fp32 rate; AMX tiles reach far more;
    with neither (AVX2 only) bf16 is emulated and far slower than fp32."""
    if device != "cpu":
        return "n/a (not a CPU)"
    flags = set(cpuinfo("flags").split())
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags]
    if found:
        return ", ".join(found)
    if "avx512f" in flags:
        return "AVX-512 without bf16 (no avx512_bf16 / amx_bf16)"
    if "avx2" in flags:
        return "AVX2 only (no avx512_bf16 / amx_bf16)"
    return "none of avx512_bf16 / amx_bf16 (or no /proc/cpuinfo)"


def machine(device: str = "cpu") -> str:
    """CPU model, cores, torch version and thread count (and the GPU on CUDA), for the printed header."""
    cpu = cpuinfo("model name") or platform.processor() or platform.machine()
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device == "cuda":
        text += f", {torch.cuda.get_device_name()}"
    return text
