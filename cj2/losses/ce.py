"""Token cross-entropy from final hidden states and the output-layer weight, behind one switch.

The objective (:mod:`cj2.losses.objective`) hands this module only the rows it trains (response positions),
already gathered as ``hidden [N, H]`` with their next-token ``targets [N]``, so an implementation never sees
padding or prompt tokens. ``impl`` picks how the ``[N, V]`` logits are (or are not) materialised:

* ``naive``   -- the reference: full ``[N, V]`` logits, ``log_softmax`` in float32.
* ``chunked`` -- :func:`cj2.losses.chunked.chunked_weighted_nll`, never holding more than one chunk of logits.
* ``cce``     -- Apple's Cut Cross-Entropy (``pip install 'cj2[gpu]'``), with exact gradients (no
  gradient filtering): :func:`cj2.losses.chunked.cce_weighted_nll`.
* ``liger``   -- Liger-Kernel's fused linear cross-entropy (``pip install 'cj2[gpu]'``):
  :func:`cj2.losses.chunked.liger_weighted_nll`.

Every backend applies any token weights exactly (the objective passes each row's sample weight).

A new backend is one function registered with :func:`register_ce_backend`; every backend must match
``naive`` in loss and gradients.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from cj2.losses.verdict import upcast

# backend(hidden [N,H], weight [V,H], targets [N], token_weights [N], bias [V] | None, chunk_size) -> scalar
CEBackend = Callable[[Tensor, Tensor, Tensor, Tensor, "Tensor | None", int], Tensor]

CE_BACKENDS: dict[str, CEBackend] = {}


def register_ce_backend(name: str) -> Callable[[CEBackend], CEBackend]:
    """Decorator: make ``fn`` selectable as ``loss.impl=<name>``."""

    def register(fn: CEBackend) -> CEBackend:
        CE_BACKENDS[name] = fn
        return fn

    return register


def project(hidden: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Logits ``hidden @ weight.T (+ bias)`` as ``[N, V]`` in float32 (float64 stays float64).

    The matmul runs in the inputs' dtype (bf16 on GPU: half the memory and the fast kernels); only the
    result is upcast, before any softmax or difference is taken.
    """
    return upcast(F.linear(hidden, weight, bias))


def token_logps(hidden: Tensor, weight: Tensor, targets: Tensor, bias: Tensor | None = None) -> Tensor:
    """``log p(targets[i] | hidden[i])`` per row, ``[N]`` float32 (projects all N rows at once)."""
    logits = project(hidden, weight, bias)
    return -F.cross_entropy(logits, targets.long(), reduction="none")


@register_ce_backend("naive")
def _naive(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    nll = -token_logps(hidden, weight, targets, bias)
    return (nll * token_weights.to(nll.dtype)).sum()


@register_ce_backend("chunked")
def _chunked(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    # find_spec first: an ImportError raised *inside* an existing chunked.py must surface, not be relabelled.
    if importlib.util.find_spec("cj2.losses.chunked") is None:
        raise NotImplementedError(
            "loss.impl=chunked: cj2.losses.chunked is not available in this installation; use loss.impl=naive"
        )
    from cj2.losses.chunked import chunked_weighted_nll

    return chunked_weighted_nll(hidden, weight, targets, token_weights, bias=bias, chunk_size=chunk_size)


# The fused GPU kernels have one wrapper each, in cj2.losses.chunked (also used by the tests and
# experiments/perf): exact for any token weights, CCE without its approximate gradient filter.
@register_ce_backend("cce")
def _cce(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    from cj2.losses.chunked import cce_weighted_nll

    return cce_weighted_nll(hidden, weight, targets, token_weights, bias=bias)


@register_ce_backend("liger")
def _liger(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    from cj2.losses.chunked import liger_weighted_nll

    return liger_weighted_nll(hidden, weight, targets, token_weights, bias=bias)


def weighted_nll(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None = None,
    impl: str = "naive",
    chunk_size: int = 512,
) -> Tensor:
    """``sum_i token_weights[i] * -log softmax(hidden[i] @ weight.T + bias)[targets[i]]`` as a scalar.

    ``hidden [N, H]`` holds only the positions to train, ``targets [N]`` their next tokens (valid ids, no
    ignore index). The result is float32 (float64 for float64 inputs). With ``N == 0`` it is a 0 that is
    still attached to the graph of ``hidden`` and ``weight``, so backward and distributed wrappers see
    every parameter used.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden [N, H] and weight [V, H] do not fit: {tuple(hidden.shape)}, {tuple(weight.shape)}"
        )
    if targets.shape != (hidden.shape[0],) or token_weights.shape != (hidden.shape[0],):
        raise ValueError(
            f"targets {tuple(targets.shape)} and token_weights {tuple(token_weights.shape)} "
            f"must both be [N]={hidden.shape[0]}"
        )
    if impl not in CE_BACKENDS:
        raise ValueError(f"loss.impl={impl!r}: expected one of {sorted(CE_BACKENDS)}")
    if chunk_size < 1:
        raise ValueError(f"loss.chunk_size={chunk_size}: must be >= 1")
    if hidden.shape[0] == 0:
        # An empty [0, V] projection costs nothing and is attached to both inputs in every backend's stead.
        return _naive(hidden, weight, targets, token_weights, bias, chunk_size)
    return CE_BACKENDS[impl](hidden, weight, targets, token_weights, bias, chunk_size)
