"""loss=grpo: the loss by hand, the rewards, the vLLM sync logic, learning on the tiny model, kill/resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cj2.losses.grpo import group_advantages, group_ids, grpo_loss, k3_kl
from cj2.rewards import judgment_rewards, load_spurious_check
from cj2.testing import ENV as KILL_ENV
from cj2.testing import FLIP_ADVANTAGE_ENV

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- the loss
def test_group_advantages_by_hand_and_zero_variance_groups():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 0.5])
    groups = group_ids(["q1", "q1", "q1", "q1", "q2", "q2", "q3"])
    assert groups.tolist() == [0, 0, 0, 0, 1, 1, 2]
    adv, zero = group_advantages(rewards, groups, eps=1e-6)
    # q1: mean 0.5, population std 0.5 -> +-0.5 / (0.5 + 1e-6); q2 equal rewards and q3 alone -> 0
    a = 0.5 / (0.5 + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([a, -a, a, -a, 0.0, 0.0, 0.0]))
    assert zero.tolist() == [False, True, True]
    centred, _ = group_advantages(rewards, groups, norm="none")
    torch.testing.assert_close(centred, torch.tensor([0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 0.0]))


def _case():
    """Two sequences: ratios (1.5, 0.5, 1.0) with A=+1 and (1.5, 0.5, masked) with A=-1."""
    old = torch.full((2, 3), -1.0)
    ratio = torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]])
    logps = (old + ratio.log()).requires_grad_(True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    return logps, old, torch.tensor([1.0, -1.0]), mask


def test_clipped_loss_equals_a_hand_computation():
    logps, old, adv, mask = _case()
    out = grpo_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.2)
    # A=+1: min(r, clip(r)) = (1.2, 0.5, 1.0); A=-1: min(-r, -clip(r)) = (-1.5, -0.8)
    per_token = [-1.2, -0.5, -1.0, 1.5, 0.8]
    assert out["loss"].item() == pytest.approx(sum(per_token) / 5)
    # the clipped term is taken at (row 0, token 0) (1.2 < 1.5) and (row 1, token 1) (-0.8 < -0.5)
    assert out["clip_frac"].item() == pytest.approx(2 / 5)
    assert out["kl"].item() == 0.0
    seq = grpo_loss(logps, old, adv, mask, token_norm="sequence")
    assert seq["loss"].item() == pytest.approx(((-1.2 - 0.5 - 1.0) / 3 + (1.5 + 0.8) / 2) / 2)
    # asymmetric clipping (DAPO's clip-higher): [1 - 0.2, 1 + 0.6] keeps row 0's 1.5 unclipped
    hi = grpo_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.6)
    assert hi["loss"].item() == pytest.approx((-1.5 - 0.5 - 1.0 + 1.5 + 0.8) / 5)
    # clipped tokens carry no gradient; the others d/dlogp (-r A) / n = -r A / 5
    out["loss"].backward()
    expected = torch.tensor([[0.0, -0.5 / 5, -1.0 / 5], [1.5 / 5, 0.0, 0.0]])
    torch.testing.assert_close(logps.grad, expected)


def test_kl_penalty_is_k3_and_ratio_one_gives_the_plain_policy_gradient():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    ref = logps.detach() + torch.tensor([[0.0, math.log(2)], [-math.log(2), 0.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    adv = torch.tensor([0.5, -2.0])
    out = grpo_loss(logps, logps.detach(), adv, mask, ref_logps=ref, kl_beta=0.1)
    k3 = [0.0, 1 - math.log(2), 0.5 + math.log(2) - 1, 0.0]  # exp(d) - d - 1 for d = 0, ln 2, -ln 2, 0
    assert out["kl"].item() == pytest.approx(sum(k3) / 4)
    assert out["loss"].item() == pytest.approx((-0.5 - 0.5 + 2.0 + 2.0) / 4 + 0.1 * sum(k3) / 4)
    assert out["clip_frac"].item() == 0.0 and out["ratio_mean"].item() == 1.0
    torch.testing.assert_close(k3_kl(logps, ref).flatten(), torch.tensor(k3), check_dtype=False)
    out["loss"].backward()
    # d/dlogp: -A (ratio 1) + beta * (1 - exp(ref - logp)), over 4 tokens
    d = (ref - logps).detach()
    expected = (-adv.unsqueeze(1) + 0.1 * (1 - d.exp())) / 4
    torch.testing.assert_close(logps.grad, expected)


def test_left_out_rows_with_their_denominator_give_the_full_loss():
    logps, old, _, mask = _case()
    adv = torch.tensor([1.0, 0.0])  # the second row has no gradient and no KL: the caller may skip it
    full = grpo_loss(logps, old, adv, mask)
    part = grpo_loss(logps[:1], old[:1], adv[:1], mask[:1], denominator=int(mask.sum()))
    assert part["loss"].item() == pytest.approx(full["loss"].item())
    seq_full = grpo_loss(logps, old, adv, mask, token_norm="sequence")
    seq_part = grpo_loss(logps[:1], old[:1], adv[:1], mask[:1], token_norm="sequence", denominator=2)
    assert seq_part["loss"].item() == pytest.approx(seq_full["loss"].item())


# -------------------------------------------------------------------------------------------- the rewards
def _choice(letter: str) -> str:
    return f'{{"Truth": "4", "Choice": "Model {letter}"}}'


def test_rewards_pay_the_consistency_term_only_when_both_orders_are_right():
    texts = [_choice("A"), _choice("A"), "no verdict", _choice("B"), _choice("A"), _choice("A")]
    golds = ["A", "A", "B", "B", "A", "A"]
    ids = ["q", "q", "q/swapped", "q/swapped", "r", "r"]
    r = judgment_rewards(
        texts, golds, ["cj2_choice"] * 6, pair_ids=["q", "q", "q", "q", "r", "r"], orders=ids
    )
    # q sample 0 pairs with q/swapped sample 0 (malformed), sample 1 with sample 1 (right); r has one order
    assert r.correct == [True, True, False, True, True, True]
    assert r.malformed == [False, False, True, False, False, False]
    assert r.consistent == [False, True, False, True, None, None]
    assert r.reward == [1.0, 2.0, 0.0, 2.0, 1.0, 1.0]
    assert r.summary()["malformed"] == 1.0
    half = judgment_rewards(
        texts[:4], golds[:4], ["cj2_choice"] * 4, pair_ids=["q"] * 4, orders=ids[:4], consistency_weight=0.5
    )
    assert half.reward == [1.0, 1.5, 0.0, 1.5]


def _stand_in_spurious(text: str, record) -> bool | None:
    """A stand-in faithfulness check: the stated truth must be the record's."""
    return None if record is None else '"Truth": "4"' not in text


