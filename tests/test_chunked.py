"""Tests of the chunked weighted NLL against a naive reference (full logits, log_softmax)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cj2.losses.chunked import (
    DEFAULT_CHUNK_SIZE,
    cce_weighted_nll,
    chunked_weighted_nll,
    liger_weighted_nll,
)

TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-11, "atol": 1e-11}}


def naive_weighted_nll(hidden, weight, targets, token_weights, bias=None):
    """Reference: every logit materialised, log_softmax in at least float32."""
    cdt = torch.float64 if torch.float64 in (hidden.dtype, weight.dtype) else torch.float32
    logits = hidden.to(cdt) @ weight.to(cdt).t()
    if bias is not None:
        logits = logits + bias.to(cdt)
    nll = -logits.log_softmax(dim=-1).gather(1, targets[:, None]).squeeze(1)
    return (token_weights.to(cdt) * nll).sum()


def make(n=23, h=6, v=31, dtype=torch.float32, bias=False, seed=0, zero_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    weight = torch.randn(v, h, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.randn(v, generator=g, dtype=torch.float64).to(dtype).requires_grad_() if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    tw = torch.rand(n, generator=g, dtype=torch.float64).to(dtype) + 0.1
    if zero_frac:
        tw[torch.rand(n, generator=g) < zero_frac] = 0.0
    return hidden, weight, targets, tw, b


def grads(loss, params):
    params = [p for p in params if p is not None]
    return torch.autograd.grad(loss, params)


def test_hand_computed_value_and_gradient():
    # V=3, H=2: weight rows e1, e2, e1+e2; hidden row (1, 0) -> logits (1, 0, 1); target 1.
    hidden = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 2])
    tw = torch.tensor([0.5, 2.0], dtype=torch.float64)
    # Row 0: logits (1, 0, 1), NLL = log(2e + 1) - 0. Row 1: logits (0, 2, 2), NLL = log(1 + 2e^2) - 2.
    nll0 = math.log(2 * math.e + 1)
    nll1 = math.log(1 + 2 * math.e**2) - 2
    loss = chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=1)
    assert loss.item() == pytest.approx(0.5 * nll0 + 2.0 * nll1, rel=1e-12)
    (g_h,) = torch.autograd.grad(loss, [hidden])
    # d/dh row 0 = 0.5 * (softmax @ W - W[target]); softmax = (e, 1, e) / (2e + 1).
    p = torch.tensor([math.e, 1.0, math.e], dtype=torch.float64) / (2 * math.e + 1)
    expected0 = 0.5 * (p @ weight.detach() - weight.detach()[1])
    assert torch.allclose(g_h[0], expected0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_size", [1, 7, 23, 100])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_naive_loss_and_gradients(dtype, chunk_size, bias):
    hidden, weight, targets, tw, b = make(dtype=dtype, bias=bias)
    params = [hidden, weight, b]
    ref = naive_weighted_nll(hidden, weight, targets, tw, b)
    out = chunked_weighted_nll(hidden, weight, targets, tw, b, chunk_size=chunk_size)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, **TOL[dtype])
    for got, want in zip(grads(out, params), grads(ref, params)):
        assert got.dtype == dtype
        torch.testing.assert_close(got, want, **TOL[dtype])


def test_gradcheck_float64():
    hidden, weight, targets, tw, b = make(n=9, h=3, v=7, dtype=torch.float64, bias=True, zero_frac=0.3)
    assert torch.autograd.gradcheck(
        lambda h, w, bb: chunked_weighted_nll(h, w, targets, tw, bb, chunk_size=4), (hidden, weight, b)
    )


def test_tied_embeddings_gradients_flow_through_both_uses():
    g = torch.Generator().manual_seed(1)
    v, h, n = 29, 5, 17
    embedding = torch.randn(v, h, generator=g, dtype=torch.float64, requires_grad=True)
    mix = torch.randn(h, h, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, v, (n,), generator=g)
    targets = torch.randint(0, v, (n,), generator=g)
    tw = torch.full((n,), 1.0 / n, dtype=torch.float64)

    def run(fn):
        hidden = torch.tanh(F.embedding(ids, embedding) @ mix)  # a stand-in for the decoder
        return grads(fn(hidden, embedding, targets, tw), [embedding, mix])

    got = run(lambda *a: chunked_weighted_nll(*a, chunk_size=4))
    want = run(naive_weighted_nll)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    # Sanity: the embedding gets gradient from the lookup too, not only from the output projection.
    hidden = torch.tanh(F.embedding(ids, embedding) @ mix).detach()
    (proj_only,) = grads(naive_weighted_nll(hidden, embedding, targets, tw), [embedding])
    assert not torch.allclose(proj_only, want[0])


def test_heavily_masked_rows_get_zero_gradient():
    hidden, weight, targets, tw, _ = make(n=200, zero_frac=0.95, dtype=torch.float64)
    assert 0 < int((tw != 0).sum()) < 30
    ref = naive_weighted_nll(hidden, weight, targets, tw)
    out = chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=3)
    torch.testing.assert_close(out, ref, **TOL[torch.float64])
    got, want = grads(out, [hidden, weight]), grads(ref, [hidden, weight])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    assert torch.all(got[0][tw == 0] == 0)


@pytest.mark.parametrize("n", [0, 5])
def test_no_scored_rows_gives_zero_attached_to_graph(n):
    hidden, weight, targets, _, b = make(n=n, bias=True)
    tw = torch.zeros(n)  # n == 0: no rows at all; n == 5: every row masked
    loss = chunked_weighted_nll(hidden, weight, targets, tw, b)
    assert loss.item() == 0.0
    assert loss.requires_grad
    (loss * 2 + 1).backward()
    assert hidden.grad.shape == hidden.shape and torch.all(hidden.grad == 0)
    assert torch.all(weight.grad == 0) and torch.all(b.grad == 0)


def test_scaled_upstream_gradient_and_other_terms():
    hidden, weight, targets, tw, b = make(dtype=torch.float64, bias=True, zero_frac=0.3)
    params = [hidden, weight, b]

    def total(fn):
        loss = fn(hidden, weight, targets, tw, b)
        # Used twice, scaled, and added to a term that also depends on the same parameters.
        return 3.0 * loss - 0.5 * loss + (hidden**2).sum() + weight.sum()

    got = grads(total(lambda *a: chunked_weighted_nll(*a, chunk_size=5)), params)
    want = grads(total(naive_weighted_nll), params)
    for a, b_ in zip(got, want):
        torch.testing.assert_close(a, b_, **TOL[torch.float64])


@pytest.mark.parametrize("which", ["hidden", "weight"])
def test_only_some_inputs_require_grad(which):
    hidden, weight, targets, tw, _ = make(dtype=torch.float64)
    if which == "hidden":
        weight = weight.detach()
    else:
        hidden = hidden.detach()
    param = hidden if which == "hidden" else weight
    (got,) = grads(chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=4), [param])
    (want,) = grads(naive_weighted_nll(hidden, weight, targets, tw), [param])
    torch.testing.assert_close(got, want, **TOL[torch.float64])


def test_non_contiguous_hidden():
    hidden, weight, targets, tw, _ = make(dtype=torch.float64)
    hidden_t = hidden.detach().t().contiguous().t().requires_grad_()  # column-major view
    assert not hidden_t.is_contiguous()
    got = grads(chunked_weighted_nll(hidden_t, weight, targets, tw, chunk_size=4), [hidden_t, weight])
    want = grads(naive_weighted_nll(hidden_t, weight, targets, tw), [hidden_t, weight])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_bf16_inputs_use_bf16_matmuls_and_float32_softmax():
    """bf16 inputs: bf16 matmuls, fp32 log-sum-exp; loss and gradients within the BF16_* tolerances (below)
    of the fp32 computation on the same (upcast) numbers."""
    hidden, weight, targets, tw, b = make(n=40, h=16, v=300, dtype=torch.bfloat16, bias=True)
    with OpRecorder() as rec:
        out = chunked_weighted_nll(hidden, weight, targets, tw, b, chunk_size=7)
    assert out.dtype == torch.float32
    assert rec.mm_dtypes == {torch.bfloat16}
    up = [x.detach().float().requires_grad_() for x in (hidden, weight, b)]
    ref = naive_weighted_nll(up[0], up[1], targets, tw.float(), up[2])
    got = grads(out, [hidden, weight, b])
    assert all(g.dtype == torch.bfloat16 for g in got)  # gradients come back in the input dtype
    assert_close_to_fp32(out, got, ref, grads(ref, up))


def test_no_grad_mode_computes_only_the_loss():
    hidden, weight, targets, tw, _ = make(n=20)
    ref = naive_weighted_nll(hidden, weight, targets, tw)
    with torch.no_grad(), OpRecorder() as rec:
        out = chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=8)
    assert not out.requires_grad
    torch.testing.assert_close(out, ref.detach(), **TOL[torch.float32])
    assert rec.matmuls == 3  # one projection per chunk (20 rows / 8), no gradient matmuls


class OpRecorder(TorchDispatchMode):
    """Records the shape of every new tensor an aten op returns (views excluded), and counts matmuls."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[str, tuple[int, ...]]] = []
        self.matmuls = 0
        self.mm_dtypes: set[torch.dtype] = set()  # dtypes of the matrix operands of every matmul

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # A view (t, slice, ...) shares an input's storage and allocates nothing: skip it.
        inputs = {
            x.untyped_storage().data_ptr() for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)
        }
        name = str(func.overloadpacket)
        if name in ("aten.mm", "aten.addmm", "aten.addmm_", "aten.matmul", "aten.bmm"):
            self.matmuls += 1
            self.mm_dtypes.update(x.dtype for x in args if isinstance(x, torch.Tensor) and x.dim() == 2)
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.shapes.append((name, tuple(t.shape)))
        return out

    def max_numel(self) -> int:
        return max(math.prod(s) for _, s in self.shapes)


