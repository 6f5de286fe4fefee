"""The objectives of cj2.losses.objective: hand-computed values, normalisation, accumulation, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from cj2.losses import CE_BACKENDS, LossConfig, build_objective, register_ce_backend
from cj2.losses.ce import _naive

OBJECTIVE_NAMES = ("sft", "margin", "dpo", "temperature", "dpo_seq")
LN2, LN6 = math.log(2), math.log(6)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# -------------------------------------------------------------------------------------- hand-made batch
def hand_batch() -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One row, T=5, V=H=6 with an identity head, so each hidden row is the logit vector it produces.

    Tokens [1, 2, 3, 4, 5]; prompt = positions 0-1, response = 2-4, the verdict token 4 at k=3 with
    candidates {4, 5}. Position 1 predicts token 3 (uniform logits: NLL ln 6), position 2 predicts the
    verdict (z = [0, 0, 0, 0, 3, 1]), position 3 predicts token 5 (uniform: ln 6). Positions 0 and 4
    predict nothing trained and get values that would show if they leaked in.
    """
    hidden = torch.zeros(1, 5, 6)
    hidden[0, 0] = torch.tensor([9.0, -9, 9, -9, 9, -9])
    hidden[0, 2] = torch.tensor([0.0, 0, 0, 0, 3, 1])
    hidden[0, 4] = torch.tensor([-9.0, 9, -9, 9, -9, 9])
    batch = {
        "input_ids": torch.tensor([[1, 2, 3, 4, 5]]),
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
        "labels": torch.tensor([[-100, -100, 3, 4, 5]]),
        "verdict_index": torch.tensor([3]),
        "verdict_target": torch.tensor([4]),
        "verdict_candidates": torch.tensor([[4, 5, -1]]),
        "ids": ["hand-0"],
    }
    return hidden, torch.eye(6), batch


VERDICT_NLL = math.log(4 + math.exp(3) + math.exp(1)) - 3  # CE of the verdict token at z = [0,0,0,0,3,1]
CE_WITH_VERDICT = (2 * LN6 + VERDICT_NLL) / 3
CE_WITHOUT_VERDICT = 2 * LN6 / 2


@pytest.mark.parametrize(
    ("options", "loss_ce", "loss_verdict"),
    [
        ({"name": "sft"}, CE_WITH_VERDICT, None),
        # k=2 negatives: z=1 (token 5) and z=0 -> relu(10 - 2) = 8 and relu(10 - 3) = 7, mean 7.5
        ({"name": "margin", "k": 2}, CE_WITHOUT_VERDICT, 7.5),
        ({"name": "margin", "k": 2, "reduce": "sum"}, CE_WITHOUT_VERDICT, 15.0),
        ({"name": "margin", "k": 2, "answer_token_ce": True}, CE_WITH_VERDICT, 7.5),
        # the other candidate is token 5 (z=1): softplus(-0.1 * (3 - 1))
        ({"name": "dpo"}, CE_WITHOUT_VERDICT, softplus(-0.2)),
        # CE(z / 5, 4) = ln(4 + e^0.6 + e^0.2) - 0.6
        ({"name": "temperature"}, CE_WITHOUT_VERDICT, math.log(4 + math.exp(0.6) + math.exp(0.2)) - 0.6),
    ],
)
def test_objectives_by_hand(options, loss_ce, loss_verdict):
    hidden, weight, batch = hand_batch()
    out = build_objective({**options, "weight": 0.5})(hidden, weight, batch)
    assert out["loss_ce"].item() == pytest.approx(loss_ce)
    if loss_verdict is None:
        assert "loss_verdict" not in out
        assert out["loss"].item() == pytest.approx(loss_ce)
    else:
        assert out["loss_verdict"].item() == pytest.approx(loss_verdict)
        assert out["loss"].item() == pytest.approx(loss_ce + 0.5 * loss_verdict)
    # Diagnostics for every objective: candidates 4 (z=3) and 5 (z=1).
    assert out["verdict_correct"].tolist() == [True]
    torch.testing.assert_close(out["verdict_margin"], torch.tensor([2.0]))
    torch.testing.assert_close(out["verdict_candidate_logits"], torch.tensor([[3.0, 1.0, float("-inf")]]))
    assert not out["verdict_margin"].requires_grad


