"""One self-contained check of cj2's GPU paths; prints a table (run through ``gpu_check.sh``).

Needs torch only; uses ``transformers``, ``flash_attn``, ``lightning`` and cj2 itself (from the repository,
via PYTHONPATH) where they import, and marks a check SKIP where they do not. No network, no Hydra, no wandb,
no tokenizer: the models are tiny random decoders built from a config, fed random token ids.

Checks (issue "Performance", item "GPU readiness"):

1. ``environment``: versions, device, bf16 support.
2. ``bf16 forward/backward``: a bf16 model and bf16 autocast (Lightning's ``bf16-mixed``) against fp32.
3. ``sdpa == eager``: the attention kernels agree (fp32).
4. ``packed rows, sdpa``: a padding-free row (``cj2.data.packing``) equals the samples run one by one.
5. ``flash_attention_2``: padded batches and packed (varlen) rows against sdpa, when flash-attn is installed.
6. ``chunked CE vs naive``: ``cj2.losses.ce.weighted_nll`` at Qwen2.5's vocabulary (151,936) and hidden 896:
   loss, gradients, peak memory and time, fp32 and bf16 inputs.
7. ``FSDP, 1 process``: ``torch.distributed`` with world size 1, decoder layers as wrap units
   (``cj2.distributed.is_decoder_layer``), bf16 mixed precision, activation checkpointing, the cj2
   objective computed inside the wrapped forward; a full state dict saved as a plain HF folder that reloads.
8. ``Lightning FSDP + JudgeModule``: ``cj2.distributed.fsdp_strategy`` (FSDP2 through Lightning's
   ModelParallelStrategy, bf16 params, fp32 reduce) with cj2's LightningModule, a few steps, a sharded
   (per-rank) checkpoint, consolidated and exported with ``cj2.models.export.export_hf``. On CPU the same
   strategy is tested on 2 gloo processes by ``tests/test_sharded.py``.

9. ``training utilisation (MFU)``: tokens/s of cj2's training step on a Qwen2.5-0.5B-shaped random model
   (flash-attention when installed, bf16 autocast, chunked loss, fused AdamW) as a share of the bf16 matmul
   peak measured in the same run (goal >= 45% on one H100/H200-class GPU).
10. ``decode throughput (cj2 sampler vs vLLM)``: cj2's hf sampler (continuous batching, and the legacy
   ``generate`` path) at batch 64 and 256 in bf16 on a random SmolLM2-135M-shaped model, its decode
   utilisation, and vLLM on the same weights when installed.

With one GPU FSDP runs as NO_SHARD (torch switches to it at world size 1): wrapping, mixed precision,
checkpointing and state-dict gathering are exercised, cross-GPU sharding is not.

``--cpu``: a dry run of the same checks on the CPU with smaller sizes (gloo instead of NCCL; the CUDA-only
checks SKIP), so the script itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import math
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak.py, sampling_throughput.py beside this file
from peak import matmul_peak  # noqa: E402

IGNORE = -100


class Skip(Exception):
    """A check that cannot run here (missing package, no CUDA); not a failure."""


@dataclass
class Ctx:
    device: torch.device
    cpu: bool
    tmp: Path
    # model and batch sizes: small in the CPU dry run, still seconds on a GPU
    vocab: int = 32_000
    hidden: int = 256
    layers: int = 4
    heads: int = 8
    kv_heads: int = 4
    batch: int = 4
    seq: int = 512
    loss_vocab: int = 151_936
    loss_hidden: int = 896
    loss_rows: int = 4096
    notes: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


CHECKS: list[tuple[str, Callable[[Ctx], str]]] = []


def check(name: str) -> Callable[[Callable[[Ctx], str]], Callable[[Ctx], str]]:
    def register(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        CHECKS.append((name, fn))
        return fn

    return register


# --no-transformers hides it, so the fallback model path is tested on a machine that has it
HIDDEN: set[str] = set()


def _has(module: str) -> bool:
    return module not in HIDDEN and importlib.util.find_spec(module) is not None


def _need(module: str) -> Any:
    if not _has(module):
        raise Skip(f"{module} is not installed")
    return importlib.import_module(module)


def _sync(ctx: Ctx) -> None:
    if ctx.cuda:
        torch.cuda.synchronize()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


# ------------------------------------------------------------------------------------------- models
class TinyDecoderLayer(nn.Module):
    """Pre-norm attention + MLP block; the fallback model when transformers is not installed."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.out = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, h)
        x = x + self.out(a)
        return x + self.mlp(self.norm2(x))


