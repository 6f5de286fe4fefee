"""Causal LMs and tokenizers: the embedded SmolLM2 default, a tiny random model for tests, any HF model."""

from cj2.models.export import export_hf
from cj2.models.loading import (
    CACHE_ENV,
    EMBEDDED,
    TINY,
    ModelNotFoundError,
    apply_peft,
    cache_dir,
    describe,
    embedded_model_dir,
    embedded_tokenizer_dir,
    freeze_bottom_layers,
    is_checkpointing,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_attn_implementation,
    unwrap_model,
)

__all__ = [
    "CACHE_ENV",
    "EMBEDDED",
    "TINY",
    "ModelNotFoundError",
    "apply_peft",
    "cache_dir",
    "describe",
    "embedded_model_dir",
    "embedded_tokenizer_dir",
    "export_hf",
    "freeze_bottom_layers",
    "is_checkpointing",
    "load_model",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "resolve_attn_implementation",
    "unwrap_model",
]
