"""Training: configs compose, every objective trains on the tiny model, resume, DDP and the sweep table."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers.logger import Logger
from omegaconf import OmegaConf

from cj2.runtime import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "cj2" / "conf"
register_resolvers()

TINY_RUN = [
    "model=tiny",
    "logger=csv",
    "data.builtin.n_train=16",
    "data.builtin.n_val=8",
    "data.batch_size=4",
    "data.max_length=384",
    "trainer.max_steps=4",
    "trainer.precision=32-true",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "callbacks.generated.n_items=2",
    "callbacks.generated.n_unseen_items=2",  # the held-out family too, in 2 items rather than the default 24
    "callbacks.generated.max_new_tokens=8",
    "callbacks.generated.untrained_baseline=false",
    "checkpoint_every_n_steps=2",
    "export=false",
    "optimizer.lr=1e-3",
    "callbacks.verdict_logits.n_queries=2",
]

# Two optimizer steps, no verdict-logit benchmark: the shortest run that still writes a full metrics.json (the
# sweep tests, which check the table and the launchers rather than the training).
SWEEP_RUN = [
    a for a in TINY_RUN if not a.startswith(("logger", "trainer.max_steps", "callbacks.verdict"))
] + [
    "logger=csv",
    "trainer.max_steps=2",
    "callbacks.verdict_logits=null",
]


def cfg_for(tmp_path, *overrides, name="train"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=[*TINY_RUN, *overrides, f"+run_dir={tmp_path}"])
    return cfg


def config_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "data", "loss", "optimizer", "scheduler", "trainer", "logger"])
def test_every_config_composes(group):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for option in config_options(group):
            extra = ["data.train_files=[x.jsonl]"] if (group, option) == ("data", "files") else []
            extra += ["model.name_or_path=some/model"] if (group, option) == ("model", "hf") else []
            cfg = compose(config_name="train", overrides=[f"{group}={option}", *extra])
            OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("experiment", config_options("experiment"))
def test_every_experiment_composes(experiment):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
        assert cfg.experiment_name == experiment
        if experiment == "margin_ablation":
            assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
            assert set(cfg.hydra.sweeper.params.loss.split(",")) >= {"sft", "dpo", "margin"}


@pytest.mark.parametrize("arm", config_options("on_policy_arm"))
def test_every_on_policy_arm_builds_its_data_and_checks(arm):
    """Each arm of +experiment=on_policy passes the entry's config checks and builds its RFT settings as
    composed (the semi-online arms once failed at start: backend=policy inherited the simulated teacher's
    keys from the data defaults)."""
    from cj2.confcheck import check_config
    from cj2.curation.rft_data import BuiltinRFT

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=on_policy", f"+on_policy_arm={arm}"])
    assert cfg.arm == arm
    check_config(cfg, "train")
    rft = BuiltinRFT.from_config(OmegaConf.to_container(cfg.data.rejection, resolve=True))
    if arm.startswith("semi"):
        assert rft is not None and rft.policy and rft.rounds > 1
        assert rft.settings.filter == arm.split("_")[1]
        gold = arm.endswith("_gold")  # semi_faithful_gold: both orders kept together, gold where nothing is
        assert (rft.pair_orders, rft.fallback) == ((True, "gold") if gold else (False, "none"))


def test_on_policy_arms_own_their_lr_in_the_sweeps_override_order():
    """The sweep composes the swept `+on_policy_arm=X` before the fixed `+experiment=on_policy` (Hydra's order
    of a multirun's overrides), so a key the experiment set overrode the arm's: the grpo arm's lr 1e-5 ran at
    1e-4. Each arm now sets its own lr, whatever the order."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for arm, lr in (
            ("offline", 1e-4),
            ("semi_outcome", 1e-4),
            ("semi_faithful", 1e-4),
            ("semi_faithful_gold", 1e-4),
            ("grpo", 1e-5),
        ):
            for overrides in (
                [f"+on_policy_arm={arm}", "+experiment=on_policy"],  # the multirun's order
                ["+experiment=on_policy", f"+on_policy_arm={arm}"],
            ):
                assert compose(config_name="train", overrides=overrides).optimizer.lr == pytest.approx(lr)


