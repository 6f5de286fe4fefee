"""``loss.impl=cce`` and ``loss.impl=liger`` without the GPU kernels: fake backend modules, exact losses.

Neither cut-cross-entropy nor liger-kernel runs on CPU, so each test installs a stand-in module in
``sys.modules`` with the real function's name and signature that computes the loss in plain torch. The
stand-ins keep the properties the wrappers must cope with:

* CCE's ``impl="cce"`` filters gradients unless ``filter_eps=None``: the fake drops the gradient of
  every logit whose softmax is below the threshold (``"auto"``, CCE's default, is taken as ``2**-7``
  here), so a wrapper that leaves the filter on gets visibly wrong gradients. Unlike the real kernel,
  the fake's ``impl="cce"`` runs on CPU tensors.
* Liger computes its gradients in the forward pass and scales them by a scalar upstream gradient in the
  backward pass; the fake does the same and refuses ``reduction="none"``.

Then the training path (objective, Lightning module) under ``impl=cce|liger`` with non-uniform token
weights (record weights, both SFT normalisations) must equal ``impl=chunked`` / ``impl=naive``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from cj2.losses import build_objective, weighted_nll
from cj2.losses import chunked as chunked_mod
from cj2.losses.chunked import cce_weighted_nll, liger_weighted_nll

AUTO_EPS = 2**-7  # the fake CCE's stand-in for filter_eps="auto"
TIGHT = {"rtol": 1e-10, "atol": 1e-10}  # float64 throughout


# ------------------------------------------------------------------------------------------ fake kernels
def _logits(e: torch.Tensor, c: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    z = e @ c.t()
    return z if bias is None else z + bias


class FakeCCE:
    """``cut_cross_entropy.linear_cross_entropy`` (25.x signature) in plain torch; records its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def linear_cross_entropy(
        self,
        e: torch.Tensor,
        c: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        ignore_index: int = -100,
        softcap: float | None = None,
        reduction: str = "mean",
        shift: bool | int = 0,
        filter_eps: float | str | None = "auto",
        use_kahan: bool = False,
        impl: str = "cce",
    ) -> torch.Tensor:
        self.calls.append(
            {"rows": e.shape[0], "reduction": reduction, "filter_eps": filter_eps, "impl": impl, "bias": bias}
        )
        if impl not in ("cce", "cce_exact", "torch_compile"):
            raise NotImplementedError(f"{impl} is not implemented.")
        if targets.dtype != torch.long:
            raise TypeError("targets must be int64")
        z = _logits(e, c, bias)
        if impl == "cce" and filter_eps is not None:  # (cce_exact forces filter_eps=None)
            eps = AUTO_EPS if filter_eps == "auto" else float(filter_eps)
            small = z.detach().softmax(dim=-1) < eps
            z = torch.where(small, z.detach(), z)  # no gradient through the filtered entries
        return F.cross_entropy(z, targets, ignore_index=ignore_index, reduction=reduction)


class _ScalarGradCE(torch.autograd.Function):
    """Liger's scheme: gradients computed in forward; backward only scales them by a scalar."""

    @staticmethod
    def forward(ctx: Any, e, c, bias, targets, reduction):
        leaves = [x.detach().requires_grad_(x.requires_grad) for x in (e, c)]
        b = None if bias is None else bias.detach().requires_grad_(bias.requires_grad)
        with torch.enable_grad():
            loss = F.cross_entropy(_logits(leaves[0], leaves[1], b), targets, reduction=reduction)
            wanted = [x for x in (*leaves, b) if x is not None and x.requires_grad]
            got = iter(torch.autograd.grad(loss, wanted)) if wanted else iter(())
        grads = [next(got) if x is not None and x.requires_grad else None for x in (*leaves, b)]
        ctx.grads = grads
        return loss.detach()

    @staticmethod
    def backward(ctx: Any, grad_output):
        assert grad_output.dim() == 0, "Liger scales its saved gradients by a scalar only"
        return (*[None if g is None else g * grad_output for g in ctx.grads], None, None)