def test_verdict_position_gets_no_ce_gradient_without_answer_token_ce():
    hidden, weight, batch = hand_batch()
    hidden.requires_grad_(True)
    cfg = {"name": "margin", "k": 2, "weight": 0.0}
    build_objective(cfg)(hidden, weight, batch)["loss"].backward()
    assert torch.count_nonzero(hidden.grad[0, 2]) == 0  # g has weight 0 and the CE skips position k-1
    assert torch.count_nonzero(hidden.grad[0, 1]) > 0 and torch.count_nonzero(hidden.grad[0, 3]) > 0
    # Positions that predict nothing trained never get a gradient.
    assert torch.count_nonzero(hidden.grad[0, 0]) == 0 and torch.count_nonzero(hidden.grad[0, 4]) == 0
    hidden.grad = None
    build_objective({**cfg, "answer_token_ce": True})(hidden, weight, batch)["loss"].backward()
    assert torch.count_nonzero(hidden.grad[0, 2]) > 0


def test_token_vs_sequence_sum_normalisation():
    # Row 0 is the hand batch (3 response tokens); row 1 has one response token, uniform logits: ln 6.
    hidden, weight, batch = hand_batch()
    hidden = torch.cat([hidden, torch.zeros(1, 5, 6)])
    batch = {
        **batch,
        "input_ids": torch.tensor([[1, 2, 3, 4, 5], [1, 2, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
        "labels": torch.tensor([[-100, -100, 3, 4, 5], [-100, 2, -100, -100, -100]]),
        "verdict_index": torch.tensor([3, -1]),
        "verdict_target": torch.tensor([4, -1]),
        "verdict_candidates": torch.tensor([[4, 5, -1], [-1, -1, -1]]),
        "ids": ["hand-0", "plain-1"],
    }
    total = 3 * LN6 + VERDICT_NLL
    token = build_objective({"name": "sft"})(hidden, weight, batch)
    assert token["loss"].item() == pytest.approx(total / 4)
    seq = build_objective({"name": "sft", "sft_normalization": "sequence_sum"})(hidden, weight, batch)
    assert seq["loss"].item() == pytest.approx(total / 2)
    margin = build_objective({"name": "margin", "k": 2, "sft_normalization": "sequence_sum"})(
        hidden, weight, batch
    )
    assert margin["loss_ce"].item() == pytest.approx(3 * LN6 / 2)
    assert margin["loss_verdict"].item() == pytest.approx(7.5)  # one verdict row: the mean is that row
    assert build_objective({"name": "margin"}).denominators(batch) == {"ce": 3, "seq": 2, "verdict": 1}
    assert build_objective({"name": "sft"}).denominators(batch) == {"ce": 4, "seq": 2, "verdict": 1}


def test_dpo_seq_by_hand():
    # V=H=4, identity head. Chosen row: tokens [0, 2, 3]; rejected row: [0, 2, 1]; response = positions 1-2.
    # Position 0 (uniform) predicts 2: -ln 4 in both; position 1 (softmax [1,2,3,4]/10) predicts 3 (chosen,
    # log 0.4) or 1 (rejected, log 0.2).
    hidden = torch.zeros(2, 3, 4)
    hidden[:, 1] = torch.log(torch.tensor([1.0, 2, 3, 4]))
    batch = {
        "input_ids": torch.tensor([[0, 2, 3], [0, 2, 1]]),
        "attention_mask": torch.ones(2, 3, dtype=torch.long),
        "labels": torch.tensor([[-100, 2, 3], [-100, 2, 1]]),
        "verdict_index": torch.tensor([-1, -1]),
        "verdict_target": torch.tensor([-1, -1]),
        "verdict_candidates": torch.full((2, 2), -1),
        "ids": ["pair-0/chosen", "pair-0/rejected"],
    }
    objective = build_objective({"name": "dpo_seq", "weight": 2.0})
    assert objective.needs_reference and not objective.uses_verdict
    policy = objective.response_logps(hidden, torch.eye(4), batch)
    torch.testing.assert_close(
        policy, torch.tensor([-math.log(4) + math.log(0.4), -math.log(4) + math.log(0.2)])
    )
    out = objective(hidden, torch.eye(4), batch, ref_logps=torch.tensor([-2.0, -2.0]))
    # equal references: margin = 0.1 * (log 0.4 - log 0.2) = 0.1 ln 2
    assert out["loss_dpo_seq"].item() == pytest.approx(softplus(-0.1 * LN2))
    assert out["loss"].item() == pytest.approx(2.0 * softplus(-0.1 * LN2))
    torch.testing.assert_close(out["reward_margin"], torch.tensor([0.1 * LN2]))
    assert out["loss_ce"].item() == pytest.approx((math.log(4) - math.log(0.4)) / 2)  # chosen tokens only
    assert not out["loss_ce"].requires_grad
    assert objective.denominators(batch) == {"ce": 2, "seq": 2, "verdict": 0}
    with pytest.raises(ValueError, match="ref_logps"):
        objective(hidden, torch.eye(4), batch)
    odd = {key: value[:1] for key, value in batch.items()}
    with pytest.raises(ValueError, match="even batch"):
        objective(hidden[:1], torch.eye(4), odd, ref_logps=torch.zeros(1))


# -------------------------------------------------------------------------------------- random batches
def random_batch(rows: int, vocab: int, seed: int, lengths: list[int] | None = None) -> dict:
    """Right-padded rows of different lengths; every row but the last carries a verdict token."""
    gen = torch.Generator().manual_seed(seed)
    lengths = lengths or [int(x) for x in torch.randint(5, 11, (rows,), generator=gen)]
    width = max(lengths)
    input_ids = torch.zeros(rows, width, dtype=torch.long)
    attention = torch.zeros(rows, width, dtype=torch.long)
    labels = torch.full((rows, width), -100)
    verdict_index = torch.full((rows,), -1)
    verdict_target = torch.full((rows,), -1)
    candidates = torch.full((rows, 3), -1)
    for row, length in enumerate(lengths):
        prompt = int(torch.randint(1, length - 2, (1,), generator=gen))
        input_ids[row, :length] = torch.randint(0, vocab, (length,), generator=gen)
        attention[row, :length] = 1
        labels[row, prompt:length] = input_ids[row, prompt:length]
        if row == rows - 1:
            continue  # a format-none row: CE only
        count = 2 + row % 2  # two candidates plus pad, or three
        chosen = torch.randperm(vocab, generator=gen)[:count]
        candidates[row, :count] = chosen
        k = int(torch.randint(prompt, length, (1,), generator=gen))
        verdict_index[row] = k
        verdict_target[row] = chosen[row % count]
        input_ids[row, k] = labels[row, k] = chosen[row % count]
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "verdict_index": verdict_index,
        "verdict_target": verdict_target,
        "verdict_candidates": candidates,
        "ids": [f"rec-{seed}-{row}" for row in range(rows)],
    }


def select(batch: dict, rows: list[int]) -> dict:
    """A micro-batch of ``rows``, trimmed to its own longest row, as a collator would pad it."""
    width = int(batch["attention_mask"][rows].sum(dim=1).max())
    out = {}
    for key, value in batch.items():
        if key == "ids":
            out[key] = [value[row] for row in rows]
        elif value.dim() == 2 and key != "verdict_candidates":
            out[key] = value[rows, :width]
        else:
            out[key] = value[rows]
    return out


def leaves(rows: int, width: int, hidden_size: int, vocab: int, seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, width, hidden_size, generator=gen, dtype=dtype).requires_grad_(True)
    weight = torch.randn(vocab, hidden_size, generator=gen, dtype=dtype).requires_grad_(True)
    bias = (0.1 * torch.randn(vocab, generator=gen, dtype=dtype)).requires_grad_(True)
    return hidden, weight, bias


@pytest.mark.parametrize("normalization", ["token", "sequence_sum"])
@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_gradient_accumulation_is_exact(name, normalization):
    """4 micro-batches with the window's summed denominators == 1 batch of 4: loss and gradients."""
    vocab = 16
    if name == "dpo_seq":
        batch = random_batch(8, vocab, seed=3)
        windows = [[i, i + 4] for i in range(4)]  # a pair (chosen i, rejected i+4) per micro-batch
        ref = torch.randn(8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    else:
        batch = random_batch(4, vocab, seed=3, lengths=[9, 5, 7, 6])
        windows = [[i] for i in range(4)]
        ref = None
    objective = build_objective({"name": name, "sft_normalization": normalization, "weight": 0.7})
    hidden, weight, bias = leaves(len(batch["ids"]), batch["labels"].shape[1], 8, vocab, seed=5)
    inputs = (hidden, weight, bias)

    full = objective(hidden, weight, batch, lm_bias=bias, ref_logps=ref)
    full_grads = torch.autograd.grad(full["loss"], inputs)

    micro_batches = [select(batch, rows) for rows in windows]
    totals: dict[str, torch.Tensor] = {}
    for micro in micro_batches:
        for key, count in objective.denominators(micro).items():
            totals[key] = totals.get(key, 0) + count
    assert totals == objective.denominators(batch)
    summed: dict[str, torch.Tensor] = {}
    grads = [torch.zeros_like(x) for x in inputs]
    for rows, micro in zip(windows, micro_batches):
        width = micro["labels"].shape[1]
        out = objective(
            hidden[rows, :width],
            weight,
            micro,
            lm_bias=bias,
            denominators=totals,
            ref_logps=None if ref is None else ref[rows],
        )
        for acc, grad in zip(grads, torch.autograd.grad(out["loss"], inputs)):
            acc += grad
        for key, value in out.items():
            if key.startswith("loss"):
                summed[key] = summed.get(key, 0) + value.detach()

    for key, value in summed.items():
        torch.testing.assert_close(value, full[key].detach(), atol=1e-6, rtol=0, msg=key)
    for got, want in zip(grads, full_grads):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert full_grads[1].abs().sum() > 0


def test_local_denominators_would_break_accumulation():
    """The control for the test above: averaging per-micro-batch means is not the batch mean."""
    batch = random_batch(4, 16, seed=3, lengths=[9, 5, 7, 6])
    objective = build_objective({"name": "sft"})
    hidden, weight, _ = leaves(4, 9, 8, 16, seed=5)
    full = objective(hidden, weight, batch)["loss"]
    naive_mean = (
        sum(
            objective(hidden[[i], : int(batch["attention_mask"][i].sum())], weight, select(batch, [i]))[
                "loss"
            ]
            for i in range(4)
        )
        / 4
    )
    assert abs(full.item() - naive_mean.item()) > 1e-3


@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_gradcheck_whole_objective(name):
    rows = 2
    batch = random_batch(rows, 7, seed=11, lengths=[5, 4])
    if name != "dpo_seq":  # give both rows a verdict so the term sees two rows
        batch = random_batch(3, 7, seed=11, lengths=[5, 4, 5])
        rows = 3
    objective = build_objective({"name": name, "k": 3, "weight": 0.5})
    ref = torch.tensor([-3.0, -4.0], dtype=torch.float64) if name == "dpo_seq" else None
    hidden, weight, bias = leaves(rows, 5, 3, 7, seed=12)

    def loss(h, w, b):
        return objective(h, w, batch, lm_bias=b, ref_logps=ref)["loss"]

    assert gradcheck(loss, (hidden, weight, bias), fast_mode=True)


# ------------------------------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_batch_without_verdicts(name):
    batch = random_batch(2, 16, seed=7)
    batch["verdict_index"][:] = -1
    batch["verdict_target"][:] = -1
    batch["verdict_candidates"][:] = -1
    hidden, weight, bias = leaves(2, batch["labels"].shape[1], 8, 16, seed=8, dtype=torch.float32)
    objective = build_objective({"name": name})
    out = objective(hidden, weight, batch, lm_bias=bias, ref_logps=torch.zeros(2))
    if objective.uses_verdict:
        assert out["loss_verdict"].item() == 0.0 and out["loss_verdict"].requires_grad
        torch.testing.assert_close(out["loss"], out["loss_ce"])
    assert out["verdict_correct"].shape == (0,) and out["verdict_candidate_logits"].shape == (0, 3)
    out["loss"].backward()
    assert torch.isfinite(hidden.grad).all() and weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_all_masked_batch_is_zero_and_attached(name):
    batch = random_batch(2, 16, seed=9)
    batch["labels"][:] = -100
    batch["verdict_index"][:] = -1
    hidden, weight, bias = leaves(2, batch["labels"].shape[1], 8, 16, seed=10, dtype=torch.float32)
    objective = build_objective({"name": name})
    assert objective.denominators(batch)["ce"] == 0
    out = objective(hidden, weight, batch, lm_bias=bias, ref_logps=torch.tensor([-1.0, -3.0]))
    assert out["loss"].requires_grad
    if name == "dpo_seq":
        # policy log-probs are empty sums (0): only the reference's margin is left, 0.1 * (1 - 3)
        assert out["loss"].item() == pytest.approx(softplus(-0.1 * (1.0 - 3.0)))
    else:
        assert out["loss"].item() == 0.0
    out["loss"].backward()
    for leaf in (hidden, weight, bias):
        assert leaf.grad is not None and torch.count_nonzero(leaf.grad) == 0


def test_bf16_huge_logits_stay_finite():
    # Identity head scaled by 100 and hidden values of +-100: logits of +-1e4 in bf16.
    batch = random_batch(3, 16, seed=13)
    gen = torch.Generator().manual_seed(14)
    hidden = (100 * torch.randn(3, batch["labels"].shape[1], 16, generator=gen).sign()).bfloat16()
    hidden.requires_grad_(True)
    weight = (100 * torch.eye(16)).bfloat16().requires_grad_(True)
    for name in ("sft", "margin", "dpo", "temperature"):
        out = build_objective({"name": name})(hidden, weight, batch)
        assert out["loss"].dtype == torch.float32
        assert torch.isfinite(out["loss"]), name
        assert out["loss"].item() > 1e3, name  # the huge logits are really there
        grads = torch.autograd.grad(out["loss"], (hidden, weight))
        assert all(torch.isfinite(g.float()).all() for g in grads), name


# ------------------------------------------------------------------------------------ invalid input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"name": "margni"},
            r"loss.name='margni' is not valid; choose one of: sft, margin, dpo, temperature",
        ),
        ({"reduce": "max"}, r"loss.reduce='max' .* mean, sum"),
        ({"sft_normalization": "tokens"}, r"token, sequence_sum"),
        ({"impl": "fast"}, r"loss.impl='fast' .* naive"),
        ({"gama": 5.0}, r"unknown loss option\(s\) gama; valid options: .*gamma"),
        ({"k": 0}, r"loss.k=0"),
        ({"tau": 0.0}, r"loss.tau=0.0"),
        ({"beta": -1.0}, r"loss.beta=-1.0"),
    ],
)
def test_invalid_config_is_a_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        build_objective(options)