@pytest.mark.parametrize("trainer", ["cpu", "ddp"])
def test_trainers_instantiate_with_tiny(trainer):
    import hydra

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=["model=tiny", f"trainer={trainer}", "trainer.accelerator=cpu"]
        )
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    tcfg["precision"] = "32-true"
    t = hydra.utils.instantiate(tcfg, logger=False, _convert_="all")
    assert t.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("loss", ["sft", "margin", "dpo", "temperature", "dpo_seq"])
def test_each_objective_trains_and_writes_metrics(tmp_path, loss, monkeypatch, request):
    import cj2.models
    from cj2.train import train

    if loss == "margin":  # the default objective: the session's shared run (conftest.margin_tiny_run)
        tmp_path, value = request.getfixturevalue("margin_tiny_run")
    else:
        # the untrained baselines are computed here, not read from the user's cache
        monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
        value = train(cfg_for(tmp_path, f"loss={loss}"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["loss"] == loss
    assert value == metrics["val/judge_acc"]
    assert 0.0 <= metrics["val/parse_rate"] <= 1.0
    assert (tmp_path / "last.ckpt").exists()
    assert list((tmp_path / "csv").rglob("metrics.csv"))
    if loss != "dpo_seq":
        assert "val/loss_ce" in metrics and "val/verdict_acc_tf" in metrics
    # verdict-logit scoring on the embedded benchmark (2 scenarios x 2 queries x 6 models), before and after
    for prefix in ("val", "val_untrained"):
        assert metrics[f"{prefix}/verdict_logit_n"] == 24
        assert 0.0 <= metrics[f"{prefix}/verdict_logit_acc"] <= 1.0
        assert 0.0 <= metrics[f"{prefix}/jbv2_final"] <= 100.0
    assert (
        len(list((tmp_path / "cache" / "baselines").glob("*.json"))) == 1
    )  # verdict logits (generated: off)


def test_every_trainable_parameter_gets_gradient_and_changes(tokenizer):
    from cj2.data.datamodule import JudgeDataModule
    from cj2.models import load_model
    from cj2.module import JudgeModule

    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    dm = JudgeDataModule(
        tokenizer, builtin={"n_train": 8, "n_val": 0}, batch_size=8, need_verdict_tokens=True
    )
    dm.setup("fit")
    dm.val_set = None
    batch = next(iter(dm.train_dataloader()))
    module = JudgeModule(model, {"name": "margin"}, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = module.compute_loss(batch, exact_step_norm=False)
    out["loss"].backward()
    opt = module.optimizer_factory([p for p in model.parameters() if p.requires_grad])
    for n, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{n} got no gradient"
    opt.step()
    for n, p in model.named_parameters():
        assert not torch.equal(before[n], p.detach()), f"{n} did not change"


def _final_weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def test_resume_from_mid_run_checkpoint_matches_uninterrupted(tmp_path):
    from cj2.train import train

    full, part = tmp_path / "full", tmp_path / "part"
    common = [
        "trainer.max_steps=6",
        "checkpoint_every_n_steps=1",
        "data.builtin.n_train=40",
        "callbacks.generated=null",
    ]
    train(cfg_for(full, *common))
    # the interrupted run: stop after 3 steps (same schedule length), then resume to 6
    train(cfg_for(part, *common, "stop_after_steps=3"))
    ckpt = torch.load(part / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    train(cfg_for(part, *common, "ckpt_path=last"))
    a, b = _final_weights(full), _final_weights(part)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    ma = json.loads((full / "metrics.json").read_text())
    mb = json.loads((part / "metrics.json").read_text())
    assert ma["global_step"] == mb["global_step"] == 6
    assert ma["val/loss"] == pytest.approx(mb["val/loss"], abs=1e-5)


def _run(args, cwd, timeout=600):
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cj2.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    args = [a for a in TINY_RUN if not a.startswith("logger")] + [
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "logger=csv",
        "run_name=ddp",
        f"output_root={tmp_path}",
    ]
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "ddp"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 4
    assert 0.0 <= metrics["val/verdict_logit_acc"] <= 1.0  # scored on every rank: no hang, equal values
    assert (out / "last.ckpt").exists()
    assert not list(tmp_path.glob("runs/ddp*/**/rank1*"))


@pytest.mark.slow
def test_multirun_writes_comparison_table(tmp_path):
    args = ["-m", *SWEEP_RUN, "loss=sft,margin", "seed=0,1", "run_name=sweep", f"output_root={tmp_path}"]
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "sweeps" / "sweep"
    md = (sweep / "comparison.md").read_text()
    csv = (sweep / "comparison.csv").read_text().splitlines()
    assert len(csv) == 3 and csv[0].startswith("loss,M,seeds")
    assert "margin" in md and "sft" in md and "0,1" in md
    assert "Comparison of" in r.stdout


def test_generated_eval_bf16_on_cpu_leaves_the_trained_model_alone(tiny_model, tokenizer, monkeypatch):
    """On CPU the bf16 generated eval decodes with a bf16 copy: the model in training keeps its fp32 weights
    and its train mode, and the verdicts are parsed and scored as in fp32."""
    from cj2.data.tasks import generate_items
    from cj2.evaluation.generated import GeneratedEval

    items = generate_items(2, split="validation", seed=0)
    tiny_model.train()
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    import cj2.generation.hf

    seen = []

    class Spy(cj2.generation.hf.HFSampler):
        def __init__(self, model, *args, **kwargs):
            seen.append(model)
            super().__init__(model, *args, **kwargs)

    monkeypatch.setattr(cj2.generation.hf, "HFSampler", Spy)
    ev = GeneratedEval(items, max_new_tokens=6, batch_size=4, autocast_dtype=torch.bfloat16)
    rows = ev.generate(tiny_model, tokenizer)
    assert len(seen) == 1 and seen[0] is not tiny_model and next(seen[0].parameters()).dtype == torch.bfloat16
    assert tiny_model.training
    assert all(
        p.dtype == torch.float32 and torch.equal(before[n], p) for n, p in tiny_model.named_parameters()
    )
    assert [(r["id"], r["order"]) for r in rows] == [(i.id, o) for i in items for o in ("AB", "BA")]
    assert ev.score(rows)["val/n_judgments"] == 4


def test_sharded_strategy_skips_the_in_loop_evaluations(tiny_model, tokenizer):
    """Under FSDP/DeepSpeed a forward pass outside the wrapped module sees weight shards: the evaluation
    callbacks skip their baselines and evaluations (with a warning) instead of failing or hanging."""
    from lightning.pytorch.trainer.states import TrainerFn

    from cj2.callbacks import GeneratedJudgments, VerdictLogitBenchmark, sharded
    from cj2.module import JudgeModule

    calls = []

    class Eval:
        def run(self, *args, **kwargs):
            calls.append(("run", args))
            return {"val/x": 1.0}

        def baseline(self, *args, **kwargs):
            calls.append(("baseline", args))
            return {"val_untrained/x": 0.0}

    class FSDPStrategy:
        pass

    class DDPStrategy:
        pass

    class FakeState:
        fn = TrainerFn.VALIDATING

    class FakeTrainer:
        sanity_checking = False
        is_global_zero = True
        global_step = 4
        ckpt_path = None
        state = FakeState()

    module = JudgeModule(tiny_model, {"name": "sft"}, None, tokenizer=tokenizer)
    trainer = FakeTrainer()
    trainer.strategy = FSDPStrategy()
    module.log = lambda *a, **k: None
    callbacks = [GeneratedJudgments(), VerdictLogitBenchmark()]
    for cb in callbacks:
        cb.evaluator = Eval()
        cb.on_fit_start(trainer, module)
        cb.on_validation_epoch_end(trainer, module)
    assert calls == [] and sharded(trainer)
    trainer.strategy = DDPStrategy()  # the same hooks, unsharded: both evaluations and baselines run
    for cb in callbacks:
        cb.on_fit_start(trainer, module)
        cb.on_validation_epoch_end(trainer, module)
    assert not sharded(trainer) and [c for c, _ in calls] == ["baseline", "run", "baseline", "run"]
    assert callbacks[0].summary() == {"val/x": 1.0, "val_untrained/x": 0.0}


def test_generated_judgments_every_n_steps_during_fit(tmp_path, monkeypatch):
    """callbacks.generated.every_n_steps=2 scores the judge at steps 2 and 4 of fit (a learning curve) and
    once more in the final validation, each written to the run folder."""
    import cj2.models
    from cj2.train import train

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    train(
        cfg_for(
            tmp_path,
            "callbacks.generated.every_n_steps=2",
            "trainer.val_check_interval=2",
            "callbacks.verdict_logits=null",
        )
    )
    names = sorted(p.name for p in tmp_path.glob("generations_step*.jsonl"))
    assert names == ["generations_step2.jsonl", "generations_step4.jsonl"]
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("val/judge_acc")
    steps = [r.split(",")[header.index("step")] for r in rows[1:] if r.split(",")[col] != ""]
    assert len(steps) >= 2, rows  # logged during fit, not only at the end


def test_checkpoint_carries_its_run_config_and_resume_refuses_a_different_one(tmp_path):
    """A .ckpt knows its loss, data and optimizer (save_hyperparameters, loadable with weights_only); resuming
    with a config that changes what is trained fails naming each difference; other changes are allowed.
    The exported judge card names the template the data was rendered with (cj2_short here, not the default
    cj2_check) with no generated evaluation to take it from, and Judge.from_pretrained prompts with it."""
    from cj2.judge import Judge
    from cj2.models.export import read_judge_card
    from cj2.module import IncompatibleResumeError
    from cj2.train import train

    common = [
        "trainer.max_steps=4",
        "callbacks.generated=null",
        "callbacks.verdict_logits=null",
        "data.builtin.templates=[cj2_short]",
        "export=true",
    ]
    train(cfg_for(tmp_path, *common, "stop_after_steps=2"))
    ckpt = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["loss"]["name"] == "margin" and hp["run_config"]["loss"]["name"] == "margin"
    assert hp["run_config"]["optimizer"]["lr"] == pytest.approx(1e-3)
    assert hp["run_config"]["data"]["batch_size"] == 4
    with pytest.raises(IncompatibleResumeError) as err:
        train(cfg_for(tmp_path, *common, "ckpt_path=last", "optimizer.lr=2e-3", "loss.gamma=5"))
    msg = str(err.value)
    assert "optimizer.lr: 0.001 in the checkpoint, 0.002 now" in msg and "loss.gamma" in msg
    assert "stop_after_steps" not in msg
    # a change of evaluation, stop point or checkpoint frequency is not a different run
    train(cfg_for(tmp_path, *common, "ckpt_path=last", "checkpoint_every_n_steps=1"))
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 4
    card = read_judge_card(tmp_path / "hf")
    assert (card["template"], card["format"]) == ("cj2_short", "cj2_choice")
    assert Judge.from_pretrained(str(tmp_path / "hf"), device="cpu").template.name == "cj2_short"


def test_config_differences_name_nested_added_and_removed_keys():
    from cj2.module import check_resume_compatible, config_differences

    a = {"model": {"name": "x", "peft": None}, "loss": {"gamma": 10}, "logger": {"csv": True}}
    b = {"model": {"name": "x", "peft": {"r": 8}}, "loss": {"gamma": 10}, "logger": {"csv": False}, "new": 1}
    d = config_differences(a, b)
    assert d == {
        "logger.csv": (True, False),
        "model.peft": (None, "<absent>"),
        "model.peft.r": ("<absent>", 8),
        "new": ("<absent>", 1),
    }
    with pytest.raises(ValueError, match="model.peft.r"):
        check_resume_compatible(a, b)
    assert check_resume_compatible(a, {**a, "logger": {"csv": False}}) == {"logger.csv": (True, False)}


# ------------------------------------------- the verdict term teaches a judgment, not only the format


def _side_records(n: int, seed: int):
    """A trivially learnable family: the prompt says which side is right; the answer is the verdict alone,
    so the verdict is predicted from the prompt, never copied from a critique."""
    import random

    from cj2.data.schema import TrainRecord

    rng = random.Random(seed)
    fillers = ["red", "blue", "cat", "dog", "tree", "sky", "sun", "rain", "cup", "book", "door", "lamp"]
    recs = []
    for i in range(n):
        label = "A" if i % 2 == 0 else "B"
        side = "left" if label == "A" else "right"
        words = " ".join(rng.sample(fillers, 3))
        recs.append(
            TrainRecord(
                id=f"side/{seed}/{i}",
                messages=[{"role": "user", "content": f"{words} {side}"}],
                response=f'{{"Choice": "Model {label}"}}',
                verdict=label,
                format="cj2_choice",
                source="test",
            )
        )
    return recs


def _margin_verdict_accuracy(
    tokenizer, *, flip_sign: bool = False, zero_term: bool = False, steps: int = 40
) -> tuple[float, float]:
    """Teacher-forced verdict accuracy on new items before and after ``steps`` margin-loss steps on the tiny
    model (loss=margin: the verdict token has no CE, only the margin term trains it)."""
    from cj2.data.datamodule import JudgeDataModule
    from cj2.losses import objective as objective_module
    from cj2.models import load_model
    from cj2.module import JudgeModule

    torch.manual_seed(0)
    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    dm = JudgeDataModule(
        tokenizer,
        builtin=None,
        batch_size=16,
        need_verdict_tokens=True,
        train_records=_side_records(64, 0),
        val_records=_side_records(32, 1),
    )
    dm.setup("fit")
    module = JudgeModule(model, {"name": "margin"}, lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.0))
    opt = module.optimizer_factory([p for p in model.parameters() if p.requires_grad])

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            correct = [
                module.compute_loss(b, exact_step_norm=False)["verdict_correct"].float()
                for b in dm.val_dataloader()
            ]
        model.train()
        return float(torch.cat(correct).mean())

    original = objective_module.VERDICT_TERMS["margin"]
    if flip_sign:
        objective_module.VERDICT_TERMS["margin"] = lambda *a, **k: -original(*a, **k)
    if zero_term:  # the verdict term masked out of the loss (a wrong verdict index is refused outright)
        objective_module.VERDICT_TERMS["margin"] = lambda *a, **k: 0.0 * original(*a, **k)
    try:
        before = accuracy()
        model.train()
        step = 0
        while step < steps:
            for batch in dm.train_dataloader():
                out = module.compute_loss(batch, exact_step_norm=False)
                opt.zero_grad()
                out["loss"].backward()
                opt.step()
                step += 1
                if step >= steps:
                    break
    finally:
        objective_module.VERDICT_TERMS["margin"] = original
    return before, accuracy()


@pytest.mark.slow
def test_margin_objective_learns_a_judgment_and_fails_when_its_term_is_broken(tokenizer):
    before, after = _margin_verdict_accuracy(tokenizer)
    assert after >= 0.9 and after > before + 0.25, (before, after)
    # the same run with the verdict term's sign flipped, or with the term masked out, stays near chance
    _, flipped = _margin_verdict_accuracy(tokenizer, flip_sign=True)
    _, masked = _margin_verdict_accuracy(tokenizer, zero_term=True)
    assert flipped <= 0.6 and masked <= 0.75, (flipped, masked)


def test_easy_tier_run_reports_diagnostics_and_exports_its_template(tmp_path, monkeypatch):
    import csv

    import cj2.models
    from cj2.models.export import read_judge_card
    from cj2.train import train

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    train(
        cfg_for(
            tmp_path,
            "data.builtin.tiers=[easy]",
            "data.builtin.both_orders=true",
            "data.builtin.templates=[cj2_direct]",
            "callbacks.generated.template=cj2_direct",
            "callbacks.generated.n_unseen_items=2",
            "callbacks.verdict_logits.items=heldout",
            "callbacks.verdict_logits.both_orders=true",
            "callbacks.verdict_logits.untrained_baseline=false",
            "export=true",
        )
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the headline over the trained families, the held-out family apart, per gold label as shown
    for key in (
        "val/judge_acc",
        "val/judge_acc_ci_low",
        "val/judge_acc_unseen_family",
        "val/judge_acc_gold_A",
        "val/judge_acc_gold_B",
        "val/verdict_logit_acc_gold_A",
        "val/verdict_logit_logodds_gold_B",
        "val/verdict_logit_letter_bias",
        "val/verdict_logit_acc_unseen_family",
    ):
        assert key in metrics, key
    assert metrics["val/n_judgments"] == 4 and metrics["val/n_judgments_unseen_family"] == 4
    rows = list(csv.DictReader(next((tmp_path / "csv").rglob("metrics.csv")).open()))
    lrs = [float(r["train/lr"]) for r in rows if r.get("train/lr")]
    assert len(lrs) == 4 and lrs[-1] < max(lrs)  # the scheduled rate each step applied, not the peak
    assert read_judge_card(tmp_path / "hf") == {
        "template": "cj2_direct",
        "format": "cj2_choice",
        "loss": "margin",
        "run": tmp_path.name,
    }


def test_generated_judgments_with_no_items_evaluate_nothing(tmp_path):
    """callbacks.generated with n_items=0 and n_unseen_items=0 asks for nothing: no generation, no
    val/judge_acc, and the run still trains and writes its metrics."""
    from cj2.train import train

    value = train(
        cfg_for(
            tmp_path,
            "trainer.max_steps=2",
            "callbacks.generated.n_items=0",
            "callbacks.generated.n_unseen_items=0",
            "callbacks.verdict_logits=null",
        )
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert value is None and "val/judge_acc" not in metrics and metrics["global_step"] == 2
    assert not list(tmp_path.glob("generations_*.jsonl"))


# --------------------------------------------------------------------------------------------- loggers
WANDB_RUN = [
    "logger=default",  # wandb (offline here) and CSV
    "trainer.max_steps=4",
    "callbacks.verdict_logits=null",
    "callbacks.generated.n_unseen_items=1",
    "callbacks.generated.table_rows=4",
]


def test_resume_continues_the_same_wandb_run_and_logs_judgment_tables(tmp_path, monkeypatch):
    """Through real offline wandb: the first start saves its wandb run id in the run folder, ckpt_path=last
    continues that run (same id, the run folders wandb writes carry it), and every generated validation
    logs its judgments as a wandb.Table (table_rows of them, the columns of GeneratedEval.table)."""
    import cj2.models
    import cj2.train as train_mod
    from cj2.evaluation.generated import TABLE_COLUMNS

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setenv("WANDB_MODE", "offline")
    ids = []
    finish = train_mod._finish_wandb

    def record_then_finish(loggers):
        import wandb

        ids.append(wandb.run.id)  # the live run, as wandb itself knows it
        finish(loggers)

    monkeypatch.setattr(train_mod, "_finish_wandb", record_then_finish)
    train_mod.train(cfg_for(tmp_path, *WANDB_RUN, "stop_after_steps=2"))
    saved = (tmp_path / "wandb_run_id").read_text().strip()
    train_mod.train(cfg_for(tmp_path, *WANDB_RUN, "ckpt_path=last"))
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 4
    assert ids == [saved, saved] and (tmp_path / "wandb_run_id").read_text().strip() == saved
    folders = list((tmp_path / "wandb").glob("offline-run-*"))
    assert folders and {f.name.rsplit("-", 1)[1] for f in folders} == {saved}
    tables = sorted(tmp_path.glob("wandb/offline-run-*/files/media/table/val/judgments_*.table.json"))
    assert len(tables) >= 2  # the final validation of each start
    for path in tables:
        table = json.loads(path.read_text())
        assert table["columns"] == list(TABLE_COLUMNS) and len(table["data"]) == 4
        row = dict(zip(table["columns"], table["data"][0]))
        assert row["order"] == "AB" and row["question"] and row["gold"] in ("A", "B", "tie")
        assert isinstance(row["correct"], bool)


def test_wandb_disabled_trains_and_logs_nothing(tmp_path, monkeypatch):
    """logger.wandb.mode=disabled: the run (judgment tables included) goes through wandb's no-op run."""
    import cj2.models
    from cj2.train import train

    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    overrides = [a for a in WANDB_RUN if not a.startswith("logger=")]
    train(cfg_for(tmp_path, *overrides, "logger=wandb", "logger.wandb.mode=disabled", "trainer.max_steps=2"))
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 2
    assert not list(tmp_path.glob("wandb/*run-*"))


def test_wandb_run_id_is_new_at_a_fresh_start_and_kept_on_resume(tmp_path):
    from cj2.runtime import WANDB_ID_FILE, wandb_run_id

    assert wandb_run_id(tmp_path, resume=True, save=False) != ""  # nothing saved yet: a new id
    assert not (tmp_path / WANDB_ID_FILE).exists()
    first = wandb_run_id(tmp_path, resume=False)
    assert (tmp_path / WANDB_ID_FILE).read_text().strip() == first
    assert wandb_run_id(tmp_path, resume=True) == first == wandb_run_id(tmp_path, resume=True, save=False)
    fresh = wandb_run_id(tmp_path, resume=False)  # a fresh start in the same folder is a new wandb run
    assert fresh != first and wandb_run_id(tmp_path, resume=True) == fresh


class _TableLogger(Logger):
    """A logger that takes tables (as WandbLogger does) and keeps them."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple] = []

    @property
    def name(self) -> str:
        return "tables"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None) -> None:
        self.tables.append((key, columns, data, step))


@pytest.mark.parametrize("logger", ["csv", "none"])
def test_judgment_tables_without_wandb(tmp_path, monkeypatch, logger):
    """wandb blocked (any import of it fails): logger=csv and logger=none train as before, write no wandb
    id, and a logger that takes tables gets one per generated validation, capped at table_rows, with the
    responses in the order the judge saw them."""
    import cj2.models
    import cj2.train as train_mod
    from cj2.evaluation.generated import TABLE_COLUMNS

    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(cj2.models, "cache_dir", lambda: tmp_path / "cache")
    taker = _TableLogger()
    build = train_mod.build_loggers
    monkeypatch.setattr(train_mod, "build_loggers", lambda *a, **k: [*build(*a, **k), taker])
    train_mod.train(
        cfg_for(
            tmp_path,
            f"logger={logger}",
            "trainer.max_steps=4",
            "callbacks.verdict_logits=null",
            "callbacks.generated.n_unseen_items=1",
            "callbacks.generated.table_rows=5",
            "callbacks.generated.every_n_steps=2",
            "trainer.val_check_interval=2",
        )
    )
    assert not (tmp_path / "wandb_run_id").exists() and not (tmp_path / "wandb").exists()
    assert [(key, step) for key, _, _, step in taker.tables] == [
        ("val/judgments", 2),
        ("val/judgments", 4),
        ("val/judgments", 4),  # the final validation
    ]
    for _, columns, data, _ in taker.tables:
        assert columns == list(TABLE_COLUMNS) and len(data) == 5  # 3 items x 2 orders, capped at 5
        rows = [dict(zip(columns, r)) for r in data]
        ab, ba = rows[0], rows[1]
        assert (ab["id"], ab["order"], ba["id"], ba["order"]) == (ab["id"], "AB", ab["id"], "BA")
        assert (ab["response A"], ab["response B"]) == (ba["response B"], ba["response A"])
        assert ba["gold"] == {"A": "B", "B": "A", "tie": "tie"}[ab["gold"]]  # gold as shown, too
        assert all(r["correct"] == (r["verdict"] == r["gold"]) for r in rows)


class _TTY(io.StringIO):
    """A stderr that says it is a terminal (where a progress bar is shown)."""

    def isatty(self) -> bool:
        return True


def test_generated_eval_progress_bar_counts_the_prompts(tiny_model, tokenizer, monkeypatch):
    """The bar over the prompts (both orders of every item) is advanced per decoded batch to the total, on
    stderr when it is a TTY; nothing is written with progress off or stderr not a terminal."""
    from cj2.data.tasks import generate_items
    from cj2.evaluation.generated import GeneratedEval

    items = generate_items(3, split="validation", seed=0)
    for stream, progress, shown in [
        (_TTY(), True, True),
        (_TTY(), False, False),
        (io.StringIO(), True, False),
    ]:
        monkeypatch.setattr(sys, "stderr", stream)
        ev = GeneratedEval(items, max_new_tokens=4, batch_size=4, progress=progress)
        ev.run(tiny_model, tokenizer)
        assert len(ev.last_rows) == 6
        text = stream.getvalue()
        assert ("6/6" in text and "val: generated judgments" in text) == shown, text


def test_generated_eval_bar_follows_the_trainers_progress_bar(tmp_path):
    """callbacks.generated.progress shows the bar only where the trainer shows its own."""
    from cj2.callbacks import GeneratedJudgments
    from cj2.data.tasks import generate_items

    class DataModule:
        def eval_items(self, n, n_unseen=0):
            return generate_items(n, split="validation", seed=0)

        def heldout_families(self):
            return []

    class Trainer:
        datamodule = DataModule()
        default_root_dir = str(tmp_path)
        precision = "32-true"

    for bar, switch, expected in [(object(), True, True), (None, True, False), (object(), False, False)]:
        trainer = Trainer()
        trainer.progress_bar_callback = bar
        evaluator = GeneratedJudgments(n_items=1, progress=switch).build(trainer)
        assert evaluator.progress is expected