class FakeLiger:
    """``liger_kernel.transformers.functional.liger_fused_linear_cross_entropy`` in plain torch."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def liger_fused_linear_cross_entropy(
        self,
        input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        bias: torch.Tensor | None = None,
        ce_weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        lse_square_scale: float = 0.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        softcap: float | None = None,
        return_z_loss: bool = False,
    ) -> torch.Tensor:
        self.calls.append({"rows": input.shape[0], "reduction": reduction, "bias": bias})
        if reduction not in ("mean", "sum"):
            raise NotImplementedError("the fake, like Liger's scalar-grad backward, supports mean | sum")
        if target.dtype != torch.long:
            raise TypeError("target must be int64")
        return _ScalarGradCE.apply(input, weight, bias, target, reduction)


@pytest.fixture()
def fake_cce(monkeypatch) -> FakeCCE:
    fake = FakeCCE()
    module = types.ModuleType("cut_cross_entropy")
    module.linear_cross_entropy = fake.linear_cross_entropy
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", module)
    return fake


@pytest.fixture()
def fake_liger(monkeypatch) -> FakeLiger:
    fake = FakeLiger()
    names = ("liger_kernel", "liger_kernel.transformers", "liger_kernel.transformers.functional")
    modules = [types.ModuleType(name) for name in names]
    modules[0].transformers = modules[1]
    modules[1].functional = modules[2]
    modules[2].liger_fused_linear_cross_entropy = fake.liger_fused_linear_cross_entropy
    for name, module in zip(names, modules):
        monkeypatch.setitem(sys.modules, name, module)
    return fake


# ------------------------------------------------------------------------------------------------ inputs
def make(n=29, h=6, v=31, seed=0):
    """float64 leaves with bias; token weights with repeats (per-record weights) and zeros."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64).requires_grad_()
    weight = torch.randn(v, h, generator=g, dtype=torch.float64).requires_grad_()
    bias = (0.5 * torch.randn(v, generator=g, dtype=torch.float64)).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    choices = torch.tensor([0.0, 0.25, 1.0, 1.0 / 3.0, 2.0], dtype=torch.float64)
    tw = choices[torch.randint(0, len(choices), (n,), generator=g)]
    tw[:2] = torch.tensor([0.25, 2.0], dtype=torch.float64)  # not all zero whatever the seed
    return hidden, weight, bias, targets, tw


def reference(hidden, weight, bias, targets, tw):
    nll = F.cross_entropy(_logits(hidden, weight, bias), targets, reduction="none")
    return (tw * nll).sum()


def loss_and_grads(fn, leaves):
    loss = fn(*leaves)
    return loss, torch.autograd.grad(loss, leaves)


def assert_same(got, want, tol=TIGHT):
    torch.testing.assert_close(got[0], want[0], **tol)
    for a, b in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(a, b, **tol)


# ------------------------------------------------------------------------------------------- the wrappers
def test_cce_wrapper_is_exact_for_any_token_weights(fake_cce):
    hidden, weight, bias, targets, tw = make()
    leaves = (hidden, weight, bias)
    got = loss_and_grads(lambda h, w, b: cce_weighted_nll(h, w, targets, tw, bias=b), leaves)
    want = loss_and_grads(lambda h, w, b: reference(h, w, b, targets, tw), leaves)
    assert_same(got, want)
    assert got[0].dtype == torch.float64
    (call,) = fake_cce.calls
    assert call["rows"] == int((tw != 0).sum())  # weight-0 rows never reach the kernel
    assert call["reduction"] == "none" and call["bias"] is bias
    assert call["impl"] == "torch_compile"  # CPU tensors: CCE's Triton kernels need CUDA


def test_cce_kernel_gets_exact_gradients_by_default(fake_cce):
    """impl="cce" (CCE's filtering kernel, what the wrapper picks on CUDA) with filter_eps=None."""
    hidden, weight, bias, targets, tw = make()
    leaves = (hidden, weight, bias)
    exact = loss_and_grads(lambda h, w, b: cce_weighted_nll(h, w, targets, tw, b, impl="cce"), leaves)
    assert [c["filter_eps"] for c in fake_cce.calls] == [None]
    assert_same(exact, loss_and_grads(lambda h, w, b: reference(h, w, b, targets, tw), leaves))
    # The fake's filter does bite: opting into CCE's default ("auto") keeps the loss, changes the gradients.
    filtered = loss_and_grads(
        lambda h, w, b: cce_weighted_nll(h, w, targets, tw, b, impl="cce", filter_eps="auto"), leaves
    )
    assert fake_cce.calls[-1]["filter_eps"] == "auto"
    torch.testing.assert_close(filtered[0], exact[0], **TIGHT)
    assert not torch.allclose(filtered[1][1], exact[1][1], rtol=1e-6, atol=1e-6)