def test_config_forms():
    assert build_objective(LossConfig(name="dpo")).cfg.name == "dpo"
    assert build_objective({"_target_": "ignored", "name": "temperature"}).cfg.name == "temperature"
    with pytest.raises(TypeError, match="LossConfig or a mapping"):
        build_objective("margin")
    with pytest.raises(ValueError, match="choose one of"):
        LossConfig(name="ppo")


def test_registered_backend_is_selectable(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args[0].shape[0])
        return _naive(*args)

    monkeypatch.setitem(CE_BACKENDS, "counting", counting)
    assert register_ce_backend("counting")(counting) is counting
    hidden, weight, batch = hand_batch()
    out = build_objective({"name": "sft", "impl": "counting"})(hidden, weight, batch)
    assert out["loss"].item() == pytest.approx(CE_WITH_VERDICT) and calls == [3]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("verdict_candidates", [[4, 4, -1]], "candidate ids repeat"),
        ("verdict_candidates", [[5, 2, -1]], "gold verdict token is not among its candidates"),
        ("verdict_candidates", [[4, -1, -1]], "fewer than two candidates"),
        ("input_ids", [[1, 2, 3, 5, 5]], "token at verdict_index is not the gold"),
    ],
)
def test_verdict_objective_refuses_bad_candidates(field, value, message):
    hidden, weight, batch = hand_batch()
    batch[field] = torch.tensor(value)
    for name in ("margin", "dpo", "temperature"):
        with pytest.raises(ValueError, match=f"record 'hand-0'.*{message}.*loss.name=sft"):
            build_objective({"name": name, "k": 2})(hidden, weight, batch)
    # sft trains on CE only and still reports diagnostics (a tie between repeated ids is not correct).
    out = build_objective({"name": "sft"})(hidden, weight, batch)
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("index", [0, 5, -2])
def test_verdict_index_out_of_range(index):
    hidden, weight, batch = hand_batch()
    batch["verdict_index"] = torch.tensor([index])
    for name in OBJECTIVE_NAMES:
        with pytest.raises(ValueError, match=f"record 'hand-0'.*verdict_index={index}"):
            build_objective({"name": name}).denominators(batch)