def test_no_tensor_larger_than_one_chunk_of_logits_and_no_recompute():
    n, h, v, chunk = 96, 16, 64, 5  # N x V = 6144 > N x H = 1536 > V x H = 1024 > chunk x V = 320
    hidden, weight, targets, tw, _ = make(n=n, h=h, v=v)

    with OpRecorder() as naive_rec:
        naive_weighted_nll(hidden, weight, targets, tw).backward()
    # The recorder sees the full logits of the naive path, forward and backward: it can fail.
    assert sum(1 for _, s in naive_rec.shapes if s == (n, v)) >= 3

    hidden.grad = weight.grad = None
    with OpRecorder() as rec:
        chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=chunk).backward()
    big = {s for _, s in rec.shapes if math.prod(s) > chunk * v}
    assert big <= {(n, h), (v, h)}, big  # only the gradients themselves exceed one chunk of logits
    assert not any(len(s) == 2 and s[1] == v and s[0] > chunk for _, s in rec.shapes)
    # Three matmuls per chunk (logits, grad_hidden, grad_weight): the projection is never recomputed.
    assert rec.matmuls == 3 * math.ceil(n / chunk)
    torch.testing.assert_close(
        hidden.grad, grads(naive_weighted_nll(hidden, weight, targets, tw), [hidden])[0], **TOL[torch.float32]
    )