class TinyBody(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(TinyDecoderLayer(hidden, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class TinyCausalLM(nn.Module):
    """``model`` (hidden states) + tied ``lm_head``, the shape of an HF causal LM."""

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int):
        super().__init__()
        self.model = TinyBody(vocab, hidden, layers, heads)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight
        nn.init.normal_(self.lm_head.weight, std=0.02)  # logits of order 1 at the start, as in HF models

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> Any:
        logits = self.lm_head(self.model(input_ids))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE
            )
        return type("Out", (), {"loss": loss, "logits": logits})()


def _hf_config(ctx: Ctx) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=ctx.vocab,
        hidden_size=ctx.hidden,
        intermediate_size=ctx.hidden * 8 // 3,
        num_hidden_layers=ctx.layers,
        num_attention_heads=ctx.heads,
        num_key_value_heads=ctx.kv_heads,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    )


def build_model(ctx: Ctx, attn: str = "sdpa", dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    """A seeded tiny Llama (transformers) or, without transformers, :class:`TinyCausalLM`."""
    torch.manual_seed(seed)
    if _has("transformers"):
        from transformers import AutoModelForCausalLM

        # Initialised in fp32 whatever the dtype, so every variant of a seed has the same weights; flash-attn
        # refuses fp32 at construction, so it is switched on after the cast.
        flash = attn.startswith("flash")
        model = AutoModelForCausalLM.from_config(
            _hf_config(ctx), attn_implementation="sdpa" if flash else attn, dtype=torch.float32
        )
        model = model.to(device=ctx.device, dtype=dtype)
        if flash:
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(attn)
            else:
                model.config._attn_implementation = attn
            _expect(model.config._attn_implementation == attn, f"could not switch to {attn}")
        return model
    if attn != "sdpa":
        raise Skip("needs transformers (attention implementations)")
    return TinyCausalLM(ctx.vocab, ctx.hidden, ctx.layers, ctx.heads).to(device=ctx.device, dtype=dtype)


def judge_batch(ctx: Ctx, rows: int, seq: int, seed: int = 1) -> dict[str, Any]:
    """Random ids shaped like judge samples: first half prompt (-100), a verdict token near the end."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, ctx.vocab, (rows, seq), generator=gen)
    labels = ids.clone()
    labels[:, : seq // 2] = IGNORE
    k = torch.full((rows,), seq - 3)
    target = ids[torch.arange(rows), k]
    other = (target + 1) % ctx.vocab
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "verdict_index": k,
        "verdict_target": target,
        "verdict_candidates": torch.stack([target, other], 1),
    }
    return {key: v.to(ctx.device) for key, v in batch.items()}


# ------------------------------------------------------------------------------------------- checks
@check("environment")
def check_environment(ctx: Ctx) -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    if ctx.cuda:
        cap = torch.cuda.get_device_capability()
        parts += [
            torch.cuda.get_device_name(),
            f"sm_{cap[0]}{cap[1]}",
            f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB",
            f"bf16={torch.cuda.is_bf16_supported()}",
            f"cuda {torch.version.cuda}",
        ]
    else:
        parts.append("CPU dry run")
    for name in ("transformers", "flash_attn", "lightning", "peft", "cj2"):
        if name in HIDDEN:
            parts.append(f"{name} hidden")
            continue
        try:
            parts.append(f"{name} {getattr(importlib.import_module(name), '__version__', 'ok')}")
        except Exception:  # noqa: BLE001 - only reporting what imports
            parts.append(f"{name} -")
    return ", ".join(parts)


@check("bf16 forward/backward")
def check_bf16(ctx: Ctx) -> str:
    if ctx.cuda and not torch.cuda.is_bf16_supported():
        raise Skip("this GPU has no bf16")
    batch = judge_batch(ctx, ctx.batch, ctx.seq)
    fp32 = build_model(ctx)
    ref = fp32(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    ref.backward()
    out = {"fp32": ref.item()}
    # bf16 weights (bf16-true) and bf16 autocast over fp32 weights (Lightning's bf16-mixed)
    half = build_model(ctx, dtype=torch.bfloat16)
    start = time.perf_counter()
    loss = half(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    loss.backward()
    _sync(ctx)
    out["bf16"] = loss.item()
    grads_ok = all(torch.isfinite(p.grad).all() for p in half.parameters() if p.grad is not None)
    fp32.zero_grad()
    with torch.autocast(ctx.device.type, dtype=torch.bfloat16):
        mixed = fp32(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    mixed.backward()
    out["bf16-mixed"] = mixed.item()
    grads_ok &= all(torch.isfinite(p.grad).all() for p in fp32.parameters() if p.grad is not None)
    seconds = time.perf_counter() - start
    _expect(grads_ok, "non-finite gradients")
    for key in ("bf16", "bf16-mixed"):
        _expect(
            abs(out[key] - out["fp32"]) < 0.02 * out["fp32"], f"{key} loss {out[key]} vs fp32 {out['fp32']}"
        )
    return (
        ", ".join(f"{k} {v:.4f}" for k, v in out.items())
        + f" ({ctx.batch}x{ctx.seq} tokens, {seconds:.2f} s)"
    )


@check("sdpa == eager (fp32)")
def check_sdpa_eager(ctx: Ctx) -> str:
    _need("transformers")
    batch = judge_batch(ctx, ctx.batch, ctx.seq)
    batch["attention_mask"][1, ctx.seq // 2 :] = 0  # one right-padded row
    logits = {}
    with torch.no_grad():
        for attn in ("sdpa", "eager"):
            model = build_model(ctx, attn=attn).eval()
            logits[attn] = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    diff = _max_diff(logits["sdpa"][real], logits["eager"][real])
    _expect(diff < 1e-3, f"max |sdpa - eager| = {diff:.2e}")
    return f"max abs logit diff {diff:.1e} (one row right-padded)"


def _packed_vs_separate(ctx: Ctx, attn: str, dtype: torch.dtype) -> tuple[float, float]:
    """Max |hidden diff| of a packed row vs each sample alone, and the max |hidden| (for scale)."""
    from cj2.data.collator import EncodedSample
    from cj2.data.packing import PackedCollator, sample_slices

    gen = torch.Generator().manual_seed(3)
    lengths = [ctx.seq // 2, ctx.seq // 3, ctx.seq // 5, ctx.seq // 4]
    samples = []
    for i, n in enumerate(lengths):
        ids = torch.randint(0, ctx.vocab, (n,), generator=gen).tolist()
        samples.append(EncodedSample(id=f"s{i}", input_ids=ids, labels=[IGNORE] * (n // 2) + ids[n // 2 :]))
    packed = {k: v.to(ctx.device) if torch.is_tensor(v) else v for k, v in PackedCollator(0)(samples).items()}
    model = build_model(ctx, attn=attn, dtype=dtype).eval()
    decoder = model.get_decoder()
    with torch.no_grad():
        hidden = decoder(
            input_ids=packed["input_ids"],
            position_ids=packed["position_ids"],
            attention_mask=None,
            use_cache=False,
        ).last_hidden_state
        worst = scale = 0.0
        for s, piece in zip(samples, sample_slices(packed, hidden)):
            alone = decoder(
                input_ids=torch.tensor([s.input_ids], device=ctx.device), use_cache=False
            ).last_hidden_state[0]
            worst = max(worst, _max_diff(piece, alone))
            scale = max(scale, float(alone.float().abs().max()))
    return worst, scale


@check("packed rows, sdpa (fp32)")
def check_packed_sdpa(ctx: Ctx) -> str:
    _need("transformers")
    diff, scale = _packed_vs_separate(ctx, "sdpa", torch.float32)
    _expect(diff < 1e-3, f"packed vs separate: max |diff| {diff:.2e}")
    return f"4 samples in one row vs one by one: max abs hidden diff {diff:.1e} (max abs hidden {scale:.1f})"


@check("flash_attention_2 (bf16)")
def check_flash(ctx: Ctx) -> str:
    if not ctx.cuda:
        raise Skip("flash-attn needs CUDA")
    _need("transformers")
    _need("flash_attn")
    batch = judge_batch(ctx, ctx.batch, ctx.seq)
    batch["attention_mask"][1, ctx.seq // 2 :] = 0
    real = batch["attention_mask"].bool()
    logits = {}
    with torch.no_grad():
        for attn in ("sdpa", "flash_attention_2"):
            model = build_model(ctx, attn=attn, dtype=torch.bfloat16).eval()
            logits[attn] = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    padded = _max_diff(logits["sdpa"][real], logits["flash_attention_2"][real])
    scale = float(logits["sdpa"][real].float().abs().max())
    varlen, hscale = _packed_vs_separate(ctx, "flash_attention_2", torch.bfloat16)
    _expect(padded < 0.05 * scale, f"padded batch: max |flash - sdpa| {padded:.3f} of |logits| {scale:.1f}")
    _expect(varlen < 0.05 * hscale, f"packed varlen row vs separate: {varlen:.3f} of |hidden| {hscale:.1f}")
    return (
        f"padded batch vs sdpa: max abs diff {padded:.3f} (max abs logit {scale:.1f}); packed varlen row "
        f"vs separate: {varlen:.3f} (max abs hidden {hscale:.1f})"
    )


def _loss_run(
    ctx: Ctx, impl: str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    from cj2.losses.ce import weighted_nll

    gen = torch.Generator().manual_seed(7)
    n, h, v = ctx.loss_rows, ctx.loss_hidden, ctx.loss_vocab
    hidden = (torch.randn(n, h, generator=gen) * 0.5).to(ctx.device, dtype).requires_grad_(True)
    weight = (torch.randn(v, h, generator=gen) * 0.05).to(ctx.device, dtype).requires_grad_(True)
    targets = torch.randint(0, v, (n,), generator=gen).to(ctx.device)
    token_weights = torch.full((n,), 1.0 / n, device=ctx.device)
    _sync(ctx)
    if ctx.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    loss = weighted_nll(hidden, weight, targets, token_weights, impl=impl)
    loss.backward()
    _sync(ctx)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if ctx.cuda else float("nan")
    return loss.detach(), hidden.grad, weight.grad, peak, seconds


@check("chunked CE vs naive")
def check_chunked(ctx: Ctx) -> str:
    _need("cj2.losses.ce")
    lines = []
    for dtype, rtol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
        _loss_run(ctx, "chunked", dtype)  # warm-up (kernels, allocator)
        naive = _loss_run(ctx, "naive", dtype)
        chunked = _loss_run(ctx, "chunked", dtype)
        rel = abs(float(chunked[0]) - float(naive[0])) / abs(float(naive[0]))
        g_h = _max_diff(chunked[1], naive[1]) / max(float(naive[1].float().abs().max()), 1e-30)
        g_w = _max_diff(chunked[2], naive[2]) / max(float(naive[2].float().abs().max()), 1e-30)
        name = str(dtype).removeprefix("torch.")
        _expect(
            rel < rtol and g_h < 10 * rtol and g_w < 10 * rtol,
            f"{name}: loss rel {rel:.1e}, grad_hidden rel {g_h:.1e}, grad_weight rel {g_w:.1e}",
        )
        mem = f"peak {chunked[3]:.0f} vs {naive[3]:.0f} MiB, " if ctx.cuda else ""
        lines.append(
            f"{name}: loss rel {rel:.0e}, grads rel {max(g_h, g_w):.0e}, {mem}"
            f"{chunked[4] * 1e3:.0f} vs {naive[4] * 1e3:.0f} ms"
        )
    return f"N={ctx.loss_rows} V={ctx.loss_vocab} H={ctx.loss_hidden}; " + "; ".join(lines)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _LossModule(nn.Module):
    """The cj2 pattern: the objective runs inside the wrapped module's forward, where FSDP has gathered
    the root parameters (embeddings / lm_head)."""

    def __init__(self, model: nn.Module, objective: Any):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        hidden = self.model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = hidden if torch.is_tensor(hidden) else hidden.last_hidden_state
        return self.objective(hidden, self.model.lm_head.weight, batch)["loss"]


@check("FSDP, 1 process (torch.distributed)")
def check_fsdp(ctx: Ctx) -> str:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing
    from torch.distributed.fsdp import FullStateDictConfig, MixedPrecision, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    from cj2.distributed import is_decoder_layer
    from cj2.losses import build_objective

    hf = _has("transformers")
    backend = "nccl" if ctx.cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        model = build_model(ctx, seed=5)
        reference = {k: v.detach().clone() for k, v in model.state_dict().items()}
        wrapped = _LossModule(model, build_objective({"name": "margin", "impl": "chunked"}))
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)
        mp = MixedPrecision(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16
        )
        fsdp = FSDP(
            wrapped,
            auto_wrap_policy=policy,
            mixed_precision=mp,
            use_orig_params=True,
            device_id=torch.device("cuda", torch.cuda.current_device()) if ctx.cuda else torch.device("cpu"),
        )
        apply_activation_checkpointing(fsdp, check_fn=is_decoder_layer)
        units = sum(isinstance(m, FSDP) for m in fsdp.modules())
        _expect(units == ctx.layers + 1, f"{units} FSDP units, expected {ctx.layers} decoder layers + root")
        opt = torch.optim.AdamW(fsdp.parameters(), lr=1e-3)
        batch = judge_batch(ctx, ctx.batch, ctx.seq)
        losses = []
        for _ in range(4):
            opt.zero_grad()
            loss = fsdp(batch)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        _expect(all(map(math.isfinite, losses)) and losses[-1] < losses[0], f"losses {losses}")
        cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
        with FSDP.state_dict_type(fsdp, StateDictType.FULL_STATE_DICT, cfg):
            full = fsdp.state_dict()
        plain = build_model(ctx, seed=6).cpu()
        full = _plain_weights(full, plain)
        changed = sum(not torch.equal(full[k], v.cpu()) for k, v in reference.items() if k in full)
        _expect(changed > 0, "no weight changed")
        # the sharded (distributed checkpoint) route, consolidated offline into one state dict
        with FSDP.state_dict_type(fsdp, StateDictType.SHARDED_STATE_DICT):
            dcp.save({"model": fsdp.state_dict()}, checkpoint_id=str(ctx.tmp / "fsdp_sharded"))
        sharded = _plain_weights(_consolidate(ctx.tmp / "fsdp_sharded"), plain)
        _expect(
            sharded.keys() == full.keys() and all(torch.equal(sharded[k], full[k]) for k in full),
            "the consolidated sharded checkpoint differs from the full state dict",
        )
        detail = (
            f"{units} units, losses {losses[0]:.3f} -> {losses[-1]:.3f}, {changed} tensors updated; "
            f"sharded checkpoint consolidates to the full state dict"
        )
        if hf:
            detail += "; " + _export_and_reload(ctx, plain, full, "fsdp_hf")
        if not ctx.cuda:
            detail += " (gloo, NO_SHARD)"
        return detail
    finally:
        dist.destroy_process_group()


@check("Lightning FSDP + JudgeModule")
def check_lightning_fsdp(ctx: Ctx) -> str:
    if not ctx.cuda:
        raise Skip("CUDA only (on CPU: tests/test_sharded.py, 2 gloo processes)")
    _need("transformers")
    L = _need("lightning")

    from cj2.distributed import fsdp_strategy
    from cj2.module import JudgeModule

    model = build_model(ctx, seed=8).cpu()
    batches = [
        {k: v.cpu() for k, v in judge_batch(ctx, ctx.batch, ctx.seq, seed=s).items()} for s in range(4)
    ]

    class _Batches(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return batches[i]

    module = JudgeModule(
        model, {"name": "margin", "impl": "chunked"}, functools.partial(torch.optim.AdamW, lr=1e-3)
    )
    trainer = L.Trainer(
        accelerator="cuda",
        devices=1,
        strategy=fsdp_strategy(
            param_dtype="bfloat16", reduce_dtype="float32", save_distributed_checkpoint=True
        ),
        precision="32-true",  # bf16 compute from the strategy's MixedPrecisionPolicy, as trainer=fsdp
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=str(ctx.tmp / "lightning"),
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(_Batches(), batch_size=None))
    ckpt = ctx.tmp / "lightning" / "sharded.ckpt"
    trainer.save_checkpoint(ckpt)
    _expect(ckpt.is_dir(), f"{ckpt} is not a sharded (directory) checkpoint")
    plain = build_model(ctx, seed=9).cpu()
    weights = _plain_weights(_consolidate(ckpt), plain)
    n_files = len(list(ckpt.iterdir()))
    return (
        f"4 steps FSDP2 bf16 params, activation checkpointing; sharded checkpoint ({n_files} files) -> "
        f"consolidated -> " + _export_and_reload(ctx, plain, weights, "lightning_hf")
    )


def _consolidate(folder: Path) -> dict[str, Any]:
    """A sharded torch.distributed.checkpoint folder as one in-memory dict (offline, one process)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    single = folder.with_suffix(".consolidated.pt")
    dcp_to_torch_save(str(folder), str(single))
    return torch.load(single, map_location="cpu", weights_only=False)


def _plain_weights(state: dict[str, Any], plain: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors from a wrapped/nested state dict, renamed to ``plain``'s own keys.

    Wrappers add prefixes (the LightningModule's ``model.``, FSDP's and the checkpoint wrapper's names,
    a ``{"model": ...}`` level in distributed checkpoints); the longest suffix that is a key of ``plain``
    wins.
    """
    targets = set(plain.state_dict())
    for section in ("model", "state_dict"):  # skip optimizer states where the weights have their own section
        if isinstance(state.get(section), dict):
            state = state[section]
            break
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif torch.is_tensor(value):
            flat[prefix[:-1]] = value

    walk("", state)
    out: dict[str, torch.Tensor] = {}
    for key, value in flat.items():
        parts = key.replace("_checkpoint_wrapped_module.", "").replace("_fsdp_wrapped_module.", "").split(".")
        for i in range(len(parts)):
            name = ".".join(parts[i:])
            if name in targets:
                out[name] = value.detach().cpu().float()
                break
    _expect(targets - set(out) <= {"lm_head.weight"}, f"missing weights: {sorted(targets - set(out))[:5]}")
    return out


def _export_and_reload(ctx: Ctx, plain: nn.Module, weights: dict[str, torch.Tensor], name: str) -> str:
    """Load ``weights`` into ``plain``, export an HF folder (cj2's export_hf when importable), reload it."""
    from transformers import AutoModelForCausalLM

    plain.load_state_dict(weights, strict=False)
    out = ctx.tmp / name
    try:
        from cj2.models.export import export_hf

        export_hf(plain, _StubTokenizer(), out)
        how = "export_hf"
    except ImportError:
        plain.save_pretrained(out)
        how = "save_pretrained"
    again = AutoModelForCausalLM.from_pretrained(out).state_dict()
    _expect(
        all(torch.equal(again[k].float(), v) for k, v in weights.items()),
        "the exported HF folder does not hold the trained weights",
    )
    return f"{how} folder reloads exactly"


class _StubTokenizer:
    """export_hf saves a tokenizer too; the check has none (no files shipped), so save nothing."""

    def save_pretrained(self, path: Any) -> None:
        Path(path, "NO_TOKENIZER").write_text("gpu_check: random-id model, no tokenizer\n")


# ------------------------------------------------------------------------------------------- main
def measured_peak(device: torch.device, n: int, repeats: int = 10) -> float:
    """The hardware's bf16 matmul peak as measured here (FLOP/s): :func:`peak.matmul_peak`, the helper every
    perf script shares."""
    return matmul_peak(device, ("bf16",), n=n, repeats=repeats)["bf16"]


@check("training utilisation (MFU)")
def check_utilisation(ctx: Ctx) -> str:
    """Model FLOPs utilisation of cj2's training step on a Qwen2.5-0.5B-shaped random model (the dry run: the
    small model) with flash-attention when installed, bf16 autocast over fp32 weights, the chunked loss and
    AdamW: 6 x parameters x tokens per second over the bf16 matmul peak measured just before. Goal on one
    H100/H200-class GPU: >= 45%."""
    _need("transformers")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cj2.module import JudgeModule

    if ctx.cpu:
        config = _hf_config(ctx)
        rows, seq, steps = ctx.batch, ctx.seq, 2
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
        vocab = config.vocab_size
    else:
        vocab = 151_936
        config = Qwen2Config(
            vocab_size=vocab,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
        )
        rows, seq, steps = 8, 2048, 6
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    attn = "flash_attention_2" if ctx.cuda and _has("flash_attn") else "sdpa"
    model = model.to(ctx.device)
    if attn != "sdpa":
        model.set_attn_implementation(attn)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    module = JudgeModule(model, {"name": "margin", "impl": "chunked"})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=ctx.cuda)
    old_vocab, ctx.vocab = ctx.vocab, vocab
    try:
        batches = [judge_batch(ctx, rows, seq, seed=s) for s in range(steps + 1)]
    finally:
        ctx.vocab = old_vocab
    autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16)

    def step(batch: dict[str, Any]) -> None:
        with autocast:
            loss = module.compute_loss(batch, exact_step_norm=False)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up: kernels, allocator, optimizer state
    # the dry run: a small peak matmul (bf16 is emulated, about 0.3 GFLOP/s, on an AVX2-only CPU)
    peak = measured_peak(ctx.device, 8192 if ctx.cuda else 256)
    _sync(ctx)
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    _sync(ctx)
    seconds = time.perf_counter() - start
    tokens = rows * seq * steps
    mfu = 6 * n_params * tokens / seconds / peak
    goal = "" if ctx.cpu else f" (goal >= 45%: {'met' if mfu >= 0.45 else 'NOT met'})"
    return (
        f"{n_params / 1e6:.1f}M params, {attn}, bf16 autocast, {rows}x{seq} tokens x {steps} steps: "
        f"{tokens / seconds:,.0f} tokens/s, {6 * n_params * tokens / seconds / 1e12:.3f} TFLOP/s of a "
        f"measured bf16 peak {peak / 1e12:.2f} TFLOP/s = MFU {100 * mfu:.1f}%{goal}"
    )


@check("decode throughput (cj2 sampler vs vLLM)")
def check_decode(ctx: Ctx) -> str:
    """New tokens/s of cj2's hf sampler (continuous engine, and the legacy ``generate`` path) on a random
    model of SmolLM2-135M's shape in bf16 at sampler batch 64 and 256 (2 batches of rows each: M=4 samples of
    prompts from sampling_throughput.py, 96 new tokens; random weights never stop early), the decode
    utilisation 2 x parameters x tok/s over the bf16 matmul peak measured here, and vLLM on the same
    weights and prompts (``ignore_eos``) when it is installed. The dry run: a tiny model in fp32, batch 4 and
    8, 8 new tokens."""
    _need("transformers")
    try:
        import sampling_throughput  # noqa: F401

        import cj2.generation.hf  # noqa: F401
        from cj2.models import load_tokenizer
    except ImportError as err:
        raise Skip(f"cj2 does not import: {err}") from err
    tokenizer = load_tokenizer("tiny")
    if ctx.cpu:  # a tiny model: a second thread only waits (seconds per step on a busy machine)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _decode_runs(ctx, tokenizer)
        finally:
            torch.set_num_threads(threads)
    return _decode_runs(ctx, tokenizer)


def _decode_runs(ctx: Ctx, tokenizer: Any) -> str:
    from sampling_throughput import SMOLLM2_SHAPE, make_prompts

    from cj2.generation import SamplingParams
    from cj2.generation.hf import HFSampler
    from cj2.models import load_model

    dtype = torch.bfloat16 if ctx.cuda else torch.float32
    shape = (
        SMOLLM2_SHAPE
        if ctx.cuda
        else {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    )
    model = load_model("tiny", dtype=dtype, tokenizer=tokenizer, tiny_config=shape, seed=0)
    model = model.to(ctx.device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    m, max_new = 4, (96 if ctx.cuda else 8)
    batches = (64, 256) if ctx.cuda else (4, 8)
    key = "bf16" if ctx.cuda else "fp32"
    peak = matmul_peak(ctx.device, (key,), n=8192 if ctx.cuda else 256)[key]
    params = SamplingParams(max_new_tokens=max_new, temperature=0.7, seed=0)
    parts = [f"{n_params / 1e6:.1f}M params, {key}, peak {peak / 1e12:.2f} TFLOP/s"]
    workloads = {batch: make_prompts(2 * batch // m, seed=0) for batch in batches}
    for batch, prompts in workloads.items():
        for engine in ("continuous", "legacy"):
            sampler = HFSampler(model, tokenizer, batch_size=batch, engine=engine)
            sampler.generate(prompts[:2], m, SamplingParams(max_new_tokens=4, temperature=0.7))  # warm-up
            _sync(ctx)
            start = time.perf_counter()
            out = sampler.generate(prompts, m, params)
            _sync(ctx)
            seconds = time.perf_counter() - start
            tokens = sum(s.n_tokens for row in out for s in row)
            _expect(tokens == len(prompts) * m * max_new, f"{engine}: {tokens} new tokens, random weights")
            parts.append(
                f"batch {batch} {engine}: {tokens / seconds:,.0f} tok/s "
                f"({100 * 2 * n_params * tokens / seconds / peak:.1f}% of peak)"
            )
    if not ctx.cuda:
        parts.append("vLLM: CUDA only")
    elif not _has("vllm"):
        parts.append("vLLM: not installed")
    else:
        import vllm

        folder = ctx.tmp / "decode-model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        llm = vllm.LLM(
            model=str(folder), dtype="bfloat16", seed=0, max_num_seqs=max(batches), gpu_memory_utilization=0.5
        )
        for batch, prompts in workloads.items():
            texts = [
                tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
            ]
            sp = vllm.SamplingParams(n=m, temperature=0.7, max_tokens=max_new, ignore_eos=True, seed=0)
            llm.generate(texts[:2], vllm.SamplingParams(max_tokens=4), use_tqdm=False)
            start = time.perf_counter()
            outs = llm.generate(texts, sp, use_tqdm=False)
            seconds = time.perf_counter() - start
            tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
            parts.append(
                f"batch {batch} vLLM (max_num_seqs {max(batches)}): {tokens / seconds:,.0f} tok/s "
                f"({100 * 2 * n_params * tokens / seconds / peak:.1f}% of peak)"
            )
        del llm
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU with small sizes")
    parser.add_argument("--only", nargs="*", help="run only checks whose name contains one of these words")
    parser.add_argument(
        "--no-transformers",
        action="store_true",
        help="act as if transformers were not installed (tests the fallback model)",
    )
    args = parser.parse_args(argv)
    if args.no_transformers:
        HIDDEN.add("transformers")
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --cpu for a dry run)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cj2-gpu-check-") as tmp:
        ctx = Ctx(device=torch.device("cpu" if args.cpu else "cuda"), cpu=args.cpu, tmp=Path(tmp))
        if args.cpu:
            ctx.vocab, ctx.hidden, ctx.layers, ctx.heads, ctx.kv_heads = 1024, 64, 2, 4, 2
            ctx.batch, ctx.seq = 2, 64
            ctx.loss_vocab, ctx.loss_hidden, ctx.loss_rows = 4096, 64, 256
        rows, failures = [], []
        for name, fn in CHECKS:
            if args.only and not any(word.lower() in name.lower() for word in args.only):
                continue
            start = time.perf_counter()
            try:
                status, detail = "PASS", fn(ctx)
            except Skip as why:
                status, detail = "SKIP", str(why)
            except Exception as err:  # noqa: BLE001 - every failure is reported, the other checks still run
                status, detail = "FAIL", f"{type(err).__name__}: {err}"
                failures.append((name, traceback.format_exc()))
            seconds = time.perf_counter() - start
            rows.append((name, status, seconds, detail))
            print(f"[{status}] {name} ({seconds:.1f} s): {detail}", flush=True)
            if ctx.cuda:
                torch.cuda.empty_cache()
    print("\n| check | status | s | detail |\n|---|---|---|---|")
    for name, status, seconds, detail in rows:
        print(f"| {name} | {status} | {seconds:.1f} | {detail.replace('|', '/')} |")
    for name, tb in failures:
        print(f"\n--- {name} ---\n{tb}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
