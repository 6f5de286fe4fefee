"""The LightningModule: wires a causal LM, a judge objective and metrics -- nothing else.

The objective (``cj2.losses``) receives the decoder's final hidden states and the output-layer weight and
computes CE on the response tokens plus the verdict term at the verdict position (arXiv 2507.09104,
Eq. 4 and Table 1). It runs inside ``training_step``, i.e. inside the forward of the module that FSDP wraps,
so the sharded output weight is gathered when it is read.

Normalisation is exact under gradient accumulation and data parallelism: every micro-batch carries the
totals of its whole optimizer step (see :mod:`cj2.data.sampler`), the objective divides by them, and the
loss handed to Lightning is scaled back by ``accumulate_grad_batches * world_size`` because Lightning
divides by the first and DDP averages over the second.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

from cj2.losses import LossConfig, Objective, build_objective

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


def check_nonfinite_policy(on_nonfinite: str, accumulate_grad_batches: int, world_size: int) -> None:
    """Refuse ``on_nonfinite=skip`` where skipping one micro-batch would not be exact.

    Skipping returns ``None`` from ``training_step``: that micro-batch adds no gradient. It is the whole
    optimizer step only with ``accumulate_grad_batches=1`` on one process. Under accumulation the other
    micro-batches of the step were normalised by the whole step's totals, skipped share included, so the
    update would be silently shrunk; under data parallelism the rank that skips stops taking part in the
    gradient all-reduce while the others wait for it.
    """
    if on_nonfinite == "skip" and (accumulate_grad_batches > 1 or world_size > 1):
        raise ValueError(
            f"on_nonfinite=skip needs accumulate_grad_batches=1 and one process, got "
            f"accumulate_grad_batches={accumulate_grad_batches} and world_size={world_size}: a skipped "
            f"micro-batch would leave the step's other micro-batches normalised by totals that include it "
            f"(and, with several processes, desynchronise the ranks). Use on_nonfinite=stop."
        )


class EpochLoss(Metric):
    """One loss of the objective over a whole validation epoch on every rank, as if it were one batch.

    Each term (:attr:`cj2.losses.Objective.loss_terms`) keeps its sum over the batches and the sum of its
    denominators, both summed over ranks at ``compute``; the term is their ratio (``val/loss_ce`` is the
    token mean of the CE over the validation set, not a mean of batch means) and ``loss`` combines the
    terms as the objective does (:meth:`cj2.losses.Objective.total`).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, objective: Objective, key: str) -> None:
        super().__init__()
        self.objective = objective
        self.terms = dict(objective.loss_terms)
        if key != "loss" and key not in self.terms:
            raise ValueError(f"{key!r} is not a loss of {objective.cfg.name} (terms: {sorted(self.terms)})")
        self.key = key
        n = len(self.terms)
        self.add_state("sums", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, out: Mapping[str, torch.Tensor], denominators: Mapping[str, Any]) -> None:
        """One batch: its terms ``out`` and the denominators they were divided by
        (:meth:`cj2.losses.Objective.denominators` of the batch)."""
        dens = torch.stack(
            [
                torch.as_tensor(denominators[d], dtype=torch.float64).to(self.sums.device)
                for d in self.terms.values()
            ]
        )
        values = torch.stack([out[t].detach().to(self.sums.device, torch.float64) for t in self.terms])
        # the objective divides each sum by max(denominator, 1): multiplying back gives the batch's sum
        self.sums = self.sums + values * dens.clamp_min(1)
        self.counts = self.counts + dens

    def compute(self) -> torch.Tensor:
        ratios = self.sums / self.counts.clamp_min(1)
        terms = {t: ratios[i] for i, t in enumerate(self.terms)}
        return self.objective.total(terms) if self.key == "loss" else terms[self.key]


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The part of a causal LM that returns final hidden states (no lm_head), for any HF architecture."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def _fully_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _hidden_through_root(model: torch.nn.Module, inputs: Mapping[str, Any]) -> torch.Tensor:
    """The decoder's final hidden states of a model sharded with FSDP2 (:mod:`cj2.distributed`).

    The decoder cannot be called on its own: the embeddings and the output layer are the root unit's
    parameters, gathered only by the root's forward, which also schedules the gradients' reduce-scatter.
    So the root runs (computing the logits of one position only) and a hook keeps the decoder's output;
    the root keeps its parameters gathered after its forward, so the output-layer weight the objective
    reads next is the full one and its gradient is reduce-scattered with the root's.
    """
    seen: list[torch.Tensor] = []

    def keep(module, args, out) -> None:
        seen.append(out[0] if isinstance(out, tuple) else out.last_hidden_state)

    handle = decoder_of(model).register_forward_hook(keep)
    try:
        model(**inputs, logits_to_keep=1)
    finally:
        handle.remove()
    return seen[-1]


