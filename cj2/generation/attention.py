"""Grouped-query attention without copies, for generating on a CPU.

Decoding reads a query of one token against the whole KV cache. On a CPU, PyTorch's fused attention
kernel handles that shape poorly (measured on the 2-core development machine, bf16, 64 sequences x 400
cached tokens x 9 heads: about 50 ms per layer), and the ``eager`` path first copies the key and value
cache once per query head of a group (``repeat_kv``), which costs more than the attention itself.
:func:`grouped_attention` instead folds the query heads of each key/value group into the query axis and
uses two batched matrix products against the cache as it is (about 5 ms for the same shape), with the
same additive mask as ``eager``.

The sampler switches a model to it for the duration of a ``generate`` call (:func:`generation_attention`)
on a CPU, for model types whose attention is plain scaled dot-product attention (Llama, Mistral,
Qwen2/3); other models, and CUDA, keep their own kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

GROUPED = "cj2_grouped"
# Architectures whose attention is exactly softmax(q k^T * scaling + mask) v, with no soft-capping, sinks
# or extra terms, so the grouped path computes the same function as their eager path.
GROUPED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_UNSUPPORTED_KWARGS = ("softcap", "s_aux", "sinks", "sliding_window_softcap")

_registered = False


def grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``softmax(q k^T * scaling + mask) v`` with ``G`` query heads per key/value head, without repeating K/V.

    Shapes as in ``transformers``' attention interface: ``query`` ``(B, H, q, D)``, ``key``/``value``
    ``(B, H_kv, L, D)``, ``attention_mask`` an additive ``(B, 1, q, L)`` mask or None; returns
    ``(B, q, H, D)`` and no weights. Query head ``h`` reads key/value head ``h // G``, as ``repeat_kv`` does.
    Key/value positions beyond the mask's length are masked: the sampler's preallocated cache passes its
    whole buffers, whose tail is not filled yet. The mask interface registered with this function
    (``eager``'s) always provides a mask.
    """
    if attention_mask is None:
        raise ValueError(
            "grouped_attention needs an explicit attention mask (register() pairs it with eager's)"
        )
    if dropout and module.training:
        raise ValueError("grouped_attention is for inference; it applies no dropout")
    for name in _UNSUPPORTED_KWARGS:
        if kwargs.get(name) is not None:
            raise ValueError(f"grouped_attention does not support {name!r}; use the model's own attention")
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    # (B, H, q, D) -> (B, H_kv, G*q, D): the G heads of a group become extra query rows.
    q = query.reshape(batch, kv_heads, groups * q_len, dim)
    scores = torch.matmul(q, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        mask = attention_mask[:, :, :, :kv_len]
        if mask.shape[-1] < kv_len:
            # The sampler's preallocated cache hands over its whole buffers; slots past the mask are not
            # filled yet and must not be attended to.
            mask = torch.nn.functional.pad(
                mask, (0, kv_len - mask.shape[-1]), value=torch.finfo(mask.dtype).min
            )
        scores = (scores.view(batch, kv_heads, groups, q_len, kv_len) + mask.unsqueeze(2)).view(
            batch, kv_heads, groups * q_len, kv_len
        )
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    out = torch.matmul(probs, value)  # (B, H_kv, G*q, D)
    return out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make :data:`GROUPED` a valid ``attn_implementation`` (idempotent); it uses ``eager``'s additive
    mask."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED, grouped_attention)
    AttentionMaskInterface.register(GROUPED, eager_mask)
    _registered = True


def grouped_supported(model: Any) -> bool:
    """Whether :func:`grouped_attention` computes the same function as ``model``'s own attention."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in GROUPED_MODEL_TYPES and hasattr(
        model, "set_attn_implementation"
    )


@contextlib.contextmanager
def generation_attention(model: Any, choice: str, device: torch.device) -> Iterator[str]:
    """Run the body with the attention kernel ``choice`` picks; restore the model's own afterwards.

    ``"auto"``: :data:`GROUPED` on a CPU where :func:`grouped_supported`, else the model's own;
    ``"grouped"``: :data:`GROUPED` (an error if unsupported); ``"model"``: the model's own. Yields the
    implementation in use.
    """
    if choice not in ("auto", "grouped", "model"):
        raise ValueError(f"attention={choice!r}: expected 'auto', 'grouped' or 'model'")
    current = getattr(getattr(model, "config", None), "_attn_implementation", None)
    use = choice == "grouped" or (choice == "auto" and device.type == "cpu" and grouped_supported(model))
    if choice == "grouped" and not grouped_supported(model):
        raise ValueError(
            f"attention='grouped' supports the model types {sorted(GROUPED_MODEL_TYPES)}, not "
            f"{getattr(model.config, 'model_type', '?')!r}"
        )
    if not use or current == GROUPED:
        yield current
        return
    register()
    model.set_attn_implementation(GROUPED)
    try:
        yield GROUPED
    finally:
        model.set_attn_implementation(current)
