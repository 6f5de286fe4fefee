"""Padding-free batches: the samples of a micro-batch concatenated into one row.

A packed micro-batch is one row ``[1, sum of lengths]`` with ``position_ids`` that restart at 0 for every
sample and no ``attention_mask``. ``transformers`` (5.x) reads the restarts as sequence boundaries: with
``flash_attention_2`` the row runs through flash-attn's variable-length kernel (no attention across
samples, no padding, no mask tensor); with ``sdpa``/``eager`` it builds a block-diagonal causal mask. The
decoder must be called with ``attention_mask=None`` and ``use_cache=False`` -- with a KV cache, or a 2-D
mask, the position ids are not read as boundaries and the samples would attend to each other.

Why one row per micro-batch: transformers' flash-attn path recognises packing only in a batch of one row,
and a single row needs no padding at all. The micro-batches themselves come from
:class:`~cj2.data.sampler.StepBatchSampler` unchanged, so a step trains the same samples with the same
step totals, and the loss normalisation stays exact (arXiv 2507.09104, Table 1: the loss is a mean over
the whole batch).

Where packing pays (:func:`resolve_packing`): on CUDA with flash-attn the cost of a packed row is the sum
of its samples' costs. With ``sdpa`` the block-diagonal mask makes attention cost grow with the square of
the *row* length, so on CPU one long packed row is slower per real token than length-grouped padded
batches (the sampler's default, under 1% padding on the built-in data); ``data.packing=auto`` therefore
packs only when the model runs flash_attention_2.

The batch dict (consumed by :class:`cj2.losses.objective.Objective` and :class:`cj2.module.JudgeModule`):

* ``input_ids``, ``labels``, ``position_ids``: ``[1, T]``; ``labels`` are ``-100`` on prompts, on the
  first token of every sample (nothing before it in *its* sequence predicts it) and on the padding tail;
* ``verdict_row [N]`` (all 0), ``verdict_index [N]`` (k inside the row), ``verdict_target [N]``,
  ``verdict_candidates [N, C]`` (``-1`` padded), ``verdict_ids`` (record id of each verdict): one entry per
  sample that has a verdict;
* ``n_sequences``: the number of samples (the ``seq`` count for ``sft_normalization=sequence_sum``);
* ``sample_row [S]``, ``sample_start [S]``, ``sample_length [S]``: where each sample lies, so per-sample
  values can be read back (:func:`sample_slices`); ``weights [S]`` and ``ids`` as in the padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cj2.data.collator import IGNORE_INDEX, EncodedSample


def resolve_packing(packing: str | bool | None, attn_implementation: str | None) -> bool:
    """Whether to pack micro-batches: ``True``/``False`` as given; ``"auto"`` packs under flash-attn only.

    ``attn_implementation`` is the model's (``model.config._attn_implementation``). flash_attention_2 runs
    only on CUDA, so ``auto`` is length-grouped padding on CPU and under sdpa, where a packed row's
    block-diagonal mask costs more than the little padding that length grouping leaves.
    """
    if isinstance(packing, str):
        key = packing.strip().lower()
        if key == "auto":
            return attn_implementation is not None and attn_implementation.startswith("flash_attention")
        if key in ("true", "false"):
            return key == "true"
    elif packing is None:
        return False
    elif isinstance(packing, bool):
        return packing
    raise ValueError(f"data.packing={packing!r}: expected auto, true or false")


class PackedCollator:
    """Concatenates a micro-batch's encoded samples into one padding-free row (see the module docstring).

    With ``pad_to_multiple_of`` the row is padded at the end (its own position-id segment, labels -100).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, samples: Sequence[EncodedSample]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        starts: list[int] = []
        verdict_index: list[int] = []
        verdict_target: list[int] = []
        verdict_cands: list[list[int]] = []
        verdict_ids: list[str] = []
        for s in samples:
            if len(s.labels) != len(s.input_ids) or not s.input_ids:
                raise ValueError(f"record {s.id!r}: input_ids and labels must be non-empty and of one length")
            start = len(input_ids)
            starts.append(start)
            input_ids += s.input_ids
            # The first token of a sample is never a target: the token before it ends another sample.
            labels += [IGNORE_INDEX] + list(s.labels[1:])
            positions += range(len(s))
            if s.verdict_index >= 0:
                if not 1 <= s.verdict_index < len(s):
                    raise ValueError(
                        f"record {s.id!r}: verdict_index={s.verdict_index} outside [1, {len(s) - 1}]"
                    )
                verdict_index.append(start + s.verdict_index)
                verdict_target.append(s.verdict_target)
                verdict_cands.append(list(s.verdict_candidates))
                verdict_ids.append(s.id)
        total = len(input_ids)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            pad = (total + m - 1) // m * m - total
            input_ids += [self.pad_token_id] * pad
            labels += [IGNORE_INDEX] * pad
            positions += range(pad)  # a segment of its own: attends only to itself
        n_cands = max([len(c) for c in verdict_cands] + [1])
        cands = torch.full((len(verdict_cands), n_cands), -1, dtype=torch.long)
        for i, c in enumerate(verdict_cands):
            if c:
                cands[i, : len(c)] = torch.tensor(c)
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
            "verdict_row": torch.zeros(len(verdict_index), dtype=torch.long),
            "verdict_index": torch.tensor(verdict_index, dtype=torch.long),
            "verdict_target": torch.tensor(verdict_target, dtype=torch.long),
            "verdict_candidates": cands,
            "verdict_ids": verdict_ids,
            "n_sequences": len(samples),
            "sample_row": torch.zeros(len(samples), dtype=torch.long),
            "sample_start": torch.tensor(starts, dtype=torch.long),
            "sample_length": torch.tensor([len(s) for s in samples], dtype=torch.long),
            "weights": torch.tensor([s.weight for s in samples], dtype=torch.float32),
            "ids": [s.id for s in samples],
        }


def is_packed(batch: dict[str, Any]) -> bool:
    """Whether ``batch`` came from :class:`PackedCollator` (several samples per row)."""
    return "verdict_row" in batch


def sample_slices(batch: dict[str, Any], values: torch.Tensor) -> list[torch.Tensor]:
    """Per-sample pieces of a ``[rows, T, ...]`` tensor of a packed batch (e.g. hidden states or logits)."""
    return [
        values[int(r), int(s) : int(s) + int(n)]
        for r, s, n in zip(batch["sample_row"], batch["sample_start"], batch["sample_length"])
    ]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Fraction of processed tokens that are padding when each batch is right-padded to its longest sample.

    ``batches`` holds indices into ``lengths``. Packed rows have none (0.0 by construction).
    """
    real = padded = 0
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        real += sum(lengths[i] for i in batch)
        padded += longest * len(batch)
    return (padded - real) / padded if padded else 0.0


__all__ = ["PackedCollator", "is_packed", "padding_fraction", "resolve_packing", "sample_slices"]