# bf16 matmuls (under bf16 autocast, or for bf16 inputs) against the fp32 path. Each logit and each entry of a
# gradient product is rounded to bf16 once (relative error <= 2^-9 ~ 2e-3); the log-sum-exp, the softmax and
# the accumulation of grad_weight over chunks stay in fp32. Tolerance: the loss within BF16_LOSS_RTOL = 1e-3
# relative; each gradient within BF16_GRAD_TOL = 2e-2 of its largest fp32 entry
# (max abs error / max abs value).
# Measured in test_bf16_autocast_matmuls_match_the_fp32_path: loss <= 3e-5 relative, gradients <= 9e-3.
BF16_LOSS_RTOL = 1e-3
BF16_GRAD_TOL = 2e-2


def assert_close_to_fp32(loss, got_grads, ref_loss, ref_grads):
    assert abs(loss.item() - ref_loss.item()) <= BF16_LOSS_RTOL * abs(ref_loss.item())
    for got, want in zip(got_grads, ref_grads):
        scale = want.abs().max().item()
        assert (got.float() - want).abs().max().item() <= BF16_GRAD_TOL * scale


@pytest.mark.parametrize(
    "chunk_size", [64, 512]
)  # several chunks (fp32 accumulation of grad_weight) / one chunk
@pytest.mark.parametrize("bias", [False, True])
def test_bf16_autocast_matmuls_match_the_fp32_path(chunk_size, bias):
    """fp32 inputs under bf16 autocast: the three matmuls run in bf16 (and no more of them), the loss is fp32
    and within BF16_LOSS_RTOL = 1e-3 relative of the fp32 path, the fp32 gradients within
    BF16_GRAD_TOL = 2e-2 x max |fp32 gradient| (max abs error)."""
    hidden, weight, targets, tw, b = make(n=300, h=64, v=3000, bias=bias, zero_frac=0.1)
    weight = (weight.detach() * 0.3).requires_grad_()  # logits with std ~2.4, the spread of an LM's logits
    params = [hidden, weight, b]
    with OpRecorder() as rec32:
        ref = chunked_weighted_nll(hidden, weight, targets, tw, b, chunk_size=chunk_size)
    assert rec32.mm_dtypes == {torch.float32}  # without autocast: today's fp32 path
    ref_grads = grads(ref, params)
    with torch.autocast("cpu", dtype=torch.bfloat16), OpRecorder() as rec:
        out = chunked_weighted_nll(hidden, weight, targets, tw, b, chunk_size=chunk_size)
        got = grads(out, params)
    assert rec.mm_dtypes == {torch.bfloat16}
    assert rec.matmuls == rec32.matmuls == 3 * math.ceil(int((tw != 0).sum()) / chunk_size)
    assert out.dtype == torch.float32 and all(g.dtype == torch.float32 for g in got)
    assert_close_to_fp32(out, got, ref, ref_grads)