def test_a_spurious_rationale_is_penalised_through_the_pluggable_check():
    check = load_spurious_check("tests.test_grpo:_stand_in_spurious")
    texts = [_choice("A"), _choice("A").replace('"4"', '"5"')]
    flags = [check(t, {"id": "q"}) for t in texts]
    assert flags == [False, True]
    r = judgment_rewards(texts, ["A", "A"], ["cj2_choice"] * 2, spurious=flags, spurious_penalty=0.5)
    assert r.reward == [1.0, 0.5] and r.summary()["spurious"] == 0.5
    wrong = judgment_rewards(texts, ["B", "B"], ["cj2_choice"] * 2, spurious=flags, spurious_penalty=0.5)
    assert wrong.reward == [0.0, 0.0]  # a wrong verdict earns 0 whatever its reasons
    assert load_spurious_check("cj2.no_such_module:is_spurious") is None  # not there yet: no penalty
    with pytest.raises(ValueError, match="no callable"):
        load_spurious_check("cj2.rewards:no_such_function")
    with pytest.raises(ValueError, match="module:function"):
        load_spurious_check("cj2.rewards")


# --------------------------------------------------------------------------------------- vllm sync logic
class _Completion:
    def __init__(self, text: str, index: int):
        self.text, self.index, self.finish_reason, self.token_ids = text, index, "stop", [1, 2, 3]