def test_cce_wrapper_picks_the_cce_kernel_for_cuda_tensors(fake_cce, monkeypatch):
    """Without a GPU: the inputs report is_cuda=True, so the wrapper must ask for impl="cce"."""
    hidden, weight, bias, targets, tw = make()
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    loss = cce_weighted_nll(hidden, weight, targets, tw, bias)
    monkeypatch.undo()
    assert [(c["impl"], c["filter_eps"]) for c in fake_cce.calls] == [("cce", None)]
    torch.testing.assert_close(loss, reference(hidden, weight, bias, targets, tw), **TIGHT)


def test_cce_wrapper_all_zero_weights_is_an_attached_zero(fake_cce):
    hidden, weight, bias, targets, tw = make()
    loss = cce_weighted_nll(hidden, weight, targets, torch.zeros_like(tw), bias)
    assert loss.item() == 0.0 and loss.requires_grad and not fake_cce.calls
    grads = torch.autograd.grad(loss, (hidden, weight, bias))
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_liger_wrapper_is_exact_for_any_token_weights(fake_liger):
    hidden, weight, bias, targets, tw = make()
    leaves = (hidden, weight, bias)
    got = loss_and_grads(lambda h, w, b: liger_weighted_nll(h, w, targets, tw, bias=b), leaves)
    want = loss_and_grads(lambda h, w, b: reference(h, w, b, targets, tw), leaves)
    assert_same(got, want)
    assert got[0].dtype == torch.float64
    # one reduction="sum" call per distinct non-zero weight, covering exactly the weighted rows
    distinct = torch.unique(tw[tw != 0]).numel()
    assert distinct > 1 and len(fake_liger.calls) == distinct
    assert {c["reduction"] for c in fake_liger.calls} == {"sum"}
    assert sum(c["rows"] for c in fake_liger.calls) == int((tw != 0).sum())


def test_liger_wrapper_uniform_weights_is_one_call_on_every_row(fake_liger):
    hidden, weight, bias, targets, _ = make()
    tw = torch.full((hidden.shape[0],), 0.125, dtype=torch.float64)
    leaves = (hidden, weight, bias)
    got = loss_and_grads(lambda h, w, b: liger_weighted_nll(h, w, targets, tw, bias=b), leaves)
    assert_same(got, loss_and_grads(lambda h, w, b: reference(h, w, b, targets, tw), leaves))
    assert [c["rows"] for c in fake_liger.calls] == [hidden.shape[0]]


# ----------------------------------------------------------------------------------------- the dispatch
@pytest.mark.parametrize(("impl", "name"), [("cce", "cce_weighted_nll"), ("liger", "liger_weighted_nll")])
def test_loss_impl_dispatches_to_the_one_wrapper(monkeypatch, impl, name):
    """``weighted_nll(impl=cce|liger)`` (the training path) calls the chunked.py wrapper, nothing else."""
    calls = []

    def spy(hidden, weight, targets, token_weights, bias=None, **kwargs):
        calls.append(kwargs)
        return reference(hidden, weight, bias, targets, token_weights)

    monkeypatch.setattr(chunked_mod, name, spy)
    hidden, weight, bias, targets, tw = make()
    out = weighted_nll(hidden, weight, targets, tw, bias=bias, impl=impl)
    torch.testing.assert_close(out, reference(hidden, weight, bias, targets, tw), **TIGHT)
    assert calls == [{}]  # the wrapper's defaults: exact (cce: filter_eps=None, impl by device)


@pytest.mark.parametrize("impl", ["cce", "liger"])
def test_weighted_nll_fused_matches_naive_and_chunked(fake_cce, fake_liger, impl):
    hidden, weight, bias, targets, tw = make(seed=3)
    leaves = (hidden, weight, bias)

    def run(name):
        return loss_and_grads(lambda h, w, b: weighted_nll(h, w, targets, tw, bias=b, impl=name), leaves)

    got = run(impl)
    assert_same(got, run("naive"))
    assert_same(got, run("chunked"))
    assert fake_cce.calls if impl == "cce" else fake_liger.calls, "the fake kernel was not called"


