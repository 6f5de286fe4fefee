"""Padding-free packed batches (cj2.data.packing) and the padding that length grouping leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from cj2.data.collator import IGNORE_INDEX, EncodedSample, JudgeCollator
from cj2.data.packing import PackedCollator, is_packed, padding_fraction, resolve_packing, sample_slices
from cj2.data.sampler import StepBatchSampler
from cj2.losses import build_objective, token_logps

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ layout by hand
def _sample(
    id_: str, ids: list[int], prompt: int, k: int = -1, cands: list[int] | None = None
) -> EncodedSample:
    labels = [IGNORE_INDEX] * prompt + ids[prompt:]
    target = ids[k] if k >= 0 else -1
    return EncodedSample(
        id=id_,
        input_ids=ids,
        labels=labels,
        verdict_index=k,
        verdict_target=target,
        verdict_candidates=cands or [],
    )


def test_packed_layout_by_hand():
    a = _sample("a", [11, 12, 13, 14], prompt=2, k=3, cands=[14, 15])
    b = _sample("b", [21, 22, 23], prompt=1)  # no verdict (format none)
    c = _sample("c", [31, 32, 33, 34, 35], prompt=3, k=4, cands=[36, 35, 37])
    batch = PackedCollator(pad_token_id=0, pad_to_multiple_of=8)([a, b, c])
    assert is_packed(batch)
    assert batch["input_ids"].tolist() == [[11, 12, 13, 14, 21, 22, 23, 31, 32, 33, 34, 35, 0, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3]]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 13, 14, x, 22, 23, x, x, x, 34, 35, x, x, x, x]]
    assert "attention_mask" not in batch
    # one entry per verdict; k is the position inside the packed row
    assert batch["verdict_row"].tolist() == [0, 0]
    assert batch["verdict_index"].tolist() == [3, 11]
    assert batch["verdict_target"].tolist() == [14, 35]
    assert batch["verdict_candidates"].tolist() == [[14, 15, -1], [36, 35, 37]]
    assert batch["verdict_ids"] == ["a", "c"] and batch["ids"] == ["a", "b", "c"]
    assert batch["n_sequences"] == 3
    assert batch["sample_start"].tolist() == [0, 4, 7] and batch["sample_length"].tolist() == [4, 3, 5]
    pieces = sample_slices(batch, batch["input_ids"])
    assert [p.tolist() for p in pieces] == [[11, 12, 13, 14], [21, 22, 23], [31, 32, 33, 34, 35]]
    # trained tokens = the samples' own counts, so the sampler's step totals hold for packed batches too
    assert int((batch["labels"] != x).sum()) == sum(s.n_response_tokens for s in (a, b, c)) == 6


def test_first_token_of_a_sample_is_never_a_target():
    # a record whose label at position 0 is set (no prompt) must not be predicted from the previous sample
    a = _sample("a", [5, 6], prompt=1)
    b = EncodedSample(id="b", input_ids=[7, 8], labels=[7, 8])
    batch = PackedCollator(0)([a, b])
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, IGNORE_INDEX, 8]]
    with pytest.raises(ValueError, match="cannot collate an empty batch"):
        PackedCollator(0)([])


@pytest.mark.parametrize(
    ("packing", "attn", "expected"),
    [
        ("auto", "flash_attention_2", True),
        ("auto", "sdpa", False),
        ("auto", "eager", False),
        ("auto", None, False),
        (True, "sdpa", True),
        ("true", "sdpa", True),
        (False, "flash_attention_2", False),
        ("false", "flash_attention_2", False),
        (None, "flash_attention_2", False),
    ],
)
def test_resolve_packing(packing, attn, expected):
    assert resolve_packing(packing, attn) is expected


def test_resolve_packing_rejects_unknown_values():
    with pytest.raises(ValueError, match="data.packing='yes'"):
        resolve_packing("yes", "sdpa")


# ------------------------------------------------------------------ packed == padded, on a real model
@pytest.fixture(scope="module")
def judge_samples(tokenizer):
    from cj2.data.datamodule import JudgeDataModule

    dm = JudgeDataModule(tokenizer, builtin={"n_train": 6, "n_val": 0}, need_verdict_tokens=True)
    dm.setup("fit")
    samples = dm.train_set.samples[:4]
    assert len({len(s) for s in samples}) > 1, "the test needs samples of different lengths"
    return samples


def _module(tokenizer, loss: dict):
    from cj2.models import load_model
    from cj2.module import JudgeModule

    model = load_model("tiny", seed=3, tokenizer=tokenizer, attn_implementation="sdpa")
    assert model.config._attn_implementation == "sdpa"
    return JudgeModule(model, loss)


def _per_sample_nll(module, batch, hidden) -> list[torch.Tensor]:
    """Per-sample response-token NLLs, read from a padded ([B, T]) or packed ([1, sum T]) batch."""
    weight, _ = module._lm_head(module.model)
    labels = batch["labels"]
    if is_packed(batch):
        pieces = list(zip(sample_slices(batch, hidden), sample_slices(batch, labels)))
    else:
        pieces = [(hidden[i], labels[i]) for i in range(labels.shape[0])]
    out = []
    for h, lab in pieces:
        mask = lab[1:] != IGNORE_INDEX
        out.append(-token_logps(h[:-1][mask], weight, lab[1:][mask]))
    return out


@pytest.mark.parametrize(
    "loss", [{"name": "margin"}, {"name": "dpo", "sft_normalization": "sequence_sum", "impl": "chunked"}]
)
def test_packed_and_padded_batches_give_the_same_losses_logits_and_gradients(tokenizer, judge_samples, loss):
    module = _module(tokenizer, loss)
    padded = JudgeCollator(tokenizer.pad_token_id)(judge_samples)
    packed = PackedCollator(tokenizer.pad_token_id)(judge_samples)
    assert packed["input_ids"].shape == (1, sum(len(s) for s in judge_samples))
    results = {}
    for name, batch in (("padded", padded), ("packed", packed)):
        module.model.zero_grad()
        hidden = module._hidden(module.model, batch)
        out = module.compute_loss(batch, exact_step_norm=False)
        out["loss"].backward()
        grads = {n: p.grad.detach().clone() for n, p in module.model.named_parameters()}
        results[name] = (
            out,
            _per_sample_nll(module, batch, hidden.detach()),
            grads,
            module.objective.denominators(batch),
        )
    (out_a, nll_a, grads_a, den_a), (out_b, nll_b, grads_b, den_b) = results["padded"], results["packed"]
    assert {k: int(v) for k, v in den_a.items()} == {k: int(v) for k, v in den_b.items()}
    assert int(den_b["seq"]) == 4 and int(den_b["verdict"]) == 4
    for a, b in zip(nll_a, nll_b):  # per-sample, per-token losses
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)
    for key in out_a:
        if key.startswith("loss") or key.startswith("verdict_"):
            torch.testing.assert_close(out_b[key], out_a[key], atol=2e-5, rtol=1e-5, msg=key)
    assert out_a["verdict_candidate_logits"].shape[0] == 4
    for n in grads_a:
        torch.testing.assert_close(grads_b[n], grads_a[n], atol=1e-5, rtol=1e-4, msg=n)


def test_without_position_restarts_the_samples_would_attend_to_each_other(tokenizer, judge_samples):
    """The control: the same packed row without position ids (or with a KV cache) mixes the samples."""
    module = _module(tokenizer, {"name": "sft"})
    packed = PackedCollator(tokenizer.pad_token_id)(judge_samples)
    decoder = module.model.get_decoder()
    with torch.no_grad():
        good = module._hidden(module.model, packed)
        mixed = decoder(input_ids=packed["input_ids"], use_cache=False).last_hidden_state
        cached = decoder(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=True
        ).last_hidden_state
    second = slice(len(judge_samples[0]), len(judge_samples[0]) + len(judge_samples[1]))
    alone = decoder(input_ids=torch.tensor([judge_samples[1].input_ids]), use_cache=False).last_hidden_state
    torch.testing.assert_close(good[0, second], alone[0].detach(), atol=2e-5, rtol=1e-5)
    assert (mixed[0, second] - good[0, second]).abs().max() > 1e-2
    assert (cached[0, second] - good[0, second]).abs().max() > 1e-2


def test_gradient_accumulation_stays_exact_with_packing(tokenizer, judge_samples):
    """2 packed micro-batches with the step totals == the 4 samples as one padded batch: loss and grads."""
    module = _module(tokenizer, {"name": "margin"})
    packed = PackedCollator(tokenizer.pad_token_id)
    whole = JudgeCollator(tokenizer.pad_token_id)(judge_samples)
    module.model.zero_grad()
    want = module.compute_loss(whole, exact_step_norm=False)["loss"]
    want.backward()
    want_grads = {n: p.grad.detach().clone() for n, p in module.model.named_parameters()}
    totals = {"tokens": sum(s.n_response_tokens for s in judge_samples), "rows": 4, "verdict_rows": 4}
    module.model.zero_grad()
    got = 0.0
    for part in (judge_samples[:2], judge_samples[2:]):
        batch = {**packed(part), "step_totals": totals}
        loss = module.compute_loss(batch, exact_step_norm=True)["loss"]
        loss.backward()
        got += loss.item()
    assert got == pytest.approx(want.item(), abs=1e-5)
    for n, p in module.model.named_parameters():
        torch.testing.assert_close(p.grad, want_grads[n], atol=1e-5, rtol=1e-4, msg=n)


def test_packed_batch_errors_name_the_record(tokenizer, judge_samples):
    objective = build_objective({"name": "margin"})
    batch = PackedCollator(tokenizer.pad_token_id)(judge_samples)
    batch["verdict_candidates"] = batch["verdict_candidates"].clone()
    batch["verdict_candidates"][2] = batch["verdict_target"][2]  # the same token for every candidate
    hidden = torch.zeros(1, batch["input_ids"].shape[1], 8)
    with pytest.raises(ValueError, match=f"record '{judge_samples[2].id}' \\(packed row 0\\)"):
        objective(hidden, torch.zeros(len(tokenizer), 8), batch)
    bad = dict(batch, verdict_index=batch["verdict_index"].clone())
    bad["verdict_index"][1] = batch["input_ids"].shape[1]
    with pytest.raises(ValueError, match="verdict_index=.* is outside"):
        objective.denominators(bad)
    with pytest.raises(ValueError, match="packed batch"):
        objective(
            hidden, torch.zeros(len(tokenizer), 8), dict(batch, verdict_target=batch["verdict_target"][:2])
        )
    with pytest.raises(ValueError, match="data.packing=false"):
        build_objective({"name": "dpo_seq"}).response_logps(hidden, torch.zeros(len(tokenizer), 8), batch)


# ------------------------------------------------------------------------------ the data module switch
def test_datamodule_packs_when_asked_and_keeps_step_totals(tokenizer):
    from cj2.data.datamodule import JudgeDataModule

    kwargs = dict(
        builtin={"n_train": 8, "n_val": 0}, batch_size=4, accumulate_grad_batches=2, need_verdict_tokens=True
    )
    plain = JudgeDataModule(tokenizer, **kwargs)  # packing=auto without a flash-attn model: padded
    packed = JudgeDataModule(tokenizer, packing=True, **kwargs)
    for dm in (plain, packed):
        dm.setup("fit")
    batches_plain, batches_packed = list(plain.train_dataloader()), list(packed.train_dataloader())
    assert not plain.packed and packed.packed
    assert "attention_mask" in batches_plain[0] and not is_packed(batches_plain[0])
    assert len(batches_packed) == len(batches_plain) == 2
    for a, b in zip(batches_plain, batches_packed):
        assert is_packed(b) and b["input_ids"].shape[0] == 1
        assert a["ids"] == b["ids"] and a["step_totals"] == b["step_totals"]
        assert int(b["input_ids"].shape[1]) == int(a["attention_mask"].sum())  # no padding at all


def test_datamodule_refuses_explicit_packing_for_sequence_dpo(tokenizer):
    from cj2.data.datamodule import JudgeDataModule

    dm = JudgeDataModule(tokenizer, builtin={"n_train": 4, "n_val": 0}, preference=True, packing="true")
    dm.setup("fit")
    with pytest.raises(ValueError, match="dpo_seq"):
        dm.train_dataloader()


def test_training_runs_with_packed_batches(tmp_path):
    """The Lightning path end to end with data.packing=true (sdpa block-diagonal mask on CPU)."""
    from cj2.train import train
    from tests.test_train import cfg_for

    cfg = cfg_for(tmp_path, "data.packing=true", "trainer.max_steps=2", "callbacks.generated=null")
    train(cfg)
    assert (tmp_path / "metrics.json").exists()


# ----------------------------------------------------------------------- padding on the embedded data
def test_length_grouping_keeps_padding_under_5_percent_on_builtin_data(tokenizer):
    """The default data config (built-in tasks, default batch size): padding < 5% of processed tokens."""
    from cj2.data.datamodule import JudgeDataModule

    defaults = yaml.safe_load((ROOT / "cj2" / "conf" / "data" / "builtin.yaml").read_text())
    builtin = {k: v for k, v in defaults["builtin"].items() if k != "seed"}
    builtin["n_val"] = 0
    dm = JudgeDataModule(
        tokenizer,
        builtin=builtin,
        batch_size=defaults["batch_size"],
        max_length=defaults["max_length"],
        need_verdict_tokens=True,
    )
    dm.setup("fit")
    samples = dm.train_set.samples
    assert len(samples) >= 0.95 * defaults["builtin"]["n_train"]
    lengths = [len(s) for s in samples]
    fractions = {}
    for grouped in (True, False):
        sampler = StepBatchSampler(
            lengths,
            [s.n_response_tokens for s in samples],
            [s.verdict_index >= 0 for s in samples],
            batch_size=defaults["batch_size"],
            group_by_length=grouped,
        )
        fractions[grouped] = padding_fraction(lengths, [mb.indices for mb in sampler])
    assert defaults["group_by_length"] is True
    assert fractions[True] < 0.05
    assert fractions[False] > 2 * fractions[True]  # the control: random batches pad much more


def test_padding_fraction_by_hand():
    # batches [3, 5] -> 2 pad of 10; [4] -> 0 of 4: 2 / 14
    assert padding_fraction([3, 5, 4], [[0, 1], [2]]) == pytest.approx(2 / 14)
    assert padding_fraction([], []) == 0.0