class _StandInLLM:
    """Implements the calls VLLMSampler makes: ``chat(prompts, sampling_params=[...], use_tqdm=False)``."""

    def __init__(self, folder: str):
        self.folder = folder
        self.weights = Path(folder, "weights.txt").read_text()

    def chat(self, prompts, sampling_params, use_tqdm=False):
        return [
            type("Out", (), {"outputs": [_Completion(f"{self.weights} [[A]]", j) for j in range(sp.n)]})()
            for sp in sampling_params
        ]


class _Params:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_vllm_rollouts_reload_the_policy_every_sync_every_steps_and_after_a_resume(tmp_path):
    from cj2.generation.base import SamplingParams
    from cj2.rollout import VLLMPolicyRollout

    exported: list[tuple[str, str]] = []

    def exporter(model, tokenizer, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "weights.txt").write_text(model["version"])
        exported.append((folder.name, model["version"]))

    def make():
        return VLLMPolicyRollout(
            None,
            tmp_path,
            sync_every=2,
            engine_factory=_StandInLLM,
            exporter=exporter,
            sampling_params_cls=_Params,
        )

    rollout = make()
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3)
    seen = []
    for step in range(5):
        rollout.sync({"version": f"w{step}"}, step)
        (row,) = rollout.generate([[{"role": "user", "content": "q"}]], 2, params, ["k"])
        seen.append(row[0].text.split()[0])
    # the engine holds the weights of the last multiple of sync_every: steps 0-1 w0, 2-3 w2, 4 w4
    assert seen == ["w0", "w0", "w2", "w2", "w4"]
    assert exported == [("step-00000000", "w0"), ("step-00000002", "w2"), ("step-00000004", "w4")]
    assert rollout.syncs == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002", "step-00000004"]  # keep=2

    # a run resumed at step 5 samples with step 4's export, as the uninterrupted run did; nothing re-exported
    resumed = make()
    resumed.sync({"version": "w5"}, 5)
    (row,) = resumed.generate([[{"role": "user", "content": "q"}]], 1, params, ["k"])
    assert row[0].text.startswith("w4") and len(exported) == 3
    # without that export (another machine) it syncs the current weights and says so
    other = VLLMPolicyRollout(
        None,
        tmp_path / "elsewhere",
        sync_every=2,
        engine_factory=_StandInLLM,
        exporter=exporter,
        sampling_params_cls=_Params,
    )
    other.sync({"version": "w7"}, 7)
    assert exported[-1] == ("step-00000006", "w7")
    with pytest.raises(RuntimeError, match="before sync"):
        make().generate([[{"role": "user", "content": "q"}]], 1, params, ["k"])


# ----------------------------------------------------------------------- learning and resume, tiny model
N_PROMPTS = 8


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Item {i}. Reply [[A]] or [[B]]."}]


def _family(gold: str = "A"):
    """A trivially learnable family: the right verdict is always ``gold``."""
    from cj2.data.schema import TrainRecord

    return [
        TrainRecord(id=f"q{i}", messages=_prompt(i), response=f"[[{gold}]]", verdict=gold, format="brackets")
        for i in range(N_PROMPTS)
    ]


def _warm_start(tokenizer):
    """The tiny model taught the format on every prompt with both verdicts (so it answers A or B about
    evenly), by a few full-batch CE steps on the verdict tokens only."""
    from cj2.models import load_model

    torch.manual_seed(0)
    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    rows = []
    for i in range(N_PROMPTS):
        prompt = tokenizer.apply_chat_template(_prompt(i), tokenize=False, add_generation_prompt=True)
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for letter in "AB":
            full = tokenizer.apply_chat_template(
                _prompt(i) + [{"role": "assistant", "content": f"[[{letter}]]"}], tokenize=False
            )
            rows.append((tokenizer(full, add_special_tokens=False)["input_ids"], n))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (seq, n) in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq)
        labels[r, n : len(seq)] = torch.tensor(seq[n:])
        attn[r, : len(seq)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    keep = labels[:, 1:] != -100
    for _ in range(40):
        hidden = model.get_decoder()(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), labels[:, 1:][keep])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


@pytest.fixture(scope="module")
def warm_state(tokenizer):
    return _warm_start(tokenizer)


GRPO = {"name": "grpo", "group_size": 8, "rollout_max_new_tokens": 6, "rollout_batch_size": 64}


