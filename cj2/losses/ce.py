"""Token cross-entropy from final hidden states and the output-layer weight, behind one switch.

The objective (:mod:`cj2.losses.objective`) hands this module only the rows it trains (response positions),
already gathered as ``hidden [N, H]`` with their next-token ``targets [N]``, so an implementation never sees
padding or prompt tokens. ``impl`` picks how the ``[N, V]`` logits are (or are not) materialised:

* ``naive``   -- the reference: full ``[N, V]`` logits, ``log_softmax`` in float32.
* ``chunked`` -- :func:`cj2.losses.chunked.chunked_weighted_nll`, never holding more than one chunk of logits.
* ``cce``     -- Apple's Cut Cross-Entropy (``pip install 'cj2[gpu]'``).
* ``liger``   -- Liger-Kernel's fused linear cross-entropy (``pip install 'cj2[gpu]'``).

A new backend is one function registered with :func:`register_ce_backend`; every backend must match
``naive`` in loss and gradients.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
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


def _gpu_extra_missing(impl: str, package: str, error: ImportError) -> ImportError:
    return ImportError(
        f"loss.impl={impl} needs the optional package {package!r}: pip install 'cj2[gpu]' "
        f"(or use loss.impl=naive / chunked). Import failed with: {error}"
    )


@register_ce_backend("cce")
def _cce(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    try:
        from cut_cross_entropy import linear_cross_entropy
    except ImportError as error:
        raise _gpu_extra_missing("cce", "cut-cross-entropy", error) from error
    # CCE's Triton kernels need CUDA; its torch.compile path runs anywhere.
    impl = "cce" if hidden.is_cuda else "torch_compile"
    nll = linear_cross_entropy(hidden, weight, targets.long(), bias=bias, reduction="none", impl=impl)
    nll = upcast(nll)
    return (nll * token_weights.to(nll.dtype)).sum()


@register_ce_backend("liger")
def _liger(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    token_weights: Tensor,
    bias: Tensor | None,
    chunk_size: int,
) -> Tensor:
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError as error:
        raise _gpu_extra_missing("liger", "liger-kernel", error) from error
    # Liger computes its gradients inside the forward for a scalar loss, so only a uniform token weight
    # (what the objective passes: 1 or 1/denominator) can be applied, outside the kernel.
    first = token_weights[:1]
    if not torch.equal(token_weights, first.expand_as(token_weights)):
        raise ValueError(
            "loss.impl=liger supports only uniform token_weights; use loss.impl=naive or chunked"
        )
    total = liger_fused_linear_cross_entropy(hidden, weight, targets.long(), bias=bias, reduction="sum")
    total = upcast(total)
    return total * first.to(total.dtype).squeeze(0)


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
