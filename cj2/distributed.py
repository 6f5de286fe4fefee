"""Sharded training: FSDP2 (``torch.distributed.fsdp.fully_shard``) through Lightning's ModelParallelStrategy.

``trainer=fsdp`` builds :class:`FSDP2Strategy` (:func:`fsdp_strategy`). The same code runs on GPUs (NCCL)
and on CPU processes (gloo), which is how the tests check it. Each decoder layer is its own FSDP unit (and
activation-checkpointing unit); the causal LM itself is the root unit, holding the embeddings, the final
norm and the output layer (tied or not). :meth:`cj2.module.JudgeModule.configure_model` asks the strategy
to shard the model; the module then runs the root's forward (so FSDP gathers and frees the parameters and
reduce-scatters the gradients) and reads the output-layer weight while the root still holds it unsharded.

Helpers every rank calls together: :func:`gathered` (full parameters on every rank for the in-loop
evaluations) and :func:`full_state_dict` (the export).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

_DTYPES = {
    None: None,
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def is_decoder_layer(module: torch.nn.Module) -> bool:
    """A transformer block of any HF decoder (LlamaDecoderLayer, Qwen2DecoderLayer, ...)."""
    name = type(module).__name__
    return name.endswith("DecoderLayer") or name.endswith("Block") and "Attention" not in name


def _dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if isinstance(name, torch.dtype) or name is None:
        return name
    if str(name) not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(k for k in _DTYPES if k)}")
    return _DTYPES[str(name)]


def is_fsdp2(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or a module inside it) was sharded with ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def shard_model(
    model: torch.nn.Module,
    mesh: Any = None,
    *,
    param_dtype: str | torch.dtype | None = None,
    reduce_dtype: str | torch.dtype | None = None,
    activation_checkpointing: bool = True,
    reshard_after_forward: bool = True,
) -> torch.nn.Module:
    """Shard ``model`` in place: every decoder layer (:func:`is_decoder_layer`) an FSDP2 unit, wrapped in
    activation checkpointing when asked, then the whole model as the root unit. Idempotent.

    ``param_dtype``/``reduce_dtype`` (e.g. ``bfloat16``/``float32``) form the MixedPrecisionPolicy: the
    sharded parameters and the optimizer stay in their own dtype, the gathered ones are cast to
    ``param_dtype`` for compute and gradients are reduced in ``reduce_dtype``.
    """
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    if isinstance(model, FSDPModule):
        return model
    skeleton_of(model, create=True)  # before sharding: what export rebuilds the full model into
    policy = MixedPrecisionPolicy(param_dtype=_dtype(param_dtype), reduce_dtype=_dtype(reduce_dtype))
    layers = [m for m in model.modules() if is_decoder_layer(m)]
    if not layers:
        raise ValueError(f"no decoder layers found in {type(model).__name__} to shard")
    if activation_checkpointing and not _hf_checkpointing(model):
        from torch.distributed._composable import checkpoint

        for layer in layers:
            checkpoint(layer)  # composable: no wrapper module, so parameter names do not change
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    model.__dict__["_cj2_reshard_after_forward"] = bool(reshard_after_forward)
    return model


def _hf_checkpointing(model: torch.nn.Module) -> bool:
    from cj2.models.loading import is_checkpointing

    return bool(is_checkpointing(model))


def skeleton_of(model: torch.nn.Module, *, create: bool = False) -> torch.nn.Module | None:
    """An unsharded copy of ``model``'s structure with its parameters on the meta device (no memory),
    buffers copied: :func:`full_model` loads a gathered state dict into it. Made before sharding, kept
    outside the module tree (no parameters, no state dict entries)."""
    if create and "_cj2_skeleton" not in model.__dict__:
        memo = {id(p): torch.nn.Parameter(p.detach().to("meta"), p.requires_grad) for p in model.parameters()}
        model.__dict__["_cj2_skeleton"] = copy.deepcopy(model, memo)
    return model.__dict__.get("_cj2_skeleton")


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of a sharded ``model``, on CPU, on rank 0 (empty elsewhere).
    A collective: EVERY rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_model(model: torch.nn.Module) -> torch.nn.Module | None:
    """A plain, unsharded CPU copy of a sharded ``model`` with its current weights on rank 0 (``None`` on
    the other ranks); PEFT adapters stay adapters. A collective: EVERY rank must call it."""
    state = full_state_dict(model)
    if torch.distributed.get_rank() != 0:
        return None
    skeleton = skeleton_of(model)
    if skeleton is None:
        raise RuntimeError("full_model needs a model sharded with cj2.distributed.shard_model")
    plain = copy.deepcopy(skeleton)
    missing, unexpected = plain.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise RuntimeError(f"gathered weights the model does not have: {unexpected[:5]}")
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    still_meta = [n for n, p in plain.named_parameters() if p.is_meta]
    if still_meta:
        raise RuntimeError(f"weights missing from the gathered state dict: {still_meta[:5]} ({missing[:5]})")
    return plain


@contextlib.contextmanager
def gathered(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Full parameters on every rank for the duration (a sharded model's forward then needs no collective,
    so each rank may run any number of forward passes or none); resharded on exit. A collective: EVERY rank
    must enter it. A model that is not sharded with FSDP2 passes through."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units:
        yield model
        return
    root, layers = units[0], units[1:]
    reshard = bool(model.__dict__.get("_cj2_reshard_after_forward", True))
    for m in layers:
        m.set_reshard_after_forward(False, recurse=False)
    try:
        # One forward pass gathers every unit (and initialises the root on the first call), the same on
        # every rank; with resharding off the units stay gathered.
        device = next(p.device for p in root.parameters())
        was_training = root.training
        root.eval()
        with torch.no_grad():
            root(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device), use_cache=False)
        root.train(was_training)
        for m in units:
            m.unshard()  # a no-op for gathered units
        yield model
    finally:
        for m in layers:
            m.set_reshard_after_forward(reshard, recurse=False)
        for m in units:
            m.reshard()


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ModelParallelStrategy as plain fully sharded data parallelism: every process is a
    data-parallel rank (no tensor parallelism) and :meth:`shard_module` applies :func:`shard_model`
    with this strategy's settings (called from ``LightningModule.configure_model``)."""

    def __init__(
        self,
        param_dtype: str | None = None,
        reduce_dtype: str | None = None,
        activation_checkpointing: bool = True,
        reshard_after_forward: bool = True,
        save_distributed_checkpoint: bool = False,
        **kwargs,
    ):
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            **kwargs,
        )
        self.param_dtype = _dtype(param_dtype)
        self.reduce_dtype = _dtype(reduce_dtype)
        self.activation_checkpointing = bool(activation_checkpointing)
        self.reshard_after_forward = bool(reshard_after_forward)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def shard_module(self, model: torch.nn.Module) -> torch.nn.Module:
        return shard_model(
            model,
            self.device_mesh["data_parallel"],
            param_dtype=self.param_dtype,
            reduce_dtype=self.reduce_dtype,
            activation_checkpointing=self.activation_checkpointing,
            reshard_after_forward=self.reshard_after_forward,
        )


