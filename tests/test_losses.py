"""The pure loss functions (cj2.losses.verdict / dpo / ce) against hand-computed numbers and gradcheck."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from torch.autograd import gradcheck

from cj2.losses import (
    dpo_verdict_loss,
    hardest_other,
    margin_loss,
    project,
    sequence_dpo_loss,
    sequence_logps,
    temperature_loss,
    token_logps,
    verdict_diagnostics,
    weighted_nll,
)
from cj2.losses.dpo import dpo_logits


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def ramp_rows() -> torch.Tensor:
    """Three V=12 rows: gold outside the top (row 0), gold on top (row 1), gold ahead by > gamma (row 2)."""
    rows = torch.arange(12, dtype=torch.float32).repeat(3, 1)
    rows[2, 5] = 30.0
    return rows


RAMP_TARGET = torch.tensor([3, 11, 5])


# ------------------------------------------------------------------------------------------------- margin
def test_margin_per_row_by_hand():
    # Row 0, gold z=3: negatives are 11..4, 2, 1 (the gold's 3 excluded, 0 is 11th); hinge 7 + z_neg
    #   = 18+17+16+15+14+13+12+11+9+8 = 133.
    # Row 1, gold z=11 is the top logit: negatives 10..1; hinge relu(z_neg - 1) = 9+8+...+1+0 = 45.
    # Row 2, gold z=30 beats every negative by more than gamma: 0.
    logits = ramp_rows()
    for row, expected_sum in ((0, 133.0), (1, 45.0), (2, 0.0)):
        one = logits[row : row + 1]
        gold = RAMP_TARGET[row : row + 1]
        assert margin_loss(one, gold, k=10, gamma=10.0, reduce="sum").item() == pytest.approx(expected_sum)
        assert margin_loss(one, gold, k=10, gamma=10.0, reduce="mean").item() == pytest.approx(
            expected_sum / 10
        )


@pytest.mark.parametrize(
    ("reduce", "reduction", "expected"),
    [
        ("mean", "mean", (13.3 + 4.5 + 0.0) / 3),
        ("mean", "sum", 13.3 + 4.5),
        ("sum", "mean", (133.0 + 45.0) / 3),
        ("sum", "sum", 178.0),
    ],
)
def test_margin_reduce_and_reduction(reduce, reduction, expected):
    got = margin_loss(ramp_rows(), RAMP_TARGET, k=10, gamma=10.0, reduce=reduce, reduction=reduction)
    assert got.item() == pytest.approx(expected)


def test_margin_small_k_takes_only_the_highest_negatives():
    # k=3 on row 0: negatives 11, 10, 9 -> hinges 18, 17, 16.
    got = margin_loss(ramp_rows()[:1], RAMP_TARGET[:1], k=3, gamma=10.0, reduce="mean")
    assert got.item() == pytest.approx(17.0)
    # gamma=0 and a gold on top: nothing to push.
    assert margin_loss(ramp_rows()[1:2], RAMP_TARGET[1:2], k=3, gamma=0.0).item() == 0.0


def test_margin_gradient_by_hand():
    logits = ramp_rows()[:1].clone().requires_grad_(True)
    margin_loss(logits, RAMP_TARGET[:1], k=10, gamma=10.0, reduce="mean").backward()
    expected = torch.full((12,), 0.1)
    expected[3] = -1.0  # d/dz_gt: -(10 active hinges) / 10
    expected[0] = 0.0  # the 11th logit is not a negative
    torch.testing.assert_close(logits.grad[0], expected)

    satisfied = ramp_rows()[2:3].clone().requires_grad_(True)
    margin_loss(satisfied, RAMP_TARGET[2:3]).backward()
    assert torch.count_nonzero(satisfied.grad) == 0


def test_margin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k=12"):
        margin_loss(ramp_rows(), RAMP_TARGET, k=12)
    with pytest.raises(ValueError, match="reduce='max'"):
        margin_loss(ramp_rows(), RAMP_TARGET, reduce="max")
    with pytest.raises(ValueError, match="reduction='avg'"):
        margin_loss(ramp_rows(), RAMP_TARGET, reduction="avg")
    with pytest.raises(ValueError, match="target"):
        margin_loss(ramp_rows(), RAMP_TARGET[:2])


# ---------------------------------------------------------------------------------------------- dpo / temp
DPO_LOGITS = torch.tensor([[0.0, 2.0, 1.0, 0.5, -1.0], [0.0, 2.0, 1.0, 0.5, -1.0]])


def test_dpo_verdict_by_hand():
    target, other = torch.tensor([1, 3]), torch.tensor([2, 0])
    # z_gt - z_other: 2 - 1 = 1 and 0.5 - 0 = 0.5; loss = softplus(-beta * diff).
    row0, row1 = 0.6443966600735709, 0.6684596480132863
    assert row0 == pytest.approx(softplus(-0.1)) and row1 == pytest.approx(softplus(-0.05))
    assert dpo_verdict_loss(DPO_LOGITS, target, other, beta=0.1).item() == pytest.approx((row0 + row1) / 2)
    assert dpo_verdict_loss(DPO_LOGITS, target, other, beta=0.1, reduction="sum").item() == pytest.approx(
        row0 + row1
    )
    logits = DPO_LOGITS[:1].clone().requires_grad_(True)
    dpo_verdict_loss(logits, target[:1], other[:1], beta=0.1).backward()
    slope = 0.1 * (1 / (1 + math.exp(0.1)))  # beta * sigmoid(-beta * diff)
    torch.testing.assert_close(logits.grad[0], torch.tensor([0.0, -slope, slope, 0.0, 0.0]))


def test_temperature_by_hand():
    # z / tau = [0, ln 2, ln 3]: softmax [1/6, 2/6, 3/6]; CE for gold 1 is ln 3, for gold 2 is ln 2.
    logits = 5.0 * torch.tensor([[0.0, math.log(2), math.log(3)]]).repeat(2, 1)
    got = temperature_loss(logits, torch.tensor([1, 2]), tau=5.0)
    assert got.item() == pytest.approx((math.log(3) + math.log(2)) / 2)
    assert temperature_loss(logits, torch.tensor([1, 2]), tau=5.0, reduction="sum").item() == pytest.approx(
        math.log(6)
    )
    with pytest.raises(ValueError, match="tau"):
        temperature_loss(logits, torch.tensor([1, 2]), tau=0.0)


def test_hardest_other_picks_best_wrong_candidate_and_ignores_pad():
    logits = torch.tensor(
        [
            [0.0, 2.0, 1.0, 0.5, -1.0, 0.0],
            [0.0, 2.0, 1.0, 0.5, -1.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, 9.0],  # the pad -1 must not wrap round to the last token (z = 9)
        ]
    )
    target = torch.tensor([1, 3, 0])
    candidates = torch.tensor([[1, 2, 3], [0, 3, -1], [0, 1, -1]])
    assert hardest_other(logits, target, candidates).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="no token other than the gold"):
        hardest_other(logits[:1], torch.tensor([2]), torch.tensor([[2, -1, -1]]))


def test_verdict_diagnostics():
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.5], [0.0, 2.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.0]])
    diag = verdict_diagnostics(
        logits, torch.tensor([1, 3, 1]), torch.tensor([[1, 2, -1], [1, 3, 2], [1, 2, -1]])
    )
    assert diag["verdict_correct"].tolist() == [True, False, False]  # row 2 is a tie: not correct
    assert diag["verdict_scored"].tolist() == [True, True, True]
    torch.testing.assert_close(diag["verdict_margin"], torch.tensor([1.0, -1.5, 0.0]))
    inf = float("-inf")
    torch.testing.assert_close(
        diag["verdict_candidate_logits"], torch.tensor([[2.0, 1.0, inf], [2.0, 0.5, 1.0], [1.0, 1.0, inf]])
    )


# -------------------------------------------------------------------------------------- sequence DPO
def test_sequence_dpo_by_hand():
    pc, pr = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
    rc, rr = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])
    # pair 0: 0.1 * ((-10 + 11) - (-12 + 11)) = 0.2; pair 1: 0.1 * ((0) - (1)) = -0.1
    torch.testing.assert_close(dpo_logits(pc, pr, rc, rr, beta=0.1), torch.tensor([0.2, -0.1]))
    pair0, pair1 = 0.5981388693815918, 0.744396660073571
    assert pair0 == pytest.approx(softplus(-0.2)) and pair1 == pytest.approx(softplus(0.1))
    assert sequence_dpo_loss(pc, pr, rc, rr, beta=0.1).item() == pytest.approx((pair0 + pair1) / 2)
    assert sequence_dpo_loss(pc, pr, rc, rr, beta=0.1, reduction="sum").item() == pytest.approx(pair0 + pair1)


def test_verdict_diagnostics_leave_out_rows_without_a_competitor():
    """A row whose only candidate is the gold token (the rest -1 pad, or the gold id again) has no choice to
    get right: not scored, and not counted correct."""
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.5], [0.0, 2.0, 1.0, 0.5], [0.0, 1.0, 3.0, 0.0]])
    target = torch.tensor([1, 1, 2])
    candidates = torch.tensor([[1, -1, -1], [1, 2, -1], [2, 2, -1]])
    diag = verdict_diagnostics(logits, target, candidates)
    assert diag["verdict_scored"].tolist() == [False, True, False]
    assert diag["verdict_correct"].tolist() == [False, True, False]
    assert diag["verdict_margin"][1].item() == pytest.approx(1.0)
    assert math.isinf(diag["verdict_margin"][0].item()) and math.isinf(diag["verdict_margin"][2].item())
    none = verdict_diagnostics(logits[:2], target[:2], torch.empty(2, 0, dtype=torch.long))
    assert none["verdict_scored"].tolist() == none["verdict_correct"].tolist() == [False, False]


def test_sequence_dpo_never_trains_the_reference():
    pc, pr = torch.tensor([-10.0], requires_grad=True), torch.tensor([-12.0], requires_grad=True)
    rc, rr = torch.tensor([-11.0], requires_grad=True), torch.tensor([-11.0], requires_grad=True)
    sequence_dpo_loss(pc, pr, rc, rr, beta=0.1).backward()
    slope = 0.1 / (1 + math.exp(0.2))  # beta * sigmoid(-margin)
    assert pc.grad.item() == pytest.approx(-slope) and pr.grad.item() == pytest.approx(slope)
    assert rc.grad is None and rr.grad is None
    with pytest.raises(ValueError, match="one shape"):
        sequence_dpo_loss(pc, pr, rc, torch.zeros(2))


def test_sequence_logps_masks_even_infinite_positions():
    per_token = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, float("-inf"), -4.0]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    torch.testing.assert_close(sequence_logps(per_token, mask), torch.tensor([-3.0, -4.5]))


# ------------------------------------------------------------------------------------------------- CE
def identity_head(vocab: int, dtype=torch.float32) -> torch.Tensor:
    """With weight = I (H = V) the hidden rows *are* the logits, so CE values can be written by hand."""
    return torch.eye(vocab, dtype=dtype)


def test_weighted_nll_and_token_logps_by_hand():
    hidden = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, math.log(2), math.log(3), math.log(4)]])
    targets = torch.tensor([2, 3])
    # row 0: uniform over 4 -> NLL ln 4; row 1: softmax [1, 2, 3, 4] / 10 -> NLL of token 3 = ln(10/4)
    torch.testing.assert_close(
        token_logps(hidden, identity_head(4), targets), torch.tensor([-math.log(4), -math.log(2.5)])
    )
    got = weighted_nll(hidden, identity_head(4), targets, torch.tensor([2.0, 0.5]))
    assert got.item() == pytest.approx(2 * math.log(4) + 0.5 * math.log(2.5))
    # A bias [0, 0, 0, ln 2] on row 0: softmax [1, 1, 1, 2] / 5 -> NLL of token 3 = ln(5/2),
    # of token 0 = ln 5.
    bias = torch.tensor([0.0, 0.0, 0.0, math.log(2)])
    got = weighted_nll(
        hidden[:1].repeat(2, 1), identity_head(4), torch.tensor([3, 0]), torch.ones(2), bias=bias
    )
    assert got.item() == pytest.approx(math.log(2.5) + math.log(5))


def test_weighted_nll_empty_is_zero_and_attached():
    hidden = torch.zeros(0, 4, requires_grad=True)
    weight = torch.randn(7, 4, requires_grad=True)
    loss = weighted_nll(hidden, weight, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.count_nonzero(weight.grad) == 0


def test_weighted_nll_validates():
    hidden, weight = torch.zeros(2, 4), torch.zeros(5, 4)
    with pytest.raises(ValueError, match="loss.impl='fast'"):
        weighted_nll(hidden, weight, torch.zeros(2, dtype=torch.long), torch.ones(2), impl="fast")
    with pytest.raises(ValueError, match="do not fit"):
        weighted_nll(hidden, torch.zeros(5, 3), torch.zeros(2, dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError, match="token_weights"):
        weighted_nll(hidden, weight, torch.zeros(2, dtype=torch.long), torch.ones(3))


def test_project_upcasts_half_precision():
    hidden, weight = torch.randn(3, 4).bfloat16(), torch.randn(5, 4).bfloat16()
    assert project(hidden, weight).dtype == torch.float32
    assert project(hidden.double(), weight.double()).dtype == torch.float64


def _chunked_available() -> bool:
    return importlib.util.find_spec("cj2.losses.chunked") is not None


def test_chunked_dispatch_matches_naive_or_says_it_is_missing():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(9, 6, generator=gen, requires_grad=True)
    weight = torch.randn(11, 6, generator=gen, requires_grad=True)
    targets = torch.randint(0, 11, (9,), generator=gen)
    weights = torch.rand(9, generator=gen)
    if not _chunked_available():
        with pytest.raises(NotImplementedError, match="loss.impl=naive"):
            weighted_nll(hidden, weight, targets, weights, impl="chunked")
        return
    naive = weighted_nll(hidden, weight, targets, weights, impl="naive")
    naive_grads = torch.autograd.grad(naive, (hidden, weight))
    chunked = weighted_nll(hidden, weight, targets, weights, impl="chunked", chunk_size=4)
    chunked_grads = torch.autograd.grad(chunked, (hidden, weight))
    torch.testing.assert_close(chunked, naive)
    for got, want in zip(chunked_grads, naive_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(("impl", "module"), [("cce", "cut_cross_entropy"), ("liger", "liger_kernel")])
def test_gpu_backends_name_the_extra_when_missing(impl, module):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed; its agreement with naive is tested where it runs")
    hidden, weight = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ImportError, match=r"cj2\[gpu\]"):
        weighted_nll(hidden, weight, torch.tensor([0, 1, 2]), torch.ones(3), impl=impl)


# ----------------------------------------------------------------------------------------- bf16 overflow
def test_verdict_terms_stay_finite_on_huge_bf16_logits():
    # Every non-gold logit +1e4, the gold -1e4 (bf16 rounds both to +-9984): differences of ~2e4 and an
    # exp of 4e3 would be useless in bf16; upcast to float32 they are exact.
    logits = torch.full((2, 12), 1e4).bfloat16()
    logits[:, 4] = -1e4
    logits.requires_grad_(True)
    target, other = torch.tensor([4, 4]), torch.tensor([7, 7])
    big = 9984.0
    cases = {
        "margin": (lambda z: margin_loss(z, target), 10.0 + 2 * big),
        "dpo": (lambda z: dpo_verdict_loss(z, target, other), 0.1 * 2 * big),
        "temperature": (lambda z: temperature_loss(z, target), 2 * big / 5 + math.log(11)),
    }
    for name, (fn, expected) in cases.items():
        loss = fn(logits)
        assert loss.dtype == torch.float32, name
        assert torch.isfinite(loss), name
        assert loss.item() == pytest.approx(expected, rel=1e-6), name
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad.float()).all(), name


# ------------------------------------------------------------------------------------------- gradcheck
def test_gradcheck_verdict_terms():
    gen = torch.Generator().manual_seed(1)
    logits = (3 * torch.randn(3, 12, generator=gen, dtype=torch.float64)).requires_grad_(True)
    target = torch.tensor([2, 7, 11])
    other = torch.tensor([5, 0, 3])
    for reduce in ("mean", "sum"):
        assert gradcheck(lambda z, r=reduce: margin_loss(z, target, k=4, gamma=10.0, reduce=r), (logits,))
    assert gradcheck(lambda z: dpo_verdict_loss(z, target, other, beta=0.1), (logits,))
    assert gradcheck(lambda z: temperature_loss(z, target, tau=5.0), (logits,))


def test_gradcheck_sequence_dpo_and_ce():
    gen = torch.Generator().manual_seed(2)
    logps = torch.randn(2, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    ref = torch.randn(2, 3, generator=gen, dtype=torch.float64)  # frozen: a constant, not an input
    assert gradcheck(lambda p: sequence_dpo_loss(p[0], p[1], ref[0], ref[1], beta=0.5), (logps,))
    mask = torch.tensor([[True, False, True], [True, True, False]])
    assert gradcheck(lambda p: sequence_logps(p, mask), (logps,))

    hidden = torch.randn(5, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    weight = torch.randn(7, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    bias = torch.randn(7, generator=gen, dtype=torch.float64).requires_grad_(True)
    targets = torch.tensor([0, 6, 3, 3, 1])
    token_weights = torch.rand(5, generator=gen, dtype=torch.float64)
    assert gradcheck(
        lambda h, w, b: weighted_nll(h, w, targets, token_weights, bias=b), (hidden, weight, bias)
    )
    assert gradcheck(lambda h, w: token_logps(h, w, targets), (hidden, weight))
