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
        "eval.generated.enabled=false",
        "eval.verdict_logits.enabled=false",
    )
    with pytest.raises(ValueError, match="on_nonfinite=skip needs accumulate_grad_batches=1") as err:
        train(cfg)
    assert "accumulate_grad_batches=2 and world_size=1" in str(err.value)
    assert not list(tmp_path.rglob("*.ckpt"))  # refused at setup: no step was trained