def _grpo_rewards(tokenizer, state, steps: int) -> list[float]:
    import lightning as L

    from cj2.data.datamodule import JudgeDataModule
    from cj2.models import load_model
    from cj2.module import JudgeModule

    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    model.load_state_dict(state)
    dm = JudgeDataModule(tokenizer, train_records=_family(), batch_size=4, max_length=128, seed=0)
    module = JudgeModule(
        model, GRPO, lambda p: torch.optim.AdamW(p, lr=1e-2), tokenizer=tokenizer, run_config={"seed": 0}
    )
    rewards: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rewards.append(pl_module._grpo.last_stats["reward_mean"])

    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Record()],
    )
    model.train()
    trainer.fit(module, datamodule=dm)
    return rewards


@pytest.mark.slow
def test_grpo_raises_the_reward_of_a_learnable_family_and_the_flipped_sign_does_not(
    tokenizer, warm_state, monkeypatch
):
    """With CJ2_TEST_FLIP_ADVANTAGE=1 set for the whole test its first assertion fails: the check can fail."""
    steps, k = 8, 3  # measured: 0.22, 0.19, 0.72, 0.47, 0.94, 1.0, 0.94, 0.94 up; 0.22, 0.0, 0.0, ... flipped
    up = _grpo_rewards(tokenizer, warm_state, steps)
    first, last = sum(up[:k]) / k, sum(up[-k:]) / k
    assert last >= first + 0.2, f"GRPO did not raise the reward: {[round(r, 2) for r in up]}"
    monkeypatch.setenv(FLIP_ADVANTAGE_ENV, "1")
    down = _grpo_rewards(tokenizer, warm_state, steps)
    assert sum(down[-k:]) / k < sum(down[:k]) / k + 0.1, (
        f"flipped, it rose too: {[round(r, 2) for r in down]}"
    )


def _write_family(path: Path) -> Path:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in _family()))
    return path