def fsdp_strategy(
    param_dtype: str | None = None,
    reduce_dtype: str | None = None,
    activation_checkpointing: bool = True,
    reshard_after_forward: bool = True,
    save_distributed_checkpoint: bool = False,
    **kwargs,
):
    """FSDP2 (``fully_shard``) through Lightning's ModelParallelStrategy, decoder layers as wrap units and
    as activation-checkpointing units; ``nccl`` on GPUs, ``gloo`` on CPU.

    ``param_dtype``/``reduce_dtype``: the mixed-precision policy (``bfloat16``/``float32`` on GPUs; null
    keeps the weights' dtype). ``reshard_after_forward``: true frees each layer's gathered weights after its
    forward (ZeRO-3, FULL_SHARD), false keeps them to the backward (ZeRO-2-like, SHARD_GRAD_OP).
    ``save_distributed_checkpoint``: false gathers one full ``last.ckpt`` file on rank 0 (written atomically,
    loadable without the strategy); true writes a folder with one shard per rank (no full copy anywhere).
    """
    return FSDP2Strategy(
        param_dtype=param_dtype,
        reduce_dtype=reduce_dtype,
        activation_checkpointing=activation_checkpointing,
        reshard_after_forward=reshard_after_forward,
        save_distributed_checkpoint=save_distributed_checkpoint,
        **kwargs,
    )


def shards_weights(strategy: Any) -> bool:
    """Whether ``strategy`` shards the parameters (FSDP, DeepSpeed ZeRO-3, model parallel)."""
    name = type(strategy).__name__
    return any(s in name for s in ("FSDP", "DeepSpeed", "ModelParallel"))
