"""cj2.rewards on existing RL engines: TRL's GRPOTrainer for 2 steps on the tiny model, verl's signatures,
and the export of the judge prompts with gold labels (HF dataset, verl parquet)."""

from __future__ import annotations

import importlib.util
import inspect

import pytest

from cj2 import rewards


def _records():
    from cj2.data.datamodule import JudgeDataModule

    builtin = {"n_train": 6, "n_val": 0, "seed": 0, "tiers": ["easy"], "templates": ["cj2_check"]}
    return JudgeDataModule(None, builtin={**builtin, "both_orders": True}, seed=0).train_records()


def test_export_writes_verl_parquet_and_an_hf_dataset_with_both_orders_adjacent(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    recs = _records()
    paths = rewards.export_rl_prompts(recs, tmp_path)
    rows = pq.read_table(paths["parquet"]).to_pylist()
    assert len(rows) == len(recs) == 6
    first = rows[0]
    assert first["data_source"] == rewards.DATA_SOURCE and first["ability"] == "judge"
    assert first["prompt"] == recs[0].messages
    assert first["reward_model"] == {"style": "rule", "ground_truth": recs[0].verdict}
    info = first["extra_info"]
    assert info["format"] == "cj2_choice" and info["order"] == "original" and info["index"] == 0
    assert rows[1]["extra_info"]["pair_id"] == info["pair_id"] and rows[1]["extra_info"]["order"] == "swapped"
    hf = datasets.load_from_disk(str(paths["hf"]))
    assert hf.column_names == ["id", "prompt", "gold", "format", "pair_id", "order", "family"]
    assert hf[1]["gold"] == recs[1].verdict and hf[0]["prompt"] == recs[0].messages


def test_verl_compute_score_signature_and_return_type():
    params = list(inspect.signature(rewards.compute_score).parameters)
    assert params[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]
    right = rewards.compute_score("cj2_judge", '"Choice": "Model B"', "B", {"format": "cj2_choice"})
    wrong = rewards.compute_score(
        "cj2_judge", '"Choice": "Model A"', "B", extra_info={"format": "cj2_choice"}
    )
    broken = rewards.compute_score("cj2_judge", "no verdict", "B", {"format": "cj2_choice"})
    assert (right, wrong, broken) == (1.0, 0.0, 0.0) and all(type(x) is float for x in (right, wrong, broken))
    with pytest.raises(ValueError, match="format"):
        rewards.compute_score("cj2_judge", "x", "B", None)
    batch = list(inspect.signature(rewards.compute_score_batch).parameters)
    assert batch[:4] == ["data_sources", "solution_strs", "ground_truths", "extra_infos"]
    infos = [
        {"format": "cj2_choice", "pair_id": "q", "order": o}
        for o in ("original", "original", "swapped", "swapped")
    ]
    texts = ['"Choice": "Model A"', '"Choice": "Model B"', '"Choice": "Model B"', '"Choice": "Model B"']
    scores = rewards.compute_score_batch(["cj2_judge"] * 4, texts, ["A", "A", "B", "B"], infos)
    assert scores == [2.0, 0.0, 2.0, 1.0] and all(type(x) is float for x in scores)


def test_trl_reward_functions_take_trl_keywords_and_conversational_completions():
    completions = [[{"role": "assistant", "content": '"Choice": "Model A"'}], '"Choice": "Model A"']
    kw = dict(trainer_state=None, log_extra=None, log_metric=None, completion_ids=[[1], [2]])
    got = rewards.trl_verdict_reward(
        ["p", "p"], completions, gold=["A", "B"], format=["cj2_choice"] * 2, **kw
    )
    assert got == [1.0, 0.0]
    cons = rewards.trl_consistency_reward(
        ["p", "p", "s"],
        [c for c in completions] + ['"Choice": "Model B"'],
        gold=["A", "A", "B"],
        format=["cj2_choice"] * 3,
        pair_id=["q", "q", "q"],
        order=["original", "original", "swapped"],
        **kw,
    )
    assert cons == [1.0, None, 1.0]  # the second original has no swapped partner in the batch


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl is not installed (the [rl] extra)")
def test_trl_grpo_trainer_runs_two_steps_on_the_tiny_model_with_cj2_rewards(tmp_path, tokenizer):
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from cj2.models import load_model

    recs = _records()[:4]
    rewards.export_rl_prompts(recs, tmp_path / "export")
    train = datasets.load_from_disk(str(tmp_path / "export" / "hf"))
    seen: list[list[float]] = []

    def verdict(*args, **kwargs):
        out = rewards.trl_verdict_reward(*args, **kwargs)
        seen.append(out)
        return out

    verdict.__name__ = "cj2_verdict"
    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        shuffle_dataset=False,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[verdict, rewards.trl_consistency_reward],
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert seen and all(len(s) == 4 and all(r in (0.0, 1.0) for r in s) for s in seen)
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert logged and "rewards/cj2_verdict/mean" in logged[0]