def _cmd(root: Path, name: str, model_dir: Path, data: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cj2.train",
        "model=tiny", f"model.name_or_path={model_dir}", "model.tiny_config=null",
        "loss=grpo", "loss.group_size=4", "loss.rollout_max_new_tokens=6",
        "logger=csv", "data.builtin.n_train=0", "data.builtin.n_val=4", f"data.train_files=[{data}]",
        "data.batch_size=4", "data.max_length=128", "trainer.max_steps=5", "trainer.precision=32-true",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "checkpoint_every_n_steps=1",
        "callbacks.generated=null", "callbacks.verdict_logits=null",
        "+callbacks.budget._target_=cj2.module.TokenBudget",
        "export=false", "optimizer.lr=1e-2", f"output_root={root}", f"run_name={name}", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_grpo_killed_and_resumed_equals_uninterrupted(tmp_path, tokenizer, warm_state):
    from cj2.models import load_model
    from cj2.models.export import export_hf

    model = load_model("tiny", seed=0, tokenizer=tokenizer)
    model.load_state_dict(warm_state)
    model_dir = export_hf(model, tokenizer, tmp_path / "warm")
    data = _write_family(tmp_path / "family.jsonl")
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop(FLIP_ADVANTAGE_ENV, None)
    ref = subprocess.run(_cmd(tmp_path, "ref", model_dir, data), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = subprocess.run(
        _cmd(tmp_path, "killed", model_dir, data),
        env={**env, KILL_ENV: "train.step:3"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = tmp_path / "runs" / "killed"
    assert torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 3
    resumed = subprocess.run(
        _cmd(tmp_path, "killed", model_dir, data, "ckpt_path=last"), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "runs" / "ref" / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert a["global_step"] == b["global_step"] == 5
    for key in ("tokens_generated", "tokens_trained", "val/loss"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    rewards = [_step_rewards(tmp_path / "runs" / n) for n in ("ref", "killed")]
    assert rewards[0][-2:] == pytest.approx(
        rewards[1][-2:], abs=1e-6
    )  # steps 4 and 5: drawn after the resume
    assert len(set(rewards[0])) > 1, f"the rewards never changed ({rewards[0]}): the test would prove nothing"
    wa = torch.load(tmp_path / "runs" / "ref" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    wb = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    changed = False
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=1e-6, msg=name)
        changed |= not torch.equal(wa[name], warm_state[name.removeprefix("model.")])
    assert changed, "GRPO never changed the weights: the equality would prove nothing"


def _step_rewards(run: Path) -> list[float]:
    import csv

    with open(run / "csv" / "metrics.csv") as f:
        return [float(r["train/reward_mean"]) for r in csv.DictReader(f) if r.get("train/reward_mean")]


class _ScriptedRollout:
    """Stands in for the policy's sampler: fixed judgments per record id, with their token ids."""

    def __init__(self, tokenizer, texts: dict[str, list[str]]):
        self.tokenizer, self.texts, self.calls = tokenizer, texts, []

    def sync(self, model, global_step: int) -> None:
        self.calls.append(("sync", global_step))

    def generate(self, prompts, n, params, keys):
        from cj2.generation.base import Sample, sample_seed

        self.calls.append(("generate", params.seed, tuple(keys), params.stop_on_verdict))
        out = []
        for i, key in enumerate(keys):
            row = []
            for j, text in enumerate(self.texts[key][:n]):
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                meta = {"token_ids": ids}
                row.append(Sample(text, "verdict", i, j, sample_seed(params.seed, key, j), len(ids), meta))
            out.append(row)
        return out


def test_a_grpo_step_groups_both_orders_rewards_them_and_scores_the_sampled_tokens(tokenizer, tiny_model):
    from cj2.data.schema import TrainRecord
    from cj2.module import JudgeModule
    from cj2.rollout import rollout_seed

    q = [{"role": "user", "content": "Which is right? Reply [[A]] or [[B]]."}]
    records = [
        TrainRecord(id="q", messages=q, response="[[A]]", verdict="A", format="brackets"),
        TrainRecord(id="q/swapped", messages=q, response="[[B]]", verdict="B", format="brackets"),
    ]
    texts = {"q": ["It is [[A]]", "[[B]]"], "q/swapped": ["So [[B]]", "unsure"]}
    loss_cfg = {**GRPO, "group_size": 2, "rollout_temperature": 0.5}
    module = JudgeModule(tiny_model, loss_cfg, tokenizer=tokenizer, run_config={"seed": 7})
    module.__dict__["_record_index"] = {r.id: r for r in records}
    module._grpo.rollout = _ScriptedRollout(tokenizer, texts)
    loss = module._grpo_step({"ids": ["q", "q/swapped"]})
    stats = module._grpo.last_stats
    # q#0 and q/swapped#0 are right in both orders (1 + 1); q#1 is wrong, q/swapped#1 malformed (0 each):
    # one group of four, rewards (2, 0, 2, 0), advantages +-1 (up to the 1e-6 of the std)
    assert stats["reward_mean"] == 1.0 and stats["reward_std"] == 1.0
    assert stats["reward_malformed"] == 1.0 and stats["reward_consistent"] == 0.5
    assert stats["zero_variance_groups"] == 0.0 and stats["clip_frac"] == 0.0
    calls = module._grpo.rollout.calls
    assert calls == [("sync", 0), ("generate", rollout_seed(7, 0), ("q", "q/swapped"), "brackets")]
    # the loss by hand: the sampled tokens' log-probs at temperature 0.5 from a plain forward, ratio 1
    tiny_model.zero_grad()
    loss.backward()
    got = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
    tiny_model.zero_grad()
    total, value, n_tokens = 0.0, 0.0, 0
    for key, adv in (("q", 1.0), ("q", -1.0), ("q/swapped", 1.0), ("q/swapped", -1.0)):
        j = 0 if adv > 0 else 1
        comp = tokenizer(texts[key][j], add_special_tokens=False)["input_ids"]
        prompt = tokenizer(
            tokenizer.apply_chat_template(q, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        ids = torch.tensor([prompt + comp])
        logits = tiny_model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / 0.5
        lp = logits.log_softmax(-1).gather(1, torch.tensor(comp).unsqueeze(1)).sum()
        a = adv * 0.5 / (0.5 + 1e-6)
        total = total - a * lp  # the surrogate's gradient at ratio 1: -A grad log p
        value -= a * len(comp)  # its value: -A per token (ratio 1)
        n_tokens += len(comp)
    assert loss.item() == pytest.approx(value / n_tokens, abs=1e-6)
    (total / n_tokens).backward()
    for name, grad in got.items():
        torch.testing.assert_close(grad, tiny_model.get_parameter(name).grad, rtol=1e-4, atol=1e-6, msg=name)
    assert module.processed_tokens["generated"] == sum(
        len(tokenizer(t, add_special_tokens=False)["input_ids"]) for v in texts.values() for t in v
    )


def test_the_kl_penalty_compares_with_a_frozen_copy_of_the_initial_weights(tokenizer, tiny_model):
    from cj2.data.schema import TrainRecord
    from cj2.module import JudgeModule

    q = [{"role": "user", "content": "Which is right? Reply [[A]] or [[B]]."}]
    records = [TrainRecord(id="q", messages=q, response="[[A]]", verdict="A", format="brackets")]
    texts = {"q": ["[[A]]", "[[B]]"]}

    def step(module):
        module.__dict__["_record_index"] = {r.id: r for r in records}
        module._grpo.rollout = _ScriptedRollout(tokenizer, texts)
        loss = module._grpo_step({"ids": ["q"]})
        return loss.item(), module._grpo.last_stats

    module = JudgeModule(tiny_model, {**GRPO, "group_size": 2, "kl_beta": 0.5}, tokenizer=tokenizer)
    loss0, stats0 = step(module)
    assert stats0["kl"] == 0.0 and loss0 == pytest.approx(stats0["pg_loss"])  # the policy is its reference
    with torch.no_grad():  # an update moves the policy away; the reference copy stays where it was
        tiny_model.get_decoder().norm.weight.mul_(1.5)
    loss1, stats1 = step(module)
    assert stats1["kl"] > 1e-4
    assert loss1 == pytest.approx(stats1["pg_loss"] + 0.5 * stats1["kl"], abs=1e-6)
    assert "_kl_reference" not in dict(module.named_modules()) and not any(
        "_kl_reference" in k for k in module.state_dict()
    )


def test_with_lora_the_kl_reference_is_the_model_with_its_adapters_off(tokenizer, tiny_model):
    pytest.importorskip("peft")
    from cj2.data.schema import TrainRecord
    from cj2.models import apply_peft
    from cj2.module import JudgeModule

    lora = apply_peft(tiny_model, {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"})
    q = [{"role": "user", "content": "Which is right? Reply [[A]] or [[B]]."}]
    module = JudgeModule(lora, {**GRPO, "group_size": 2, "kl_beta": 0.5}, tokenizer=tokenizer)
    assert "_kl_reference" not in module.__dict__  # no second copy of the weights
    module.__dict__["_record_index"] = {"q": TrainRecord("q", q, "[[A]]", "A", "brackets")}
    module._grpo.rollout = _ScriptedRollout(tokenizer, {"q": ["[[A]]", "[[B]]"]})
    module._grpo_step({"ids": ["q"]})
    assert module._grpo.last_stats["kl"] == 0.0  # LoRA starts as the identity (B = 0)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    module._grpo_step({"ids": ["q"]})
    assert module._grpo.last_stats["kl"] > 1e-4


def test_a_step_without_any_gradient_still_backpropagates_with_a_frozen_output_layer(tokenizer, tiny_model):
    from cj2.data.schema import TrainRecord
    from cj2.module import JudgeModule

    tiny_model.get_input_embeddings().weight.requires_grad_(False)  # tied: the output layer is frozen too
    q = [{"role": "user", "content": "Which is right? Reply [[A]] or [[B]]."}]
    module = JudgeModule(tiny_model, {**GRPO, "group_size": 2}, tokenizer=tokenizer)
    module.__dict__["_record_index"] = {"q": TrainRecord("q", q, "[[A]]", "A", "brackets")}
    module._grpo.rollout = _ScriptedRollout(tokenizer, {"q": ["[[A]]", "The answer is [[A]]"]})
    loss = module._grpo_step({"ids": ["q"]})
    assert module._grpo.last_stats["zero_variance_groups"] == 1.0 and loss.item() == 0.0
    loss.backward()  # Lightning backpropagates whatever the step returns
    assert all(p.grad is None or not p.grad.any() for p in tiny_model.parameters())
