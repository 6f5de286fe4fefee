"""JudgeModule: step normalisation from the objective's one rule, the non-finite guard, validation losses."""

from __future__ import annotations

import pytest
import torch

from cj2.data.datamodule import JudgeDataModule
from cj2.module import JudgeModule


@pytest.mark.parametrize(
    "loss, preference",
    [
        ({"name": "margin"}, False),
        ({"name": "margin", "answer_token_ce": True}, False),
        ({"name": "sft", "sft_normalization": "sequence_sum"}, False),
        ({"name": "dpo_seq"}, True),
    ],
)
def test_step_denominators_are_the_sum_of_the_micro_batches(tokenizer, tiny_model, loss, preference):
    """The module's denominators, from the data module's step totals, equal the objective's per-batch
    denominators summed over the micro-batches of the step: one rule (Objective.denominators_from_counts)."""
    accumulate = 3
    dm = JudgeDataModule(
        tokenizer,
        builtin={"n_train": 12, "n_val": 0},
        batch_size=2,
        accumulate_grad_batches=accumulate,
        need_verdict_tokens=not preference,
        preference=preference,
    )
    dm.setup("fit")
    module = JudgeModule(tiny_model, loss)
    batches = list(dm.train_dataloader())
    assert len(batches) >= accumulate and len(batches) % accumulate == 0
    for start in range(0, len(batches), accumulate):
        step = batches[start : start + accumulate]
        summed: dict[str, float] = {}
        counted: dict[str, float] = {}
        for batch in step:
            for key, value in module.objective.denominators(batch).items():
                summed[key] = summed.get(key, 0.0) + float(value)
            for key, value in module.objective.counts(batch).items():
                counted[key] = counted.get(key, 0.0) + float(value)
        assert counted == pytest.approx(step[0]["step_totals"])  # the sampler counts what the objective does
        assert summed["ce"] > 0 and summed["seq"] > 0
        for batch in step:
            got = module._denominators(batch)
            assert all(v.dtype == torch.float64 for v in got.values())
            assert {k: float(v) for k, v in got.items()} == pytest.approx(summed)
    assert module._denominators({k: v for k, v in batches[0].items() if k != "step_totals"}) is None


def test_verdict_token_without_a_label_is_refused():
    """The denominators take the verdict token out of the CE count, so it must be a labelled token."""
    from cj2.losses import build_objective

    batch = {
        "input_ids": torch.tensor([[1, 2, 3, 4, 5]]),
        "labels": torch.tensor([[-100, -100, 3, -100, 5]]),
        "verdict_index": torch.tensor([3]),
        "verdict_target": torch.tensor([4]),
        "verdict_candidates": torch.tensor([[4, 5]]),
        "ids": ["r0"],
    }
    with pytest.raises(ValueError, match="record 'r0'.*verdict token at verdict_index=3 has no label"):
        build_objective({"name": "margin"}).denominators(batch)
    # sft and answer_token_ce keep the verdict token's CE as labelled: nothing is taken out
    assert build_objective({"name": "sft"}).denominators(batch) == {"ce": 2, "seq": 1, "verdict": 1}
    kept = build_objective({"name": "margin", "answer_token_ce": True}).denominators(batch)
    assert kept == {"ce": 2, "seq": 1, "verdict": 1}


# ------------------------------------------------------------------------------ on_nonfinite=skip guard
@pytest.mark.parametrize("accumulate, world", [(2, 1), (1, 2), (4, 8)])
def test_skip_is_refused_where_it_would_not_be_exact(accumulate, world):
    from cj2.module import check_nonfinite_policy

    with pytest.raises(ValueError, match="on_nonfinite=skip needs accumulate_grad_batches=1 and one process"):
        check_nonfinite_policy("skip", accumulate, world)
    check_nonfinite_policy("stop", accumulate, world)  # stop is exact anywhere: it raises


def test_skip_is_allowed_with_one_micro_batch_per_step_on_one_process():
    from cj2.module import check_nonfinite_policy

    check_nonfinite_policy("skip", 1, 1)
    check_nonfinite_policy("stop", 1, 1)


def test_training_with_skip_under_accumulation_fails_at_setup(tmp_path):
    """The tiny run with on_nonfinite=skip and 2 accumulated micro-batches stops before any step."""
    from cj2.train import train
    from tests.test_train import cfg_for

    cfg = cfg_for(
        tmp_path,
        "on_nonfinite=skip",
        "trainer.accumulate_grad_batches=2",
        "callbacks.generated=null",
        "callbacks.verdict_logits=null",
    )
    with pytest.raises(ValueError, match="on_nonfinite=skip needs accumulate_grad_batches=1") as err:
        train(cfg)
    assert "accumulate_grad_batches=2 and world_size=1" in str(err.value)
    assert not list(tmp_path.rglob("*.ckpt"))  # refused at setup: no step was trained


