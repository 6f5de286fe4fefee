"""Token-weighted cross-entropy from hidden states and the output weight, without the full logits.

The response-token CE of arXiv 2507.09104 (Sec. 3.3, the SFT term of Eq. 3) needs
``log_softmax(hidden @ weight.T + bias)`` only at one target per row. Materialising the logits costs
``N x V`` floats (at Qwen2.5's vocabulary of 151,936 and 2,048 tokens: 1.2 GB in fp32, and the
naive backward holds two or three such tensors at once). :func:`chunked_weighted_nll` walks the rows
in chunks of ``chunk_size``; for each chunk it computes the logits, the log-sum-exp, the NLL and,
right away, the gradients with respect to the hidden rows, the weight and the bias. The backward pass
then only scales the saved gradients by the upstream scalar, so:

* no ``[rows, V]`` tensor larger than one chunk exists, in the forward or the backward pass;
* the projection is computed once (three matmuls in all, like the naive path; a checkpointing
  scheme that recomputes the logits in the backward pass would need a fourth).

The price is that the gradients are computed even if the loss is later discarded, and that
``grad_weight`` (``V x H``) is held from the forward to the backward pass (the naive path
allocates the same tensor in its backward pass).

Precision. The log-sum-exp, the softmax, the loss and the accumulation of ``grad_weight`` over chunks
always run in float32 (float64 for float64 inputs). The three matmuls (the logits, ``grad_hidden``,
``grad_weight``) run in bfloat16 when bf16 autocast is on for the inputs' device, or when ``hidden`` or
``weight`` is bf16 (:func:`_matmul_dtype`), as ``F.linear`` would under autocast: bf16 matmuls are
several times faster than fp32 ones on CPUs with AMX/AVX-512 BF16 and on GPUs. Each product is rounded
to bf16 once (relative error ~2^-9 per logit / gradient entry) and then upcast. Under fp16 autocast
they stay in float32 (fp16's range is too small for logits and gradients without loss scaling).

:func:`cce_weighted_nll` and :func:`liger_weighted_nll` are thin wrappers around the optional GPU
kernels (``pip install "cj2[gpu]"``) with the same weighted-sum semantics, exact for any token weights;
they are the only wrappers (``loss.impl=cce|liger`` in :mod:`cj2.losses.ce` dispatches to them).
"""

from __future__ import annotations

from typing import Any

import torch

# Rows per chunk. The transient buffer is ``chunk_size x V`` floats (V = 151,936: 311 MB at 512
# rows); with the ``V x H`` fp32 weight gradient that is the whole extra memory. 512 rows keep the
# matmuls large enough to run at full speed on CPU and GPU (see experiments/perf/loss_memory.py).
DEFAULT_CHUNK_SIZE = 512

_GPU_EXTRA_HINT = 'install the optional GPU extra: pip install "cj2[gpu]"'