def test_shape_and_vocabulary_errors():
    hidden, weight, batch = hand_batch()
    objective = build_objective({"name": "sft"})
    with pytest.raises(ValueError, match=r"hidden must be \[B, T, H\]"):
        objective(hidden[:, :4], weight, batch)
    with pytest.raises(ValueError, match=r"lm_weight must be \[V, H=6\]"):
        objective(hidden, weight[:, :5], batch)
    with pytest.raises(ValueError, match=r"not token ids in \[0, 6\)"):
        objective(hidden, weight, {**batch, "verdict_candidates": torch.tensor([[4, 6, -1]])})
    with pytest.raises(KeyError, match="verdict_index"):
        objective(hidden, weight, {k: v for k, v in batch.items() if k != "verdict_index"})
    with pytest.raises(KeyError, match="denominators has no 'ce'"):
        objective(hidden, weight, batch, denominators={"seq": 1})


def test_sample_weights_weight_every_term_and_uniform_weights_change_nothing():
    """Per-row weights (rejection sampling's 1/kept): a weighted batch equals the batch with rows repeated."""
    from cj2.losses import build_objective

    torch.manual_seed(0)
    B, T, H, V = 3, 9, 6, 14
    hidden = torch.randn(B, T, H, dtype=torch.float64)
    weight = torch.randn(V, H, dtype=torch.float64)
    labels = torch.full((B, T), -100)
    labels[:, 4:] = torch.randint(0, V, (B, T - 4))
    k = torch.tensor([6, 7, 8])
    cands = torch.tensor([[1, 2], [1, 2], [1, 2]])
    target = torch.tensor([1, 2, 1])
    ids = torch.randint(0, V, (B, T))
    ids[torch.arange(B), k] = target
    labels[torch.arange(B), k] = target
    base = {
        "input_ids": ids,
        "labels": labels,
        "verdict_index": k,
        "verdict_target": target,
        "verdict_candidates": cands,
    }
    for name in ("sft", "margin", "dpo", "temperature"):
        obj = build_objective({"name": name, "impl": "naive"})
        plain = obj(hidden, weight, base)["loss"]
        ones = obj(hidden, weight, {**base, "weights": torch.ones(B)})["loss"]
        torch.testing.assert_close(plain, ones)
        # weight 2 on row 0 == row 0 appearing twice
        weighted = obj(hidden, weight, {**base, "weights": torch.tensor([2.0, 1.0, 1.0])})["loss"]
        rep = [0, 0, 1, 2]
        repeated = obj(hidden[rep], weight, {key: v[rep] for key, v in base.items()})["loss"]
        torch.testing.assert_close(weighted, repeated)


