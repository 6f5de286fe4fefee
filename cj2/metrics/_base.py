"""Shared machinery for cj2's metrics: per-item states and string names that reduce correctly under DDP.

Every metric in :mod:`cj2.metrics` keeps its counts as ``sum`` states and, where a metric needs items (rank
tables, best-of-N groups, bootstrap), per-item ``cat`` states of integer codes. Strings (scenario, model,
domain, group ids) never live in a state as Python objects, because torchmetrics only gathers tensors across
ranks. Instead a string is stored as

* a stable 63-bit id (``blake2b`` of its UTF-8 bytes, identical on every rank and in every process), and
* its UTF-8 bytes, NUL-terminated, appended to a ``uint8`` ``cat`` state, so that after the states are
  gathered every rank can map the ids back to the names, including names only another rank saw.

Two torchmetrics details are handled here once:

* A rank that never called ``update`` has empty list states; torchmetrics then gathers a *float32* empty
  placeholder, and ``torch.cat`` promotes int64 ids to float32, which corrupts them. Every ``cat`` state is
  therefore seeded with an empty tensor of its own dtype at construction and after :meth:`reset`.
* After a sync a ``cat`` state is a tensor, before it a list of tensors: :meth:`_cat` reads both.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

_ID_MASK = (1 << 63) - 1


@functools.lru_cache(maxsize=65536)
def string_id(name: str) -> int:
    """A stable non-negative 63-bit id of ``name`` (the same on every rank, machine and run)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _ID_MASK


def check_lengths(**columns: Sequence[Any] | Tensor | None) -> int:
    """The common length of the given columns (``None`` columns are skipped); a clear error otherwise."""
    lengths = {name: len(col) for name, col in columns.items() if col is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"update(): the columns must have one length, got {detail}")
    return next(iter(lengths.values()), 0)


def as_float_list(values: Sequence[float] | Tensor, field: str) -> Tensor:
    """A 1-D float64 tensor of ``values``; NaN or a non-1-D input is an error naming ``field``."""
    t = torch.as_tensor(values, dtype=torch.float64) if not isinstance(values, Tensor) else values.double()
    if t.ndim != 1:
        raise ValueError(f"{field} must be 1-D, got shape {tuple(t.shape)}")
    if torch.isnan(t).any():
        i = int(torch.isnan(t).nonzero()[0])
        raise ValueError(f"{field}[{i}] is NaN")
    return t


class JudgeMetric(Metric):
    """Base class: ``cat`` states seeded with a typed empty tensor, and a name table shared across ranks."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cat_dtypes: dict[str, torch.dtype] = {}

    # -- per-item states ---------------------------------------------------------------------------------
    def _add_cat_state(self, name: str, dtype: torch.dtype) -> None:
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._cat_dtypes[name] = dtype
        getattr(self, name).append(torch.zeros(0, dtype=dtype, device=self.device))

    def reset(self) -> None:
        super().reset()
        for name, dtype in self._cat_dtypes.items():
            getattr(self, name).append(torch.zeros(0, dtype=dtype, device=self.device))

    def _append(self, name: str, values: Tensor) -> None:
        getattr(self, name).append(values.to(device=self.device, dtype=self._cat_dtypes[name]))

    def _cat(self, name: str) -> Tensor:
        """The gathered per-item values of ``name`` as one 1-D tensor of the state's dtype."""
        value = getattr(self, name)
        if isinstance(value, list):
            value = torch.cat([v.reshape(-1) for v in value]) if value else torch.zeros(0)
        # defensive: states merged from elsewhere (merge_state with a dict) may come in another dtype
        return value.reshape(-1).to(self._cat_dtypes[name])

    def _synced(self) -> Any:
        """A context in which the states are gathered from every rank (a no-op when already synced or when
        not distributed), for public methods other than ``compute`` that read the states."""
        return self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=not self._is_synced, should_unsync=not self._is_synced
        )

    # -- names --------------------------------------------------------------------------------------------
    def _add_name_state(self) -> None:
        self._add_cat_state("names_utf8", torch.uint8)

    def _ids(self, names: Sequence[str], field: str) -> Tensor:
        """Register ``names`` in the shared name table and return their ids (int64)."""
        unique = list(dict.fromkeys(names))
        for name in unique:
            if not isinstance(name, str):
                raise ValueError(f"{field} must hold strings, got {name!r} ({type(name).__name__})")
            if "\0" in name:
                raise ValueError(f"{field} {name!r} contains a NUL character, which cj2 metrics reserve")
        if unique:
            blob = b"".join(name.encode("utf-8") + b"\0" for name in unique)
            self._append("names_utf8", torch.frombuffer(bytearray(blob), dtype=torch.uint8))
        return torch.tensor([string_id(n) for n in names], dtype=torch.int64)

    def _names(self) -> dict[int, str]:
        """Id -> name for every name any rank registered."""
        blob = bytes(self._cat("names_utf8").cpu().tolist())
        table: dict[int, str] = {}
        for raw in blob.split(b"\0")[:-1]:
            name = raw.decode("utf-8")
            key = string_id(name)
            if table.setdefault(key, name) != name:  # 2^-63 per pair; checked, not assumed
                raise RuntimeError(f"name id collision between {table[key]!r} and {name!r}")
        return table


def group_sum(keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Unique ``keys`` (sorted) and the sum of ``values`` per key."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    return uniq, sums


def ratio(num: float, den: float) -> Tensor:
    """``num / den`` as a float64 scalar tensor, NaN when ``den`` is 0 (a rate of nothing is undefined)."""
    return torch.tensor(num / den if den else math.nan, dtype=torch.float64)
