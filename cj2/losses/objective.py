"""The training objectives ``sft``, ``margin``, ``dpo``, ``temperature`` and ``dpo_seq``.

arXiv 2507.09104, Eq. 12 / Table 1: SFT on every response token except the verdict token k, plus a mapping
function g of the verdict logits ``z`` (the logits at position k-1 that predict token k):

* ``sft``          ``CE_resp``                                        (Table 4 "Baseline")
* ``margin``       ``CE_resp\\k + w * mean_i mean_topk relu(gamma - (z_gt - z_neg))``  (the paper's method)
* ``dpo``          ``CE_resp\\k + w * mean_i -log sigmoid(beta (z_gt - z_other))``     (Table 4 "DPO")
* ``temperature``  ``CE_resp\\k + w * mean_i CE(z / tau, gt)``                         (Table 4 "Temperature")
* ``dpo_seq``      ``w * mean_pairs -log sigmoid(beta * reward margin)``: sequence DPO with a frozen
  reference, the usual preference baseline (not in the paper).
* ``grpo``         on-policy GRPO (not in the paper): :class:`cj2.module.JudgeModule` samples, rewards and
  scores the policy's own judgments (:mod:`cj2.losses.grpo`); on gold batches (validation) it is ``sft``.

``answer_token_ce=True`` keeps the verdict token in the CE (``CE_resp + w * g``); the default drops it,
the literal Table 1 reading where g replaces that token's CE.

Normalisation. Each term is a sum over its rows divided by a denominator: the CE by the number of trained
tokens (``sft_normalization=token``) or of sequences (``sequence_sum``, the literal ``1/(NM)`` of Eq. 12,
a per-sequence sum); the verdict term by the number of verdict rows; ``dpo_seq`` by the number of pairs.
By default the denominators are this batch's counts (:meth:`Objective.denominators`). Under gradient
accumulation the caller sums the counts over the window and passes the totals, so the micro-batches' losses
add up to exactly the loss of the whole window (and the same holds for the gradients). Under data
parallelism it sums them over ranks too and multiplies the loss by the world size, since DDP averages.

The objective receives the final hidden states and the output-layer weight, not logits: it projects only
the response positions (through :func:`cj2.losses.ce.weighted_nll`, whose ``impl`` may avoid the full
logits) and a small ``[N_verdict, H] @ [H, V]`` for the verdict rows.

Packed batches (:mod:`cj2.data.packing`) hold several samples per row. They carry ``verdict_row [N]`` and
give ``verdict_index``, ``verdict_target`` and ``verdict_candidates`` per verdict (``[N]``, ``[N, C]``)
instead of per row, and ``n_sequences`` (the ``seq`` count); everything else reads the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cj2.losses.ce import CE_BACKENDS, token_logps, weighted_nll
from cj2.losses.chunked import DEFAULT_CHUNK_SIZE
from cj2.losses.dpo import dpo_logits, sequence_dpo_loss
from cj2.losses.grpo import ADVANTAGE_NORMS, TOKEN_NORMS
from cj2.losses.verdict import (
    NEGATIVE_REDUCES,
    dpo_verdict_loss,
    hardest_other,
    margin_loss,
    temperature_loss,
    verdict_diagnostics,
    verdict_logits,
)

IGNORE_INDEX = -100
SFT_NORMALIZATIONS = ("token", "sequence_sum")
BATCH_KEYS = ("input_ids", "labels", "verdict_index", "verdict_target", "verdict_candidates")


@dataclass
class LossConfig:
    """The ``loss`` config group. Defaults are arXiv 2507.09104's (Sec. 5.1) and cj2's choices (README)."""

    name: str = "margin"  # sft | margin | dpo | temperature | dpo_seq | grpo
    weight: float = 1.0  # w: the weight of the verdict term g (dpo_seq: of the DPO term); the paper uses 1
    k: int = 10  # margin: number of negatives, the top-k non-gold logits over the vocabulary
    gamma: float = 10.0  # margin: gamma, in logit units
    reduce: str = "mean"  # margin: mean | sum over the k negatives
    beta: float = 0.1  # dpo (verdict token, no reference)
    tau: float = 5.0  # temperature
    answer_token_ce: bool = False  # keep the verdict token's CE next to g (False: g replaces it, Table 1)
    sft_normalization: str = "token"  # token | sequence_sum
    impl: str = "chunked"  # CE implementation: naive | chunked | cce | liger (cj2.losses.ce.CE_BACKENDS)
    chunk_size: int = DEFAULT_CHUNK_SIZE  # rows per chunk for impl=chunked
    dpo_seq_beta: float = 0.1  # dpo_seq: beta of sequence DPO
    # grpo (on-policy, cj2.module; cj2.losses.grpo): G judgments per prompt from the current policy
    group_size: int = 4  # G samples per prompt; both orders of a question share one group (2G)
    rollout_max_new_tokens: int = 96
    rollout_temperature: float = 1.0  # the sampled tokens' log-probs use the same temperature
    rollout_top_p: float = 1.0
    rollout_top_k: int = 0
    rollout_batch_size: int = 64  # sequences per generate call (hf backend)
    rollout_backend: str = "hf"  # hf (in-process HFSampler) | vllm (engine reloaded every sync_every steps)
    sync_every: int = 1  # vllm: load the policy's weights into the engine every this many optimizer steps
    vllm_engine_kwargs: dict = dataclasses.field(default_factory=dict)  # vllm: LLM(**kwargs)
    clip_eps_low: float = 0.2  # ratio clipped to [1 - clip_eps_low, 1 + clip_eps_high]
    clip_eps_high: float = 0.2
    kl_beta: float = 0.0  # k3 KL penalty to the initial weights (0: no reference model is kept)
    consistency_weight: float = 1.0  # J1: paid when both orders of a pair are judged right
    spurious_penalty: float = 0.0  # lambda: subtracted for a right verdict with wrong reasons
    spurious_check: str = "cj2.evaluation.faithfulness:is_spurious"  # (text, record) -> bool | None
    advantage_norm: str = "std"  # std (GRPO) | none (Dr. GRPO: centred only)
    token_norm: str = "token"  # token (mean over all sampled tokens) | sequence (per sequence, then mean)

    def __post_init__(self) -> None:
        _choice("name", self.name, OBJECTIVES)
        _choice("reduce", self.reduce, NEGATIVE_REDUCES)
        _choice("rollout_backend", self.rollout_backend, ROLLOUT_BACKENDS)
        _choice("advantage_norm", self.advantage_norm, ADVANTAGE_NORMS)
        _choice("token_norm", self.token_norm, TOKEN_NORMS)
        _choice("sft_normalization", self.sft_normalization, SFT_NORMALIZATIONS)
        _choice("impl", self.impl, tuple(sorted(CE_BACKENDS)))
        for field, value, ok, rule in (
            ("k", self.k, isinstance(self.k, int) and self.k >= 1, "an integer >= 1"),
            (
                "chunk_size",
                self.chunk_size,
                isinstance(self.chunk_size, int) and self.chunk_size >= 1,
                "an integer >= 1",
            ),
            ("tau", self.tau, self.tau > 0, "> 0"),
            ("beta", self.beta, self.beta > 0, "> 0"),
            ("dpo_seq_beta", self.dpo_seq_beta, self.dpo_seq_beta > 0, "> 0"),
            ("gamma", self.gamma, self.gamma >= 0, ">= 0"),
            ("weight", self.weight, self.weight >= 0, ">= 0"),
            (
                "group_size",
                self.group_size,
                isinstance(self.group_size, int) and self.group_size >= 2,
                "an integer >= 2",
            ),
            (
                "rollout_max_new_tokens",
                self.rollout_max_new_tokens,
                isinstance(self.rollout_max_new_tokens, int) and self.rollout_max_new_tokens >= 1,
                "an integer >= 1",
            ),
            (
                "rollout_temperature",
                self.rollout_temperature,
                self.rollout_temperature > 0,
                "> 0 (GRPO samples)",
            ),
            (
                "rollout_batch_size",
                self.rollout_batch_size,
                isinstance(self.rollout_batch_size, int) and self.rollout_batch_size >= 1,
                "an integer >= 1",
            ),
            (
                "sync_every",
                self.sync_every,
                isinstance(self.sync_every, int) and self.sync_every >= 1,
                "an integer >= 1",
            ),
            ("clip_eps_low", self.clip_eps_low, 0 <= self.clip_eps_low < 1, "in [0, 1)"),
            ("clip_eps_high", self.clip_eps_high, self.clip_eps_high >= 0, ">= 0"),
            ("kl_beta", self.kl_beta, self.kl_beta >= 0, ">= 0"),
            ("consistency_weight", self.consistency_weight, self.consistency_weight >= 0, ">= 0"),
            ("spurious_penalty", self.spurious_penalty, self.spurious_penalty >= 0, ">= 0"),
        ):
            if not ok:
                raise ValueError(f"loss.{field}={value!r}: must be {rule}")


def _choice(field: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"loss.{field}={value!r} is not valid; choose one of: {', '.join(valid)}")


# A verdict term maps (z [N, V] verdict logits, gold ids [N], candidate ids [N, C], config) to the SUM over
# the N rows; the objective divides by the verdict denominator. Adding an objective = one entry here.
VerdictTerm = Callable[[Tensor, Tensor, Tensor, LossConfig], Tensor]


def _margin_term(z: Tensor, target: Tensor, candidates: Tensor, cfg: LossConfig) -> Tensor:
    return margin_loss(z, target, k=cfg.k, gamma=cfg.gamma, reduce=cfg.reduce, reduction="none")


def _dpo_term(z: Tensor, target: Tensor, candidates: Tensor, cfg: LossConfig) -> Tensor:
    # "DPO loss on only the candidate answer" (Sec. 5.1): the negative is the best-scoring wrong candidate.
    return dpo_verdict_loss(z, target, hardest_other(z, target, candidates), beta=cfg.beta, reduction="none")


def _temperature_term(z: Tensor, target: Tensor, candidates: Tensor, cfg: LossConfig) -> Tensor:
    return temperature_loss(z, target, tau=cfg.tau, reduction="none")


VERDICT_TERMS: dict[str, VerdictTerm] = {
    "margin": _margin_term,
    "dpo": _dpo_term,
    "temperature": _temperature_term,
}
# grpo: on-policy (cj2.module samples and rewards judgments); on gold batches (validation) it is sft's CE.
OBJECTIVES: tuple[str, ...] = ("sft", *VERDICT_TERMS, "dpo_seq", "grpo")
ROLLOUT_BACKENDS: tuple[str, ...] = ("hf", "vllm")


def build_objective(cfg: LossConfig | Mapping[str, Any]) -> Objective:
    """An :class:`Objective` from a :class:`LossConfig` or a mapping (a Hydra ``loss`` node).

    Unknown keys and invalid choices raise ``ValueError`` naming the field and the valid values. Keys that
    start with ``_`` (Hydra's ``_target_`` and friends) are not loss options and are ignored.
    """
    if isinstance(cfg, LossConfig):
        return Objective(cfg)
    if not isinstance(cfg, Mapping):
        raise TypeError(f"loss config must be a LossConfig or a mapping, got {type(cfg).__name__}")
    fields = [f.name for f in dataclasses.fields(LossConfig)]
    options = {str(key): value for key, value in cfg.items() if not str(key).startswith("_")}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown loss option(s) {', '.join(unknown)}; valid options: {', '.join(fields)}")
    return Objective(LossConfig(**options))


def _row_name(batch: Mapping[str, Any], row: int) -> str:
    ids = batch.get("ids")
    if ids is not None and row < len(ids):
        return f"record {ids[row]!r} (batch row {row})"
    return f"batch row {row}"


def _verdict_name(batch: Mapping[str, Any], entry: int, row: int) -> str:
    """Name of verdict entry ``entry`` (in batch row ``row``): packed rows hold several records."""
    names = batch.get("verdict_ids")
    if "verdict_row" in batch and names is not None and entry < len(names):
        return f"record {names[entry]!r} (packed row {row})"
    return _row_name(batch, row)


class Objective:
    """One training objective; call it on a batch to get ``{"loss": ..., components..., diagnostics...}``."""

    def __init__(self, cfg: LossConfig) -> None:
        self.cfg = cfg
        self.uses_verdict: bool = cfg.name in VERDICT_TERMS
        self.needs_reference: bool = cfg.name == "dpo_seq"
        # grpo trains on the policy's own samples (JudgeModule draws, rewards and scores them); the gold
        # batches of validation get sft's CE, a teacher-forced diagnostic
        self.on_policy: bool = cfg.name == "grpo"
        # Literal Table 1: g replaces the verdict token's CE unless answer_token_ce asks to keep both.
        self._drop_verdict_ce = self.uses_verdict and not cfg.answer_token_ce

    def __repr__(self) -> str:
        return f"Objective({self.cfg})"

    # ----------------------------------------------------------------------------------------- batch checks
    @staticmethod
    def _tensor(batch: Mapping[str, Any], key: str) -> Tensor:
        if key not in batch:
            raise KeyError(f"batch has no {key!r}; the collator must provide {', '.join(BATCH_KEYS)}")
        return batch[key]

    def _verdict_positions(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Rows with a verdict and their verdict_index k, after checking 1 <= k < T (or k == -1 for none)."""
        labels = self._tensor(batch, "labels")
        index = self._tensor(batch, "verdict_index")
        if "verdict_row" in batch:
            return self._packed_verdict_positions(batch, labels, index)
        if index.shape != (labels.shape[0],):
            raise ValueError(f"verdict_index must be [B]={labels.shape[0]}, got {tuple(index.shape)}")
        has = index >= 0
        # k = 0 has no position before it to predict it.
        bad = (index < -1) | (has & ((index < 1) | (index >= labels.shape[1])))
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{_row_name(batch, row)}: verdict_index={int(index[row])} is outside "
                f"[1, {labels.shape[1] - 1}] (use -1 for a row without a verdict)"
            )
        rows = has.nonzero().squeeze(1)
        return rows, index[rows]

    def _packed_verdict_positions(
        self, batch: Mapping[str, Any], labels: Tensor, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Packed batches (:mod:`cj2.data.packing`): one entry per verdict, ``verdict_row [N]`` says its row.

        A packed row holds several samples, so ``verdict_index``, ``verdict_target`` and
        ``verdict_candidates`` are ``[N]`` / ``[N, C]`` over the verdicts, not ``[B]`` over the rows.
        """
        row = batch["verdict_row"]
        if row.dim() != 1 or index.shape != row.shape:
            raise ValueError(
                f"a packed batch needs verdict_row [N] and verdict_index [N] of one shape, got "
                f"{tuple(row.shape)} and {tuple(index.shape)}"
            )
        bad = (row < 0) | (row >= labels.shape[0]) | (index < 1) | (index >= labels.shape[1])
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{_verdict_name(batch, i, int(row[i]))}: verdict_row={int(row[i])}, "
                f"verdict_index={int(index[i])} is outside the [{labels.shape[0]}, "
                f"{labels.shape[1]}] batch (k must be in [1, {labels.shape[1] - 1}])"
            )
        return row, index

    def _verdict_fields(self, batch: Mapping[str, Any], rows: Tensor) -> tuple[Tensor, Tensor]:
        """``(target [N], candidates [N, C])`` of the verdict entries found by :meth:`_verdict_positions`."""
        all_target = self._tensor(batch, "verdict_target")
        all_candidates = self._tensor(batch, "verdict_candidates")
        packed = "verdict_row" in batch
        n = rows.shape[0] if packed else self._tensor(batch, "labels").shape[0]
        if all_target.shape != (n,) or all_candidates.dim() != 2 or all_candidates.shape[0] != n:
            what = "N" if packed else "B"
            raise ValueError(
                f"verdict_target must be [{what}] and verdict_candidates [{what}, C] with "
                f"{what}={n}{' verdicts (packed batch)' if packed else ''}, got "
                f"{tuple(all_target.shape)} and {tuple(all_candidates.shape)}"
            )
        if packed:
            return all_target, all_candidates
        return all_target[rows], all_candidates[rows]

    def _check_verdict_rows(
        self,
        batch: Mapping[str, Any],
        rows: Tensor,
        k: Tensor,
        target: Tensor,
        candidates: Tensor,
        vocab: int,
    ) -> None:
        """Gold ids and candidates are in the vocabulary; for verdict objectives, distinct single tokens."""
        valid = candidates >= 0
        out_of_range = (target < 0) | (target >= vocab) | (valid & (candidates >= vocab)).any(dim=1)
        if bool(out_of_range.any()):
            i = int(out_of_range.nonzero()[0, 0])
            raise ValueError(
                f"{_verdict_name(batch, i, int(rows[i]))}: verdict_target={int(target[i])} or "
                f"candidates {candidates[i].tolist()} are not token ids in [0, {vocab})"
            )
        if not self.uses_verdict:
            return
        input_ids = self._tensor(batch, "input_ids")
        size = candidates.shape[1]
        same = candidates.unsqueeze(2) == candidates.unsqueeze(1)
        pairs = (
            valid.unsqueeze(2)
            & valid.unsqueeze(1)
            & ~torch.eye(size, dtype=torch.bool, device=candidates.device)
        )
        problems = {
            "its candidate ids repeat (labels that share a token cannot be told apart)": (same & pairs)
            .flatten(1)
            .any(dim=1),
            "it has fewer than two candidates": valid.sum(dim=1) < 2,
            "the gold verdict token is not among its candidates": ~(
                (candidates == target.unsqueeze(1)) & valid
            ).any(dim=1),
            "the token at verdict_index is not the gold verdict token": input_ids[rows, k] != target,
        }
        flags = torch.stack(list(problems.values()))
        if bool(flags.any()):
            i = int(flags.any(dim=0).nonzero()[0, 0])
            reasons = "; ".join(reason for reason, flag in problems.items() if bool(flag[i]))
            raise ValueError(
                f"{_verdict_name(batch, i, int(rows[i]))}: loss.name={self.cfg.name} needs verdict labels "
                f"that are distinct single tokens, but {reasons} (verdict_index={int(k[i])}, "
                f"token={int(input_ids[rows[i], k[i]])}, verdict_target={int(target[i])}, "
                f"candidates={candidates[i].tolist()}). Formats whose labels share a first token "
                f"(arena, score) train with loss.name=sft."
            )

    def _labelled(self, batch: Mapping[str, Any], rows: Tensor, k: Tensor) -> Tensor:
        """``[B, T-1]``: positions t whose next token t+1 has a label (labels[t+1] != -100), verdict token
        included; for ``dpo_seq`` only the chosen rows (the first half), whose CE is logged.

        When g replaces the verdict token's CE, the verdict token must be one of them: the denominators
        (:meth:`denominators_from_counts`) count it among the response tokens and take it back out.
        """
        labels = self._tensor(batch, "labels")
        mask = labels[:, 1:] != IGNORE_INDEX
        if self.needs_reference:
            # dpo_seq trains no CE; the logged CE is the chosen responses' (first half of the rows).
            mask[labels.shape[0] // 2 :] = False
        elif self._drop_verdict_ce and rows.numel():
            unlabelled = ~mask[rows, k - 1]
            if bool(unlabelled.any()):
                i = int(unlabelled.nonzero()[0, 0])
                raise ValueError(
                    f"{_verdict_name(batch, i, int(rows[i]))}: the verdict token at verdict_index="
                    f"{int(k[i])} has no label (-100); loss.name={self.cfg.name} replaces its CE by the "
                    f"verdict term, so it must be a labelled response token"
                )
        return mask

    def _ce_mask(self, batch: Mapping[str, Any], rows: Tensor, k: Tensor) -> Tensor:
        """``[B, T-1]``: positions t whose next token t+1 is trained by the CE."""
        mask = self._labelled(batch, rows, k)
        if self._drop_verdict_ce:
            mask[rows, k - 1] = False
        return mask

    @staticmethod
    def _row_weights(batch: Mapping[str, Any], dtype: torch.dtype, device: torch.device) -> Tensor:
        """Per-row sample weights (``batch["weights"]``, e.g. 1/kept per prompt after rejection sampling).

        Every term becomes a weighted sum over rows and the denominators count weighted tokens and rows
        (the data module's step totals are weighted alike), so uniform weights give the unweighted loss.
        """
        n = batch["labels"].shape[0]
        w = batch.get("weights")
        if w is None:
            return torch.ones(n, dtype=dtype, device=device)
        w = torch.as_tensor(w, dtype=dtype, device=device)
        if "verdict_row" in batch:  # packed rows hold several samples
            if bool((w != 1).any()):
                raise ValueError(
                    "sample weights other than 1 are not supported with packed batches "
                    "(data.packing); use length-grouped batches or uniform weights"
                )
            return torch.ones(n, dtype=dtype, device=device)
        return w.reshape(n)

    def counts(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """This batch's raw counts, the quantities the data module sums over an optimizer step into
        ``step_totals`` (:mod:`cj2.data.sampler`):

        * ``tokens``: (weighted) response tokens with a label, the verdict token included (``dpo_seq``: the
          chosen responses' only, as the sampler counts them);
        * ``rows``: (weighted) samples (``dpo_seq``: pairs; packed batches: ``n_sequences``);
        * ``verdict_rows``: (weighted) samples with a verdict.

        :meth:`denominators_from_counts` turns them, or their sums over a step, into the denominators.
        """
        rows, k = self._verdict_positions(batch)
        labels = self._tensor(batch, "labels")
        labelled = self._labelled(batch, rows, k)
        if "n_sequences" in batch:  # a packed row holds several sequences: the collator says how many
            n = torch.tensor(int(batch["n_sequences"]), device=labels.device)
            return {
                "tokens": labelled.sum(),
                "rows": n / 2 if self.needs_reference else n,
                "verdict_rows": torch.tensor(rows.numel(), device=labels.device),
            }
        w = self._row_weights(batch, torch.float64, labels.device)
        return {
            "tokens": (labelled * w.unsqueeze(1)).sum(),
            "rows": w.sum() / 2 if self.needs_reference else w.sum(),
            "verdict_rows": w[rows].sum(),
        }

    def denominators_from_counts(self, counts: Mapping[str, Any]) -> dict[str, Any]:
        """The denominators ``ce``, ``seq``, ``verdict`` from raw counts (``tokens``, ``rows``,
        ``verdict_rows``): this batch's :meth:`counts`, or the totals of a whole optimizer step over every
        rank (the data module's ``step_totals``, which the Lightning module passes here). The one rule for
        both, so a step's denominators are exactly the sum of its micro-batches'.

        ``ce`` is the CE's token count: the verdict token is taken out where g replaces its CE (every verdict
        row has its verdict token among the labelled tokens). ``dpo_seq`` has no verdict term, and its
        ``seq`` counts rows, twice the pairs.
        """
        tokens, rows, verdict_rows = counts["tokens"], counts["rows"], counts["verdict_rows"]
        if self.needs_reference:
            return {"ce": tokens, "seq": 2 * rows, "verdict": 0}
        return {
            "ce": tokens - verdict_rows if self._drop_verdict_ce else tokens,
            "seq": rows,
            "verdict": verdict_rows,
        }

    def denominators(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """This batch's denominators: ``ce`` trained CE tokens, ``seq`` rows, ``verdict`` rows with a verdict
        (:meth:`denominators_from_counts` of :meth:`counts`).

        Sum them over a gradient-accumulation window (and over data-parallel ranks) and pass the totals to
        :meth:`__call__` to normalise by the whole window. For ``dpo_seq``, ``ce`` counts the chosen
        responses' tokens (the logged CE) and the DPO term is divided by ``seq / 2`` pairs.
        """
        return self.denominators_from_counts(self.counts(batch))

    # ------------------------------------------------------------------------------------------- the loss
    @property
    def loss_terms(self) -> dict[str, str]:
        """The loss's terms, each with the key of the denominator it divides its sum by: ``loss_ce`` (``ce``,
        or ``seq`` for ``sft_normalization=sequence_sum``; ``dpo_seq``: ``ce``), ``loss_verdict``
        (``verdict``) for the verdict objectives, ``loss_dpo_seq`` (``seq``) for ``dpo_seq``.

        Each term's sum over several batches divided by its denominator summed over them is the term of
        those batches as one (the validation epoch's losses, :class:`cj2.module.JudgeModule`).
        """
        if self.needs_reference:
            return {"loss_ce": "ce", "loss_dpo_seq": "seq"}
        terms = {"loss_ce": "ce" if self.cfg.sft_normalization == "token" else "seq"}
        if self.uses_verdict:
            terms["loss_verdict"] = "verdict"
        return terms

    def total(self, terms: Mapping[str, Tensor]) -> Tensor:
        """``loss`` from its terms: ``loss_ce + w * loss_verdict`` (verdict objectives), ``loss_ce``
        (``sft``), ``w * loss_dpo_seq`` (``dpo_seq``, whose ``loss_ce`` is logged only)."""
        if self.needs_reference:
            return self.cfg.weight * terms["loss_dpo_seq"]
        if not self.uses_verdict:
            return terms["loss_ce"]
        return terms["loss_ce"] + self.cfg.weight * terms["loss_verdict"]

    def response_logps(
        self, hidden: Tensor, lm_weight: Tensor, batch: Mapping[str, Any], *, lm_bias: Tensor | None = None
    ) -> Tensor:
        """``log pi(response | prompt)`` per row, ``[B]``: the sum over every token with a label.

        The caller runs the frozen reference through this (under ``torch.no_grad``) to get ``ref_logps``,
        so policy and reference sum over exactly the same tokens.
        """
        token_lp, row_of = self._response_token_logps(hidden, lm_weight, batch, lm_bias)
        return torch.zeros(hidden.shape[0], dtype=token_lp.dtype, device=token_lp.device).index_add(
            0, row_of, token_lp
        )

    def _response_token_logps(
        self, hidden: Tensor, lm_weight: Tensor, batch: Mapping[str, Any], lm_bias: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if "verdict_row" in batch:
            raise ValueError(
                "sequence log-probs (loss.name=dpo_seq) sum one sequence per row, but this batch is "
                "packed (several sequences per row); train dpo_seq with data.packing=false"
            )
        labels = self._tensor(batch, "labels")
        mask = labels[:, 1:] != IGNORE_INDEX
        row_of = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(mask)[mask]
        return token_logps(hidden[:, :-1][mask], lm_weight, labels[:, 1:][mask], lm_bias), row_of

    def __call__(
        self,
        hidden: Tensor,
        lm_weight: Tensor,
        batch: Mapping[str, Any],
        *,
        lm_bias: Tensor | None = None,
        denominators: Mapping[str, Tensor | int | float] | None = None,
        ref_logps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The loss of ``batch`` from the final hidden states ``[B, T, H]`` and the output weight ``[V, H]``.

        Returns ``loss`` (with graph), its components ``loss_ce`` and ``loss_verdict`` (verdict objectives)
        or ``loss_dpo_seq`` (``dpo_seq``, where ``loss_ce`` is the chosen responses' CE, logged only), and
        detached diagnostics over the rows with a verdict, for every objective: ``verdict_correct [N]``,
        ``verdict_scored [N]`` (the rows with a competing candidate, over which accuracy is taken),
        ``verdict_margin [N]``, ``verdict_candidate_logits [N, C]``; ``dpo_seq`` adds ``reward_margin
        [B/2]``. ``denominators`` (summed over an accumulation window) replace this batch's counts.
        """
        cfg = self.cfg
        labels = self._tensor(batch, "labels")
        if hidden.dim() != 3 or hidden.shape[:2] != labels.shape:
            raise ValueError(
                f"hidden must be [B, T, H] with [B, T] = labels {tuple(labels.shape)}, "
                f"got {tuple(hidden.shape)}"
            )
        if lm_weight.dim() != 2 or lm_weight.shape[1] != hidden.shape[2]:
            raise ValueError(f"lm_weight must be [V, H={hidden.shape[2]}], got {tuple(lm_weight.shape)}")
        dens = self.denominators(batch) if denominators is None else denominators
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32

        def denominator(key: str) -> Tensor:
            if key not in dens:
                raise KeyError(
                    f"denominators has no {key!r} (got {sorted(dens)}); pass the summed output "
                    f"of Objective.denominators"
                )
            # clamp: an empty window (0 tokens) has a zero numerator too, so 0 / 1 = 0, not NaN.
            return torch.as_tensor(dens[key], dtype=dtype, device=hidden.device).clamp_min(1)

        # Verdict rows: one small projection, for the verdict term and for the diagnostics of every objective;
        # in fp32 outside autocast, so near-tied candidates do not become bf16 ties.
        rows, k = self._verdict_positions(batch)
        target, candidates = self._verdict_fields(batch, rows)
        self._check_verdict_rows(batch, rows, k, target, candidates, lm_weight.shape[0])
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.uses_verdict):
            z = verdict_logits(hidden[rows, k - 1], lm_weight, lm_bias)
        out: dict[str, Tensor] = dict(verdict_diagnostics(z, target, candidates))

        if self.needs_reference:
            return {**out, **self._dpo_seq(hidden, lm_weight, batch, lm_bias, ref_logps, denominator)}

        mask = self._ce_mask(batch, rows, k)
        ce_hidden = hidden[:, :-1][mask]
        row_w = self._row_weights(batch, dtype, hidden.device)
        token_w = row_w.unsqueeze(1).expand_as(mask)[mask]
        ce_sum = weighted_nll(
            ce_hidden,
            lm_weight,
            labels[:, 1:][mask],
            token_w,
            bias=lm_bias,
            impl=cfg.impl,
            chunk_size=cfg.chunk_size,
        )
        terms = self.loss_terms
        out["loss_ce"] = ce_sum / denominator(terms["loss_ce"])
        if not self.uses_verdict:
            out["loss"] = self.total(out)
            return out
        # z.sum() of an empty [0, V] is a 0 attached to the graph: a batch without verdicts still backprops.
        term_sum = (
            (VERDICT_TERMS[cfg.name](z, target, candidates, cfg) * row_w[rows].to(z.dtype)).sum()
            if rows.numel()
            else z.sum()
        )
        out["loss_verdict"] = term_sum / denominator(terms["loss_verdict"])
        out["loss"] = self.total(out)
        return out

    def _dpo_seq(
        self,
        hidden: Tensor,
        lm_weight: Tensor,
        batch: Mapping[str, Any],
        lm_bias: Tensor | None,
        ref_logps: Tensor | None,
        denominator: Callable[[str], Tensor],
    ) -> dict[str, Tensor]:
        """Sequence DPO; rows are ``[chosen_1..chosen_P, rejected_1..rejected_P]`` with shared prompts."""
        rows = hidden.shape[0]
        if ref_logps is None:
            raise ValueError(
                "loss.name=dpo_seq needs ref_logps [B]: the frozen reference's "
                "Objective.response_logps on the same batch"
            )
        if rows % 2:
            raise ValueError(
                f"loss.name=dpo_seq needs an even batch (chosen rows, then rejected), got {rows}"
            )
        if ref_logps.shape != (rows,):
            raise ValueError(f"ref_logps must be [B]={rows}, got {tuple(ref_logps.shape)}")
        token_lp, row_of = self._response_token_logps(hidden, lm_weight, batch, lm_bias)
        policy = torch.zeros(rows, dtype=token_lp.dtype, device=token_lp.device).index_add(
            0, row_of, token_lp
        )
        half = rows // 2
        ref = ref_logps.to(policy.dtype)
        pair_sum = sequence_dpo_loss(
            policy[:half], policy[half:], ref[:half], ref[half:], beta=self.cfg.dpo_seq_beta, reduction="sum"
        )
        # seq counts rows; pairs are half of them, so this is the mean over the window's pairs.
        terms = self.loss_terms
        loss_dpo_seq = pair_sum * 2 / denominator(terms["loss_dpo_seq"])
        chosen_nll = -token_lp[row_of < half].sum() / denominator(terms["loss_ce"])
        reward_margin = dpo_logits(
            policy[:half], policy[half:], ref[:half], ref[half:], self.cfg.dpo_seq_beta
        )
        return {
            "loss_ce": chosen_nll.detach(),
            "loss_dpo_seq": loss_dpo_seq,
            "loss": self.total({"loss_dpo_seq": loss_dpo_seq}),
            "reward_margin": reward_margin.detach(),
        }