# ------------------------------------------------------------------------------ teacher-forced accuracy
def test_verdict_accuracy_leaves_out_rows_without_a_competing_candidate(tiny_model):
    """sft trains formats whose labels share a token, where a row may keep only its gold candidate: such a
    row is neither right nor wrong and is left out of val/verdict_acc_tf and val/verdict_margin_tf."""
    # V = H = 6, identity head: the logits predicting the verdict are the hidden state at k - 1 = 1.
    hidden = torch.zeros(3, 4, 6)
    hidden[0, 1] = torch.tensor([0.0, 0, 0, 3, 1, 0])  # gold 3 beats 4 by 2: correct
    hidden[1, 1] = torch.tensor([0.0, 0, 0, 1, 2, 0])  # gold 3 loses to 4 by 1: wrong
    hidden[2, 1] = torch.tensor([0.0, 0, 0, 1, 5, 0])  # gold 3 is the only candidate: not scored
    batch = {
        "input_ids": torch.tensor([[1, 2, 3, 5]] * 3),
        "labels": torch.tensor([[-100, -100, 3, 5]] * 3),
        "verdict_index": torch.tensor([2, 2, 2]),
        "verdict_target": torch.tensor([3, 3, 3]),
        "verdict_candidates": torch.tensor([[3, 4], [3, 4], [3, -1]]),
    }
    module = JudgeModule(tiny_model, {"name": "sft", "impl": "naive"})
    out = module.objective(hidden, torch.eye(6), batch)
    assert out["verdict_scored"].tolist() == [True, True, False]
    logged: dict[str, tuple[float, int]] = {}
    module.log = lambda name, value, batch_size=None, **kw: logged.__setitem__(
        name, (float(value), batch_size)
    )
    module._log_terms("train", out, 3)
    assert logged["train/verdict_acc_tf"] == (pytest.approx(0.5), 2)  # was 2/3 with the row counted correct
    assert logged["train/verdict_margin_tf"] == (pytest.approx((2.0 - 1.0) / 2), 2)  # finite: no +inf row
    logged.clear()
    alone = {k: v[2:] for k, v in out.items() if k.startswith("verdict_")}
    module._log_terms("train", alone, 1)
    assert not any(k.startswith("train/verdict_") for k in logged)  # nothing scored: nothing logged


# ------------------------------------------------------------------------------ validation losses
@pytest.mark.parametrize("loss", [{"name": "margin"}, {"name": "sft", "sft_normalization": "sequence_sum"}])
def test_validation_losses_are_over_the_whole_set_not_batch_means(tokenizer, tiny_model, loss):
    """Uneven validation batches (3, 3, 1 samples of different lengths and weights): val/loss_ce is the
    (weighted) token mean over the whole set, i.e. the loss of the set as one batch, and so are the other
    terms and val/loss; a second validation starts afresh."""
    import lightning as L

    from cj2.data.collator import JudgeCollator

    dm = JudgeDataModule(
        tokenizer, builtin={"n_train": 4, "n_val": 7}, eval_batch_size=3, need_verdict_tokens=True
    )
    dm.setup("fit")
    for i, sample in enumerate(dm.val_set.samples):
        sample.weight = (1.0, 0.5, 2.0)[i % 3]
    # the last batch's one sample trains only its last few tokens: a batch mean of few tokens
    last = dm.val_set.samples[-1]
    last.labels = [-100] * (last.verdict_index) + last.labels[last.verdict_index :]
    batches = list(dm.val_dataloader())
    assert [len(b["ids"]) for b in batches] == [3, 3, 1]
    module = JudgeModule(tiny_model, {**loss, "impl": "naive"})
    tiny_model.eval()
    with torch.no_grad():
        # sharper logits than at initialisation, so that tokens' losses (and batches' means) differ
        tiny_model.get_output_embeddings().weight.mul_(30.0)
        whole = module.compute_loss(
            JudgeCollator(tokenizer.pad_token_id)(dm.val_set.samples), exact_step_norm=False
        )
        per_batch = [module.compute_loss(b, exact_step_norm=False) for b in batches]
    rows = [len(b["ids"]) for b in batches]
    old = sum(float(o["loss_ce"]) * n for o, n in zip(per_batch, rows)) / sum(rows)  # the former val/loss_ce
    # uneven enough to tell apart: 100 times the tolerance of the checks below
    assert abs(old / float(whole["loss_ce"]) - 1) > 1e-3

    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision="32-true",
    )
    for _ in range(2):
        metrics = trainer.validate(module, dataloaders=dm.val_dataloader(), verbose=False)[0]
        keys = {k for k in metrics if k.startswith("val/loss")}
        assert keys == {f"val/{k}" for k in whole if k.startswith("loss")}
        for key in keys:
            assert metrics[key] == pytest.approx(
                float(whole[key.removeprefix("val/")]), rel=1e-5, abs=1e-6
            ), key


def test_epoch_loss_states_add_up_over_ranks(tokenizer, tiny_model):
    """Two ranks' EpochLoss states merged by their reduction (a sum, as the DDP sync does) give the loss
    of both ranks' batches as one."""
    from cj2.data.collator import JudgeCollator
    from cj2.module import EpochLoss

    dm = JudgeDataModule(tokenizer, builtin={"n_train": 4, "n_val": 5}, need_verdict_tokens=True)
    dm.setup("fit")
    samples = dm.val_set.samples
    collate = JudgeCollator(tokenizer.pad_token_id)
    module = JudgeModule(tiny_model, {"name": "margin", "impl": "naive"})
    with torch.no_grad():
        whole = module.compute_loss(collate(samples), exact_step_norm=False)
        ranks = []
        for part in (samples[:1], samples[1:]):
            batch = collate(part)
            metric = EpochLoss(module.objective, "loss")
            metric.update(
                module.compute_loss(batch, exact_step_norm=False), module.objective.denominators(batch)
            )
            ranks.append(metric)
    ranks[0].merge_state(ranks[1])
    assert float(ranks[0].compute()) == pytest.approx(float(whole["loss"]), rel=1e-5)
    with pytest.raises(ValueError, match="not a loss of margin"):
        EpochLoss(module.objective, "loss_dpo_seq")