class JudgeModule(L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        loss: LossConfig | Mapping[str, Any],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        *,
        tokenizer=None,
        on_nonfinite: str = "stop",
        run_config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        # A checkpoint knows its run: the loss, the non-finite policy and the run's resolved config (model,
        # data, optimizer, ...) go into every .ckpt; model, tokenizer and factories are no hyperparameters.
        self.save_hyperparameters(
            {
                "loss": _plain_loss(loss),
                "on_nonfinite": on_nonfinite,
                "run_config": dict(run_config) if run_config is not None else None,
            }
        )
        self.model = model
        self.objective = build_objective(loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.tokenizer = tokenizer
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite={on_nonfinite!r}; expected 'stop' or 'skip'")
        self.on_nonfinite = on_nonfinite
        self.skipped_nonfinite = 0
        self._reference: torch.nn.Module | None = None
        # Tokens this run has processed (generated by its own rollouts; run through the training forward),
        # kept in the checkpoint: the budget the on-policy comparison equalises (TokenBudget).
        self.processed_tokens: dict[str, int] = {"generated": 0, "trained": 0}
        self.counted_generation: set[str] = set()  # keys of draws already counted (add_generated_tokens)
        self._grpo: _GRPOState | None = None
        if self.objective.on_policy:
            self._grpo = _GRPOState()
            if self.objective.cfg.kl_beta > 0 and not _is_peft(model):
                # the initial weights, frozen, for the KL penalty (a LoRA model uses itself, adapters off)
                ref = copy.deepcopy(model).eval()
                for p in ref.parameters():
                    p.requires_grad_(False)
                object.__setattr__(self, "_kl_reference", ref)
        if self.objective.needs_reference:
            ref = copy.deepcopy(model).eval()
            for p in ref.parameters():
                p.requires_grad_(False)
            # kept out of state_dict / optimizer on purpose: the frozen reference is rebuilt from the
            # base model
            object.__setattr__(self, "_reference", ref)

    # ------------------------------------------------------------------ forward
    def _hidden(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        # Packed batches (cj2.data.packing) have no attention_mask but position_ids restarting per sample;
        # with use_cache=False transformers reads the restarts as sequence boundaries.
        inputs = dict(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
            use_cache=False,
        )
        if _fully_sharded(model):
            return _hidden_through_root(model, inputs)
        out = decoder_of(model)(**inputs)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def _lm_head(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        head = model.get_output_embeddings()
        return head.weight, getattr(head, "bias", None)

    def _denominators(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
        """The denominators of this micro-batch's whole optimizer step, from the step totals the data module
        attached (``None`` without them): the objective's own rule, so they equal its per-batch
        denominators summed over the step (:meth:`cj2.losses.Objective.denominators_from_counts`)."""
        totals = batch.get("step_totals")
        if totals is None:
            return None
        d = self.objective.denominators_from_counts(totals)
        return {k: torch.as_tensor(v, dtype=torch.float64, device=self.device) for k, v in d.items()}

    def compute_loss(self, batch: Mapping[str, Any], *, exact_step_norm: bool) -> dict[str, torch.Tensor]:
        hidden = self._hidden(self.model, batch)
        weight, bias = self._lm_head(self.model)
        ref_logps = None
        if self._reference is not None:
            ref = self._reference.to(self.device)
            with torch.no_grad():
                rw, rb = self._lm_head(ref)
                ref_logps = self.objective.response_logps(self._hidden(ref, batch), rw, batch, lm_bias=rb)
        den = self._denominators(batch) if exact_step_norm else None
        return self.objective(hidden, weight, batch, lm_bias=bias, denominators=den, ref_logps=ref_logps)

    # ------------------------------------------------------------------ on-policy (loss=grpo)
    def _count_tokens(self, *, generated: int = 0, trained: int = 0) -> None:
        """Add to the processed-token counters and log them (cumulative, per optimizer step)."""
        self.processed_tokens["generated"] += int(generated)
        self.processed_tokens["trained"] += int(trained)
        if self._trainer is None:
            return
        gen, tr = self.processed_tokens["generated"], self.processed_tokens["trained"]
        for key, value in (("generated", gen), ("trained", tr), ("processed", gen + tr)):
            self.log(f"train/tokens_{key}", float(value), on_step=True, on_epoch=False, batch_size=1)

    def add_generated_tokens(self, n: int, *, key: str | None = None) -> None:
        """Count ``n`` tokens generated for this run outside the training step (semi-online rounds' sampling
        with the policy), so the processed-token budget covers them. A ``key`` (e.g. ``"rft_round2"``) is
        counted once per run: a resumed run that reads a round back from its cache does not count it twice
        (the keys are kept in the checkpoint with the counts)."""
        if key is not None:
            if key in self.counted_generation:
                return
            self.counted_generation.add(key)
        self.processed_tokens["generated"] += int(n)

    def _run_seed(self) -> int:
        return int((self.hparams.get("run_config") or {}).get("seed", 0) or 0)

    def _records_for(self, ids: Sequence[str]) -> list[Any]:
        """The training records of a batch's ids (prompt messages, gold verdict, format), from the data
        module's ``train_records()``, indexed once."""
        index = self.__dict__.get("_record_index")
        if index is None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is None or not hasattr(dm, "train_records"):
                raise ValueError(
                    "loss=grpo needs a data module with train_records() (cj2.data.JudgeDataModule)"
                )
            index = {r.id: r for r in dm.train_records()}
            object.__setattr__(self, "_record_index", index)
        missing = [i for i in ids if i not in index]
        if missing:
            raise KeyError(
                f"loss=grpo: batch ids {missing[:3]} are not among the data module's train records"
            )
        records = [index[i] for i in ids]
        for r in records:
            if r.verdict is None or r.format == "none":
                raise ValueError(
                    f"record {r.id!r}: loss=grpo rewards verdicts, but this record has none (format "
                    f"{r.format!r}); train it with an offline loss"
                )
        return records

    def _rollout(self):
        """The rollout engine of ``loss.rollout_backend`` (:mod:`cj2.rollout`), made on first use."""
        st = self._grpo
        assert st is not None
        if st.rollout is None:
            cfg = self.objective.cfg
            if self.tokenizer is None:
                raise ValueError("loss=grpo needs JudgeModule(tokenizer=...) to sample judgments")
            from cj2.rollout import HFPolicyRollout, VLLMPolicyRollout

            if cfg.rollout_backend == "hf":
                st.rollout = HFPolicyRollout(self.model, self.tokenizer, batch_size=cfg.rollout_batch_size)
            else:
                from pathlib import Path

                root = Path(self.trainer.default_root_dir if self._trainer is not None else ".")
                st.rollout = VLLMPolicyRollout(
                    self.tokenizer,
                    root / "rollout_engine",
                    sync_every=cfg.sync_every,
                    engine_kwargs=cfg.vllm_engine_kwargs,
                )
        return st.rollout

    def _draw(self, records: Sequence[Any]) -> list[list[Any]]:
        """``group_size`` judgments per record from the current policy, seeded by (run seed, global step,
        record id, sample index) (:func:`cj2.rollout.rollout_seed`); one request per verdict format, each
        sample cut at its verdict."""
        from cj2.generation.base import SamplingParams
        from cj2.rollout import rollout_seed

        cfg = self.objective.cfg
        rollout = self._rollout()
        rollout.sync(self.model, int(self.global_step))
        seed = rollout_seed(self._run_seed(), int(self.global_step))
        by_format: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_format.setdefault(r.format, []).append(i)
        out: list[list[Any]] = [[] for _ in records]
        for fmt, idx in by_format.items():
            params = SamplingParams(
                max_new_tokens=cfg.rollout_max_new_tokens,
                temperature=cfg.rollout_temperature,
                top_p=cfg.rollout_top_p,
                top_k=cfg.rollout_top_k,
                seed=seed,
                stop_on_verdict=fmt,
            )
            drawn = rollout.generate(
                [records[i].messages for i in idx], cfg.group_size, params, [records[i].id for i in idx]
            )
            for i, row in zip(idx, drawn):
                out[i] = row
        return out

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        # as HFSampler.encode: the chat template with the generation prompt, no extra special tokens
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _completion_ids(self, sample: Any) -> list[int]:
        ids = (sample.meta or {}).get("token_ids")
        if ids is not None:
            return [int(t) for t in ids]
        return list(self.tokenizer(sample.text, add_special_tokens=False)["input_ids"])

    def _sampled_token_logps(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``[N]`` log-probs of the sampled tokens (``mask [R, T-1]`` marks the positions predicting them),
        at the rollout temperature. The [N, V] logits are never all held at once: each chunk of rows is
        projected inside a checkpoint and projected again in the backward pass."""
        from torch.utils.checkpoint import checkpoint

        hidden = self._hidden(model, {"input_ids": input_ids, "attention_mask": attention_mask})
        weight, bias = self._lm_head(model)
        h = hidden[:, :-1][mask]
        targets = input_ids[:, 1:][mask]
        temp = float(self.objective.cfg.rollout_temperature)
        chunk = int(self.objective.cfg.chunk_size)
        pieces = []
        for s in range(0, h.shape[0], chunk):
            args = (h[s : s + chunk], weight, targets[s : s + chunk], bias, temp)
            pieces.append(
                checkpoint(_sampled_logps, *args, use_reentrant=False)
                if torch.is_grad_enabled()
                else _sampled_logps(*args)
            )
        return torch.cat(pieces) if pieces else h.new_zeros(0, dtype=torch.float32)

    def _reference_token_logps(self, input_ids, attention_mask, mask) -> torch.Tensor:
        with torch.no_grad():
            if _is_peft(self.model):
                with self.model.disable_adapter():
                    return self._sampled_token_logps(self.model, input_ids, attention_mask, mask)
            ref = self.__dict__["_kl_reference"].to(self.device)
            return self._sampled_token_logps(ref, input_ids, attention_mask, mask)

    def _grpo_step(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """One GRPO micro-batch: draw, reward, normalise within groups, score the sampled tokens."""
        import time

        from cj2.losses.grpo import group_advantages, group_ids, grpo_loss
        from cj2.rewards import judgment_rewards, load_spurious_check, pair_key
        from cj2.testing import advantage_sign

        cfg = self.objective.cfg
        st = self._grpo
        assert st is not None
        records = self._records_for(list(batch["ids"]))
        t0 = time.perf_counter()
        drawn = self._draw(records)
        rollout_s = time.perf_counter() - t0

        flat = [(r, s) for r, row in zip(records, drawn) for s in row]
        texts = [s.text for _, s in flat]
        spurious = None
        if cfg.spurious_penalty > 0:
            if not st.spurious_loaded:
                st.spurious_check = load_spurious_check(cfg.spurious_check)
                st.spurious_loaded = True
            if st.spurious_check is not None:
                spurious = [st.spurious_check(s.text, r) for r, s in flat]
        rewards = judgment_rewards(
            texts,
            [str(r.verdict) for r, _ in flat],
            [r.format for r, _ in flat],
            pair_ids=[pair_key(r.id) for r, _ in flat],
            orders=[r.id for r, _ in flat],
            consistency_weight=cfg.consistency_weight,
            spurious=spurious,
            spurious_penalty=cfg.spurious_penalty,
        )
        reward_t = torch.tensor(rewards.reward, dtype=torch.float32)
        groups = group_ids([pair_key(r.id) for r, _ in flat])  # both orders of a question: one group
        adv, zero_var = group_advantages(reward_t, groups, norm=cfg.advantage_norm)
        adv = adv * advantage_sign()

        # sequences: prompt + sampled tokens; rows without a gradient (advantage 0, no KL) skip the forward
        # but keep their place in the loss's denominator, so the loss is the one over every sample
        prompt_cache: dict[str, list[int]] = {}
        rows, n_sampled, n_seq = [], 0, 0
        lengths = []
        for k, (r, s) in enumerate(flat):
            comp = self._completion_ids(s)
            lengths.append(len(comp))
            n_sampled += len(comp)
            n_seq += len(comp) > 0
            if comp and (adv[k] != 0 or cfg.kl_beta > 0):
                if r.id not in prompt_cache:
                    prompt_cache[r.id] = self._prompt_ids(r.messages)
                rows.append((prompt_cache[r.id], comp, k, s))
        self._count_tokens(generated=sum(lengths))
        denominator = n_sampled if cfg.token_norm == "token" else n_seq
        stats = {
            "reward_mean": reward_t.mean().item(),
            "reward_std": reward_t.std(unbiased=False).item(),
            "zero_variance_groups": zero_var.float().mean().item(),
            "judgment_tokens": sum(lengths) / max(len(lengths), 1),
            "rollout_s": rollout_s,
            **{f"reward_{k}": v for k, v in rewards.summary().items()},
        }
        if rows:
            pad = self.tokenizer.pad_token_id
            width = max(len(p) + len(c) for p, c, _, _ in rows)
            ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
            attn = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width - 1), dtype=torch.bool)
            for i, (p, c, _, _) in enumerate(rows):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                attn[i, : len(p) + len(c)] = 1
                mask[i, len(p) - 1 : len(p) + len(c) - 1] = True
            ids, attn, mask = ids.to(self.device), attn.to(self.device), mask.to(self.device)
            self._count_tokens(trained=int(attn.sum()))
            lp = self._sampled_token_logps(self.model, ids, attn, mask)
            full = torch.zeros(mask.shape, dtype=lp.dtype, device=lp.device).masked_scatter(mask, lp)
            behaviour = [s.meta.get("logprobs") if s.meta else None for _, _, _, s in rows]
            if all(b is not None for b in behaviour):  # the engine's own log-probs of what it sampled
                old = torch.zeros_like(full).masked_scatter(
                    mask, torch.tensor([float(x) for b in behaviour for x in b], device=lp.device)
                )
            else:  # one update per rollout, sampled by these weights: the ratio is exactly 1
                old = full.detach()
            ref = None
            if cfg.kl_beta > 0:
                ref = torch.zeros_like(full).masked_scatter(
                    mask, self._reference_token_logps(ids, attn, mask)
                )
            out = grpo_loss(
                full,
                old,
                adv[[k for _, _, k, _ in rows]].to(full.device),
                mask,
                clip_low=cfg.clip_eps_low,
                clip_high=cfg.clip_eps_high,
                ref_logps=ref,
                kl_beta=cfg.kl_beta,
                token_norm=cfg.token_norm,
                denominator=denominator,
            )
            loss = out["loss"]
            stats.update(kl=out["kl"].item(), clip_frac=out["clip_frac"].item(), pg_loss=out["pg"].item())
        else:  # every group had equal rewards and there is no KL: no gradient, a zero attached to the graph
            # (a trainable parameter's: the output layer may be frozen, e.g. tied to frozen embeddings)
            loss = next(p for p in self.model.parameters() if p.requires_grad).sum() * 0.0
            stats.update(kl=0.0, clip_frac=0.0, pg_loss=0.0)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite GRPO loss {loss.item()} at global step {self.global_step}; record ids: "
                f"{[r.id for r in records]}"
            )
        st.update_t0 = time.perf_counter()
        n = len(flat)
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, batch_size=n, prog_bar=True)
        for key, value in stats.items():
            self.log(f"train/{key}", float(value), on_step=True, on_epoch=False, batch_size=n)
        st.last_stats = stats
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        st = self._grpo
        if st is not None and st.update_t0 is not None:
            import time

            # the sampled tokens' forward, the backward and (at a step's last micro-batch) the optimizer step
            self.log(
                "train/update_s",
                time.perf_counter() - st.update_t0,
                on_step=True,
                on_epoch=False,
                batch_size=1,
            )
            st.update_t0 = None

    # ------------------------------------------------------------------ steps
    def configure_model(self) -> None:
        """Under a sharding strategy with ``shard_module`` (``trainer=fsdp``, :mod:`cj2.distributed`): shard
        the model (once; Lightning calls this hook at every fit/validate)."""
        shard = getattr(self._trainer.strategy, "shard_module", None) if self._trainer is not None else None
        if shard is not None:
            shard(self.model)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_nonfinite_policy(
                self.on_nonfinite, int(self.trainer.accumulate_grad_batches), int(self.trainer.world_size)
            )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int):
        if self.objective.on_policy:
            return self._grpo_step(batch)
        self._count_tokens(trained=_forward_tokens(batch))
        out = self.compute_loss(batch, exact_step_norm=True)
        loss = out["loss"]
        if not torch.isfinite(loss):
            ids = list(batch.get("ids", []))
            msg = (
                f"non-finite loss {loss.item()} at global step {self.global_step} (batch {batch_idx}); "
                f"record ids: {ids}"
            )
            if self.on_nonfinite == "stop":
                raise NonFiniteLossError(
                    msg + ". Set on_nonfinite=skip (accumulate_grad_batches=1, one process) to skip such "
                    "batches and count them."
                )
            self.skipped_nonfinite += 1
            log.warning("%s; skipped (%d so far)", msg, self.skipped_nonfinite)
            self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
            return None  # Lightning skips the optimizer contribution of this batch
        bs = batch["input_ids"].shape[0]
        self._log_terms("train", out, bs)
        if self._trainer is not None and self.trainer.optimizers:
            # the learning rate this step's update uses (after warm-up and schedule), not the configured peak
            self.log(
                "train/lr",
                float(self.trainer.optimizers[0].param_groups[0]["lr"]),
                on_step=True,
                on_epoch=False,
                batch_size=bs,
            )
        # Undo Lightning's division by accumulate_grad_batches and DDP's mean over ranks: the objective has
        # already divided by the totals of the whole optimizer step.
        scale = (
            self.trainer.accumulate_grad_batches * self.trainer.world_size if "step_totals" in batch else 1
        )
        return loss * scale

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self.compute_loss(batch, exact_step_norm=False)
        denominators = self.objective.denominators(batch)
        for metric in self._epoch_losses().values():
            metric.update(out, denominators)
        self._log_terms("val", out, batch["input_ids"].shape[0])

    def _epoch_losses(self) -> dict[str, EpochLoss]:
        """``loss`` and its terms over the validation epoch (:class:`EpochLoss`), made on first use. Kept
        outside the module tree: they hold no weights and no checkpointed state."""
        metrics = self.__dict__.get("_epoch_loss_metrics")
        if metrics is None:
            metrics = {key: EpochLoss(self.objective, key) for key in ("loss", *self.objective.loss_terms)}
            object.__setattr__(self, "_epoch_loss_metrics", metrics)
        for metric in metrics.values():
            if metric.device != self.device:
                metric.to(self.device)
        return metrics

    def _log_terms(self, split: str, out: Mapping[str, torch.Tensor], batch_size: int) -> None:
        on_step = split == "train"
        if split == "val":
            # whole-epoch values: Lightning computes (syncing the sums over ranks) and resets them per epoch
            for key, metric in self._epoch_losses().items():
                self.log(
                    f"val/{key}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    prog_bar=key == "loss",
                    metric_attribute=f"_epoch_loss_metrics.{key}",
                )
        else:
            for key, value in out.items():
                if key.startswith("loss") and torch.is_tensor(value) and value.dim() == 0:
                    self.log(
                        f"{split}/{key}",
                        value.detach().float(),
                        on_step=on_step,
                        on_epoch=not on_step,
                        batch_size=batch_size,
                        sync_dist=not on_step,
                        prog_bar=key == "loss",
                    )
        correct = out.get("verdict_correct")
        if correct is None:
            return
        # rows whose only candidate is the gold one have nothing to get right: not counted at all
        scored = out.get("verdict_scored", torch.ones_like(correct))
        n_scored = int(scored.sum())
        if n_scored:
            # teacher-forced on the gold critique: a diagnostic, circular by construction, never the headline
            self.log(
                f"{split}/verdict_acc_tf",
                correct[scored].float().mean(),
                on_step=on_step,
                on_epoch=not on_step,
                batch_size=n_scored,
                sync_dist=not on_step,
            )
            self.log(
                f"{split}/verdict_margin_tf",
                out["verdict_margin"][scored].float().mean(),
                on_step=on_step,
                on_epoch=not on_step,
                batch_size=n_scored,
                sync_dist=not on_step,
            )

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("JudgeModule needs an optimizer factory (conf/optimizer)")
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt, total_steps=self._total_steps())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def _total_steps(self) -> int:
        if self.trainer is not None and self.trainer.max_steps and self.trainer.max_steps > 0:
            return int(self.trainer.max_steps)
        return int(self.trainer.estimated_stepping_batches)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["cj2"] = {
            "skipped_nonfinite": self.skipped_nonfinite,
            "objective": self.objective.cfg.name,
            "processed_tokens": dict(self.processed_tokens),
            "counted_generation": sorted(self.counted_generation),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = (checkpoint.get("hyper_parameters") or {}).get("run_config")
        current = self.hparams.get("run_config")
        if saved is not None and current is not None:
            check_resume_compatible(saved, current)
        self.skipped_nonfinite = int(checkpoint.get("cj2", {}).get("skipped_nonfinite", 0))
        saved_tokens = checkpoint.get("cj2", {}).get("processed_tokens") or {}
        self.processed_tokens = {k: int(saved_tokens.get(k, 0)) for k in ("generated", "trained")}
        self.counted_generation = set(checkpoint.get("cj2", {}).get("counted_generation") or [])


class _GRPOState:
    """What loss=grpo keeps between steps (nothing of it decides the weights: not checkpointed)."""

    def __init__(self) -> None:
        self.rollout: Any = None
        self.spurious_check: Callable[[str, Any], Any] | None = None
        self.spurious_loaded = False
        self.update_t0: float | None = None
        self.last_stats: dict[str, float] = {}


def _is_peft(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "get_base_model")


def _sampled_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    temperature: float,
) -> torch.Tensor:
    """``log softmax(hidden @ weight.T + bias) / temperature)[targets]`` per row, in float32."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float() / temperature
    return logits.log_softmax(-1).gather(1, targets.long().unsqueeze(1)).squeeze(1)


def _forward_tokens(batch: Mapping[str, Any]) -> int:
    """Tokens a training forward processes: the non-padding ones (a packed batch has no padding)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class TokenBudget(L.Callback):
    """Stop training once the run has processed ``max_tokens`` tokens (generated by its rollouts + run
    through the training forward, :attr:`JudgeModule.processed_tokens`): the equal budget of the on-policy
    comparison. ``summary()`` puts the counts into ``metrics.json``."""

    def __init__(self, max_tokens: int | None = None) -> None:
        self.max_tokens = int(max_tokens) if max_tokens else None
        self._module: JudgeModule | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._module = pl_module
        if self.max_tokens is None:
            return
        used = sum(pl_module.processed_tokens.values())
        if used >= self.max_tokens and (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            trainer.should_stop = True

    def on_fit_start(self, trainer, pl_module) -> None:
        self._module = pl_module

    def summary(self) -> dict[str, Any]:
        if self._module is None:
            return {}
        t = self._module.processed_tokens
        out = {
            "tokens_generated": t["generated"],
            "tokens_trained": t["trained"],
            "tokens_processed": t["generated"] + t["trained"],
        }
        if self.max_tokens is not None:
            out["token_budget"] = self.max_tokens
        return out


# What decides the trained weights: a resumed run must agree with its checkpoint on these config keys (and
# everything under them), or it would continue a different run. Anything else (evaluations, loggers,
# stop_after_steps, checkpoint frequency, export, output folders) may change between the two.
RESUME_MUST_MATCH = (
    "model",
    "loss",
    "data",
    "optimizer",
    "scheduler",
    "seed",
    "on_nonfinite",
    "trainer.max_steps",
    "trainer.accumulate_grad_batches",
    "trainer.precision",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
    "trainer.strategy",
    "trainer.devices",
    "trainer.num_nodes",
)
# ... except these, which change how, not what, is computed.
RESUME_MAY_DIFFER = ("data.num_workers", "model.attn_implementation", "model.gradient_checkpointing")


class IncompatibleResumeError(ValueError):
    pass


def _flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(cfg, Mapping):
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): cfg}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every flattened config key whose value differs: ``{"loss.gamma": (10.0, 5.0), ...}`` (saved, current;
    a missing key reads ``<absent>``)."""
    a, b = _flat(saved), _flat(current)
    absent = "<absent>"
    return {
        k: (a.get(k, absent), b.get(k, absent))
        for k in sorted(set(a) | set(b))
        if a.get(k, absent) != b.get(k, absent)
    }


def check_resume_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """Raise :class:`IncompatibleResumeError` naming every difference between the checkpoint's run config
    and this run's that changes what is trained (:data:`RESUME_MUST_MATCH`); log the others. Returns all
    differences."""

    def under(key: str, prefixes: Sequence[str]) -> bool:
        return any(key == p or key.startswith(p + ".") for p in prefixes)

    diffs = config_differences(saved, current)
    bad = {k: v for k, v in diffs.items() if under(k, RESUME_MUST_MATCH) and not under(k, RESUME_MAY_DIFFER)}
    if bad:
        lines = "\n".join(f"  {k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in bad.items())
        raise IncompatibleResumeError(
            "ckpt_path: the checkpoint was trained with a different config; resuming would continue another "
            f"run:\n{lines}\nStart a new run (another run_name), or resume with the checkpoint's values."
        )
    if diffs:
        log.info(
            "resuming with config changes that do not change what is trained: %s",
            ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diffs.items()),
        )
    return diffs


def _plain_loss(loss: Any) -> dict[str, Any]:
    """The loss config as a plain dict (a dataclass or a mapping), so a checkpoint loads with weights_only."""
    import dataclasses

    if dataclasses.is_dataclass(loss):
        return dataclasses.asdict(loss)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(loss).items()}


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_ratio: float = 0.03,
    warmup_steps: int | None = None,
    min_lr_ratio: float = 0.0,
):
    """Linear warm-up then cosine decay to ``min_lr_ratio`` of the peak (the paper reports no schedule)."""
    warm = int(warmup_steps if warmup_steps is not None else round(warmup_ratio * total_steps))
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def constant_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup_steps if warmup_steps and s < warmup_steps else 1.0
    )


__all__: Sequence[str] = (
    "JudgeModule",
    "IncompatibleResumeError",
    "check_resume_compatible",
    "config_differences",
    "warmup_cosine",
    "constant_schedule",
    "decoder_of",
    "NonFiniteLossError",
    "check_nonfinite_policy",
    "EpochLoss",
    "TokenBudget",
)