def _compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    # float32 at least (bf16/fp16 logits are too coarse for a log-sum-exp over 150k entries);
    # float64 stays float64 so gradient checks in double precision are exact.
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _matmul_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype of the three matmuls: bf16 under bf16 autocast (for ``hidden``'s device) or for bf16
    inputs; otherwise the compute dtype (float32, or float64 for float64 inputs)."""
    cdt = _compute_dtype(hidden.dtype, weight.dtype)
    if cdt == torch.float64:
        return cdt
    if torch.bfloat16 in (hidden.dtype, weight.dtype):
        return torch.bfloat16
    device = hidden.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16:
        return torch.bfloat16
    return cdt


def _check_inputs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None,
    chunk_size: int,
) -> None:
    if hidden.dim() != 2 or weight.dim() != 2:
        raise ValueError(
            f"hidden must be [N, H] and weight [V, H]; got hidden {tuple(hidden.shape)}, "
            f"weight {tuple(weight.shape)}"
        )
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden size mismatch: hidden {tuple(hidden.shape)} vs weight {tuple(weight.shape)}"
        )
    n = hidden.shape[0]
    if targets.shape != (n,) or token_weights.shape != (n,):
        raise ValueError(
            f"targets and token_weights must be [N] = [{n}]; got {tuple(targets.shape)} and "
            f"{tuple(token_weights.shape)}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be [V] = [{weight.shape[0]}]; got {tuple(bias.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")


def _chunked_forward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None,
    chunk_size: int,
    need_h: bool,
    need_w: bool,
    need_b: bool,
    mm_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The loss and (where asked) its gradients, one chunk of rows at a time.

    ``mm_dtype`` is the dtype of the three matmuls (default: the compute dtype, float32 or float64);
    everything else runs in the compute dtype. Returns ``(loss, grad_hidden, grad_weight, grad_bias)``
    with the gradients in the dtypes of their inputs, or ``None`` where not asked for.
    """
    cdt = _compute_dtype(hidden.dtype, weight.dtype)
    mdt = cdt if mm_dtype is None else mm_dtype
    low = mdt != cdt  # bf16 matmuls: their products land in bf16 buffers and are upcast into cdt ones
    n, h_dim = hidden.shape
    vocab = weight.shape[0]
    device = hidden.device

    # Rows with weight 0 contribute nothing to the loss or any gradient: never project them.
    keep = (token_weights != 0).nonzero().squeeze(1)
    n_keep = int(keep.numel())
    all_kept = n_keep == n
    h_rows = hidden if all_kept else hidden.index_select(0, keep)
    t_rows = (targets if all_kept else targets.index_select(0, keep)).long()  # gather wants int64
    w_rows = (token_weights if all_kept else token_weights.index_select(0, keep)).to(cdt)

    # A no-op when the weight already has the matmul dtype; else one copy of it for the call (fp32 for
    # bf16 weights on the fp32 path, bf16 for fp32 weights under bf16 autocast, as autocast would make).
    w_mat = weight.to(mdt)
    b_vec = None if bias is None else bias.to(cdt)

    loss = torch.zeros((), dtype=cdt, device=device)
    grad_rows = torch.empty((n_keep, h_dim), dtype=cdt, device=device) if need_h else None
    # bf16 matmuls over a single chunk: grad_w is that chunk's bf16 product, with no float32 V x H buffer.
    low_single = low and need_w and 0 < n_keep <= chunk_size
    # Filled by the first chunk's matmul (no zero-fill pass over V x H), zeroed only if nothing is kept.
    grad_w = torch.empty((vocab, h_dim), dtype=cdt, device=device) if need_w and not low_single else None
    grad_b = torch.zeros((vocab,), dtype=cdt, device=device) if need_b else None

    if n_keep > 0:
        rows = min(chunk_size, n_keep)
        # One buffer reused by every chunk: no allocator churn, no page faults after the first chunk.
        buf = torch.empty((rows, vocab), dtype=cdt, device=device)
        # bf16 matmuls: a bf16 twin of the chunk buffer (half its size) and, with several chunks, one
        # bf16 V x H product per chunk that is added into the float32 grad_w.
        buf_low = torch.empty((rows, vocab), dtype=mdt, device=device) if low else None
        gw_low = torch.empty((vocab, h_dim), dtype=mdt, device=device) if low and need_w else None
        need_any = need_h or need_w or need_b
        for start in range(0, n_keep, rows):
            end = min(start + rows, n_keep)
            h_c = h_rows[start:end].to(mdt)
            t_c = t_rows[start:end].unsqueeze(1)
            w_c = w_rows[start:end]
            z = buf[: end - start]
            if low:
                z_low = buf_low[: end - start]
                torch.mm(h_c, w_mat.t(), out=z_low)
                z.copy_(z_low)
                if b_vec is not None:
                    z.add_(b_vec)
            elif b_vec is None:
                torch.mm(h_c, w_mat.t(), out=z)
            else:
                torch.addmm(b_vec, h_c, w_mat.t(), out=z)
            target_logit = z.gather(1, t_c).squeeze(1)
            row_max = z.amax(dim=1, keepdim=True)
            z.sub_(row_max).exp_()  # z = exp(logit - max), in place
            sum_exp = z.sum(dim=1)
            lse = row_max.squeeze(1) + sum_exp.log()
            loss += torch.dot(w_c, lse - target_logit)
            if not need_any:
                continue
            # d loss / d logits = w_i * (softmax_i - onehot(t_i)), built in place in the buffer.
            z.mul_((w_c / sum_exp).unsqueeze(1))
            z.scatter_add_(1, t_c, -w_c.unsqueeze(1))
            if need_b:
                grad_b += z.sum(dim=0)
            if low:
                z_low.copy_(z)  # the logit gradient, rounded to bf16 for the two gradient matmuls
                if need_h:
                    grad_rows[start:end].copy_(torch.mm(z_low, w_mat))
                if need_w:
                    torch.mm(z_low.t(), h_c, out=gw_low)
                    if low_single:
                        grad_w = gw_low
                    elif start == 0:
                        grad_w.copy_(gw_low)
                    else:
                        grad_w.add_(gw_low)  # accumulated over chunks in float32
                continue
            if need_h:
                torch.mm(z, w_mat, out=grad_rows[start:end])
            if need_w and start == 0:
                torch.mm(z.t(), h_c, out=grad_w)
            elif need_w:
                grad_w.addmm_(z.t(), h_c)
        del buf, buf_low, gw_low
    elif need_w:
        grad_w.zero_()

    grad_hidden = None
    if need_h:
        if all_kept:
            grad_hidden = grad_rows.to(hidden.dtype)
        else:
            grad_hidden = torch.zeros_like(hidden, memory_format=torch.contiguous_format)
            grad_hidden.index_copy_(0, keep, grad_rows.to(hidden.dtype))
    grad_weight = grad_w.to(weight.dtype) if need_w else None
    grad_bias = grad_b.to(bias.dtype) if need_b else None
    return loss, grad_hidden, grad_weight, grad_bias


class _ChunkedWeightedNLL(torch.autograd.Function):
    """Autograd wrapper: gradients are computed in forward, backward scales them."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        token_weights: torch.Tensor,
        bias: torch.Tensor | None,
        chunk_size: int,
        grad_enabled: bool,
        mm_dtype: torch.dtype,
    ) -> torch.Tensor:
        # needs_input_grad reflects requires_grad even under torch.no_grad(), hence grad_enabled.
        need_h = grad_enabled and ctx.needs_input_grad[0]
        need_w = grad_enabled and ctx.needs_input_grad[1]
        need_b = grad_enabled and bias is not None and ctx.needs_input_grad[4]
        # The dtypes are chosen explicitly (mm_dtype), so autocast must not recast anything in here.
        with torch.autocast(hidden.device.type, enabled=False):
            loss, g_h, g_w, g_b = _chunked_forward(
                hidden, weight, targets, token_weights, bias, chunk_size, need_h, need_w, need_b, mm_dtype
            )
        ctx.save_for_backward(g_h, g_w, g_b)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g_h, g_w, g_b = ctx.saved_tensors
        # The common case (loss.backward() on this loss alone, or summed with others) has an upstream
        # gradient of exactly 1: hand the saved gradients over without another V x H pass.
        unit = bool(grad_output == 1)

        def scale(g: torch.Tensor | None) -> torch.Tensor | None:
            if g is None or unit:
                return g
            return (g * grad_output).to(g.dtype)

        return scale(g_h), scale(g_w), None, None, scale(g_b), None, None, None


def chunked_weighted_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """``sum_i token_weights[i] * NLL_i`` with
    ``NLL_i = -log_softmax(hidden @ weight.T + bias)[i, targets[i]]``.

    The CE term of arXiv 2507.09104, Sec. 3.3 (Eq. 3, the SFT part), computed chunk by chunk so that
    no logits tensor larger than ``chunk_size x V`` exists in the forward or the backward pass.

    Args:
        hidden: ``[N, H]`` final hidden states of the rows to score (the caller gathers response rows).
        weight: ``[V, H]`` output-layer weight (for tied embeddings: the embedding matrix itself).
        targets: ``[N]`` target token ids (no ignore index: give such rows weight 0 or leave them out).
        token_weights: ``[N]`` per-row weights (e.g. ``1 / num_response_tokens``); rows with weight 0
            are skipped, never projected. No gradient flows into them.
        bias: optional ``[V]`` output bias.
        chunk_size: rows per chunk; the transient buffer is ``chunk_size x V`` in the compute dtype.

    Returns:
        A scalar in float32 (float64 if an input is float64), attached to the graph whenever an input
        requires grad, also when ``N == 0`` or every weight is 0 (its gradients are then zero).
        Log-sum-exp, softmax and gradient accumulation run in float32 even for bf16/fp16 inputs; the
        three matmuls run in bf16 under bf16 autocast or for bf16 inputs (one bf16 copy of an fp32
        ``weight`` for the call), else in float32 (one fp32 copy of an fp16 ``weight``). The gradients
        come back in the input dtypes.
    """
    _check_inputs(hidden, weight, targets, token_weights, bias, chunk_size)
    return _ChunkedWeightedNLL.apply(
        hidden,
        weight,
        targets,
        token_weights.detach(),
        bias,
        int(chunk_size),
        torch.is_grad_enabled(),
        _matmul_dtype(hidden, weight),
    )


def _zero_attached(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """A 0 of ``dtype`` attached to the graph of every input (sums of empty slices: no NaN from inf)."""
    zero = hidden[:0].sum() + weight[:0].sum()
    if bias is not None:
        zero = zero + bias[:0].sum()
    return zero.to(dtype)


def _missing_extra(impl: str, package: str, error: ImportError) -> ImportError:
    return ImportError(
        f"loss.impl={impl} needs the optional package {package!r}; {_GPU_EXTRA_HINT} "
        f"(or use loss.impl=chunked / naive). Import failed with: {error}"
    )


def cce_weighted_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None = None,
    impl: str | None = None,
    filter_eps: float | str | None = None,
) -> torch.Tensor:
    """The same weighted NLL through Cut Cross-Entropy (``cut_cross_entropy.linear_cross_entropy``).

    This is the one CCE wrapper: ``loss.impl=cce`` (:mod:`cj2.losses.ce`) calls it too.

    ``impl`` is CCE's: ``"cce"`` (Triton kernels, CUDA only) or ``"torch_compile"`` (runs on CPU too, but
    materialises the logits inside a compiled graph, so it saves no memory there); ``None`` picks ``"cce"``
    for CUDA inputs and ``"torch_compile"`` otherwise. The per-row NLL comes from ``reduction="none"``,
    whose backward takes a per-row upstream gradient, so any token weights are applied exactly. Rows with
    weight 0 are dropped before the call.

    ``filter_eps`` is always passed. Its default ``None`` turns CCE's gradient filtering off: exact
    gradients, as every other ``loss.impl`` computes. CCE's own default (``"auto"``) skips the gradient
    entries whose softmax value falls below a threshold, an approximation; pass ``"auto"`` or a float
    to opt into it.

    Returns a scalar in float32 (float64 for float64 inputs), attached to the graph also when every
    weight is 0.
    """
    try:
        from cut_cross_entropy import linear_cross_entropy
    except ImportError as exc:
        raise _missing_extra("cce", "cut-cross-entropy", exc) from exc
    _check_inputs(hidden, weight, targets, token_weights, bias, 1)
    cdt = _compute_dtype(hidden.dtype, weight.dtype)
    w = token_weights.detach()
    keep = (w != 0).nonzero().squeeze(1)
    if keep.numel() == 0:
        return _zero_attached(hidden, weight, bias, cdt)
    if keep.numel() < w.numel():
        hidden, targets, w = (x.index_select(0, keep) for x in (hidden, targets, w))
    if impl is None:
        impl = "cce" if hidden.is_cuda else "torch_compile"
    kwargs: dict[str, Any] = {"reduction": "none", "impl": impl, "filter_eps": filter_eps}
    if bias is not None:
        kwargs["bias"] = bias  # only recent cut-cross-entropy versions accept a bias
    per_row = linear_cross_entropy(hidden, weight, targets.long(), **kwargs)
    return (per_row.to(cdt) * w.to(cdt)).sum()


def liger_weighted_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same weighted NLL through Liger-Kernel's fused linear cross-entropy (CUDA only).

    This is the one Liger wrapper: ``loss.impl=liger`` (:mod:`cj2.losses.ce`) calls it too.

    Liger's fused kernel computes its gradients in the forward pass and scales them by a *scalar*
    upstream gradient, and older releases get ``reduction="none"`` wrong in the backward pass. So each
    distinct token weight gets its own ``reduction="sum"`` call on its rows, scaled outside the kernel:
    exact for any weights. Training passes the rows' sample weights (``batch["weights"]``), so that is
    one call without sample weights and one per distinct sample weight with them. Each call holds its
    own ``V x H`` weight gradient until the backward pass, so many distinct weights in one batch cost
    memory. Rows with weight 0 are dropped.

    Returns a scalar in float32 (float64 for float64 inputs), attached to the graph also when every
    weight is 0.
    """
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError as exc:
        raise _missing_extra("liger", "liger-kernel", exc) from exc
    _check_inputs(hidden, weight, targets, token_weights, bias, 1)
    cdt = _compute_dtype(hidden.dtype, weight.dtype)
    w = token_weights.detach()
    total = _zero_attached(hidden, weight, bias, cdt)
    values = torch.unique(w[w != 0])
    for value in values:
        rows = (w == value).nonzero().squeeze(1)
        if rows.numel() < w.numel():
            h_rows, t_rows = hidden.index_select(0, rows), targets.index_select(0, rows)
        else:
            h_rows, t_rows = hidden, targets
        part = liger_fused_linear_cross_entropy(h_rows, weight, t_rows.long(), bias=bias, reduction="sum")
        total = total + part.to(cdt) * value.to(cdt)
    return total