def test_fp16_autocast_and_float64_keep_full_precision_matmuls():
    hidden, weight, targets, tw, _ = make(n=20)
    with torch.autocast("cpu", dtype=torch.float16), OpRecorder() as rec:
        chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=8).backward()
    assert rec.mm_dtypes == {torch.float32}
    hidden, weight, targets, tw, _ = make(n=20, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16), OpRecorder() as rec:
        out = chunked_weighted_nll(hidden, weight, targets, tw, chunk_size=8)
    assert rec.mm_dtypes == {torch.float64} and out.dtype == torch.float64
    torch.testing.assert_close(out, naive_weighted_nll(hidden, weight, targets, tw), **TOL[torch.float64])


def test_default_chunk_size_is_positive():
    assert isinstance(DEFAULT_CHUNK_SIZE, int) and DEFAULT_CHUNK_SIZE >= 1


@pytest.mark.parametrize("bad", ["hidden_dim", "targets", "bias", "chunk"])
def test_bad_shapes_raise(bad):
    hidden, weight, targets, tw, b = make(bias=True)
    kwargs = {"chunk_size": 4}
    if bad == "hidden_dim":
        hidden = hidden[:, :-1]
    elif bad == "targets":
        targets = targets[:-1]
    elif bad == "bias":
        b = b[:-1]
    else:
        kwargs["chunk_size"] = 0
    with pytest.raises(ValueError):
        chunked_weighted_nll(hidden, weight, targets, tw, b, **kwargs)


HAS_CCE = importlib.util.find_spec("cut_cross_entropy") is not None
HAS_LIGER = importlib.util.find_spec("liger_kernel") is not None


@pytest.mark.skipif(not HAS_CCE, reason="cut-cross-entropy is not installed (optional [gpu] extra)")
def test_cce_torch_compile_matches_naive():
    hidden, weight, targets, tw, _ = make(n=40, h=16, v=64, zero_frac=0.3)
    out = cce_weighted_nll(hidden, weight, targets, tw, impl="torch_compile")
    ref = naive_weighted_nll(hidden, weight, targets, tw)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads(out, [hidden, weight]), grads(ref, [hidden, weight])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(HAS_CCE, reason="cut-cross-entropy is installed")
def test_cce_missing_names_the_extra():
    hidden, weight, targets, tw, _ = make()
    with pytest.raises(ImportError, match=r"cj2\[gpu\]"):
        cce_weighted_nll(hidden, weight, targets, tw, impl="torch_compile")


@pytest.mark.skipif(HAS_LIGER, reason="liger-kernel is installed")
def test_liger_missing_names_the_extra():
    hidden, weight, targets, tw, _ = make()
    with pytest.raises(ImportError, match=r"cj2\[gpu\]"):
        liger_weighted_nll(hidden, weight, targets, tw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_naive():
    hidden, weight, targets, tw, b = make(n=300, h=32, v=1000, bias=True, zero_frac=0.2)
    cuda = [x.detach().cuda().requires_grad_() for x in (hidden, weight, b)]
    t, w = targets.cuda(), tw.cuda()
    out = chunked_weighted_nll(cuda[0], cuda[1], t, w, cuda[2], chunk_size=64)
    ref = naive_weighted_nll(cuda[0], cuda[1], t, w, cuda[2])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for a, b_ in zip(grads(out, cuda), grads(ref, cuda)):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-4)
