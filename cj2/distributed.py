"""Distributed strategies configured without knowing the architecture in advance."""

from __future__ import annotations

import functools

import torch


def is_decoder_layer(module: torch.nn.Module) -> bool:
    """A transformer block of any HF decoder (LlamaDecoderLayer, Qwen2DecoderLayer, ...)."""
    name = type(module).__name__
    return name.endswith("DecoderLayer") or name.endswith("Block") and "Attention" not in name


def fsdp_strategy(
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = True,
    state_dict_type: str = "sharded",
    **kwargs,
):
    """Lightning FSDP with decoder layers as wrap units (and as activation-checkpointing units).

    The objective runs inside ``training_step``, i.e. inside the root FSDP unit's forward, so the output
    layer weight (a root parameter) is gathered when the loss reads it.
    """
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=is_decoder_layer)
    return FSDPStrategy(
        sharding_strategy=sharding_strategy,
        auto_wrap_policy=policy,
        activation_checkpointing_policy=policy if activation_checkpointing else None,
        state_dict_type=state_dict_type,
        **kwargs,
    )