# ------------------------------------------------------------------------------ verdict logits precision
def test_verdict_logits_are_fp32_under_bf16_autocast():
    """Under bf16 autocast the verdict logits are fp32 and equal an fp32 computation (no autocast) within 1e-5
    relative, and so is the verdict term; a bf16 projection would be off by far more."""
    vocab = 32
    batch = random_batch(4, vocab, seed=21)
    gen = torch.Generator().manual_seed(22)
    hidden = (4 * torch.randn(4, batch["labels"].shape[1], vocab, generator=gen)).requires_grad_(True)
    weight = torch.randn(vocab, vocab, generator=gen).requires_grad_(True)
    bias = torch.randn(vocab, generator=gen).requires_grad_(True)
    objective = build_objective({"name": "margin", "k": 3})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective(hidden, weight, batch, lm_bias=bias)
    rows = (batch["verdict_index"] >= 0).nonzero().squeeze(1)
    at = hidden[rows, batch["verdict_index"][rows] - 1]
    want = torch.nn.functional.linear(at, weight, bias)  # fp32, no autocast
    cand = batch["verdict_candidates"][rows]
    want_cand = want.gather(1, cand.clamp_min(0)).masked_fill(cand < 0, float("-inf")).detach()
    got = out["verdict_candidate_logits"]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want_cand, rtol=1e-5, atol=0)
    fp32 = objective(hidden, weight, batch, lm_bias=bias)  # the same objective without autocast
    torch.testing.assert_close(out["loss_verdict"], fp32["loss_verdict"], rtol=1e-5, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = torch.nn.functional.linear(at, weight, bias).float().detach()
    assert (rounded - want.detach()).abs().max() > 1e-3 * want.detach().abs().max()  # the test can fail


def test_near_tied_candidates_are_not_tied_by_bf16_autocast():
    hidden, weight, batch = hand_batch()
    hidden[0, 2] = torch.tensor(
        [0.0, 0, 0, 0, 20.01, 20.0]
    )  # gold 4 leads 5 by 0.01; bf16 has steps of 0.125
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = build_objective({"name": "margin", "k": 2})(hidden, weight, batch)
    assert out["verdict_correct"].tolist() == [True]
    assert out["verdict_margin"].item() == pytest.approx(0.01, abs=1e-5)