# ---------------------------------------------------------------------------------- the training path
def weighted_batch(seed: int = 0) -> dict:
    """Four rows of different lengths and record weights; every row but the last has a verdict token."""
    gen = torch.Generator().manual_seed(seed)
    vocab, lengths = 17, [9, 6, 11, 8]
    width = max(lengths)
    input_ids = torch.randint(0, vocab, (len(lengths), width), generator=gen)
    labels = torch.full((len(lengths), width), -100)
    k = torch.tensor([6, 4, 9, -1])
    target = torch.tensor([3, 5, 3, -1])
    candidates = torch.tensor([[3, 5], [3, 5], [3, 5], [-1, -1]])
    for row, length in enumerate(lengths):
        labels[row, 2:length] = input_ids[row, 2:length]
        if k[row] >= 0:
            input_ids[row, k[row]] = labels[row, k[row]] = target[row]
    return {
        "input_ids": input_ids,
        "labels": labels,
        "verdict_index": k,
        "verdict_target": target,
        "verdict_candidates": candidates,
        "weights": torch.tensor([1.0, 0.5, 2.0, 1.0 / 3.0]),
    }


@pytest.mark.parametrize("normalization", ["token", "sequence_sum"])
@pytest.mark.parametrize("name", ["sft", "margin"])
@pytest.mark.parametrize("impl", ["cce", "liger"])
def test_objective_with_record_weights_matches_chunked_and_naive(
    fake_cce, fake_liger, impl, name, normalization
):
    batch = weighted_batch()
    gen = torch.Generator().manual_seed(1)
    b, t = batch["labels"].shape
    hidden = torch.randn(b, t, 6, generator=gen, dtype=torch.float64).requires_grad_()
    weight = torch.randn(17, 6, generator=gen, dtype=torch.float64).requires_grad_()
    bias = (0.1 * torch.randn(17, generator=gen, dtype=torch.float64)).requires_grad_()
    leaves = (hidden, weight, bias)

    def run(which):
        objective = build_objective({"name": name, "impl": which, "sft_normalization": normalization})
        out = objective(hidden, weight, batch, lm_bias=bias)
        return out["loss"], torch.autograd.grad(out["loss"], leaves), out["loss_ce"].detach()

    got = run(impl)
    for ref in ("chunked", "naive"):
        want = run(ref)
        assert_same(got[:2], want[:2])
        torch.testing.assert_close(got[2], want[2], **TIGHT)
    if impl == "liger":  # one call per distinct record weight: the weights really were non-uniform
        assert len(fake_liger.calls) == len(set(batch["weights"].tolist()))
    else:
        assert [c["filter_eps"] for c in fake_cce.calls] == [None]


@pytest.mark.parametrize("impl", ["cce", "liger"])
def test_module_loss_with_record_weights_matches_chunked(tokenizer, tiny_model, fake_cce, fake_liger, impl):
    """JudgeModule.compute_loss (what training_step runs) under impl=cce|liger, sequence_sum, weights."""
    from cj2.data.datamodule import JudgeDataModule
    from cj2.module import JudgeModule

    dm = JudgeDataModule(
        tokenizer, builtin={"n_train": 4, "n_val": 0}, batch_size=4, need_verdict_tokens=True
    )
    dm.setup("fit")
    batch = dict(next(iter(dm.train_dataloader())))
    rows = batch["labels"].shape[0]
    batch["weights"] = torch.tensor([1.0, 0.5, 2.0, 0.25][:rows])
    assert rows >= 2
    tiny_model.double().eval()  # float64 for a tight comparison; no dropout: both runs see one forward
    params = [p for p in tiny_model.parameters() if p.requires_grad]

    def run(which):
        loss = {"name": "margin", "impl": which, "sft_normalization": "sequence_sum"}
        module = JudgeModule(tiny_model, loss)
        out = module.compute_loss(batch, exact_step_norm=False)
        return out["loss"], torch.autograd.grad(out["loss"], params)

    got, want = run(impl), run("chunked")
    assert_same(got, want)
    if impl == "cce":
        assert [c["filter_eps"] for c in fake_cce.calls] == [None]
    else:  # one call per distinct record weight
        assert len(fake_liger.calls) == rows
