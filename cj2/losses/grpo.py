"""GRPO's pure parts: group-normalised advantages and the clipped policy-gradient loss with a KL penalty.

Group Relative Policy Optimization (Shao et al., 2024, DeepSeekMath, arXiv 2402.03300) samples G outputs per
prompt, scores them, and takes each output's advantage relative to its group:
``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)`` (``advantage_norm="std"``), or without the division
(``"none"``, Dr. GRPO, arXiv 2503.20783, which removes the bias the division puts on easy and hard groups).
A group whose rewards are all equal has advantage 0 for every member: it adds no gradient, and the share of
such groups is what a run logs as ``zero_variance_groups``.

The loss on the sampled tokens is PPO's clipped surrogate (Schulman et al., 2017) with the behaviour
policy's log-probs ``old_logps``::

    ratio_t = exp(logp_t - old_logp_t)
    pg_t    = -min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A)
    kl_t    = exp(ref_t - logp_t) - (ref_t - logp_t) - 1          (k3, Schulman's unbiased, >= 0 estimator)
    loss    = mean over tokens (pg_t + beta * kl_t)

k3 is the estimator of KL(pi || ref) that GRPO uses: unbiased on samples of pi, never negative, and lower in
variance than ``-log r``. ``token_norm="token"`` averages over every sampled token of the batch (DAPO,
arXiv 2503.14476: long judgments are not down-weighted); ``"sequence"`` averages each sequence's tokens, then
the sequences (the original GRPO). With one update per rollout ``old_logps`` is the detached ``logps``: the
ratio is 1, nothing is clipped, and the gradient is ``-A * grad logp``; the general form is kept (and tested)
for several updates per rollout.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

ADVANTAGE_NORMS = ("std", "none")
TOKEN_NORMS = ("token", "sequence")


def group_ids(keys: Sequence[Hashable]) -> Tensor:
    """``[N]`` integer group ids, numbered in order of first appearance of each key."""
    seen: dict[Hashable, int] = {}
    return torch.tensor([seen.setdefault(k, len(seen)) for k in keys], dtype=torch.long)


def group_advantages(
    rewards: Tensor, groups: Tensor, *, norm: str = "std", eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """``(advantages [N], zero_variance [n_groups] bool)`` of ``rewards [N]`` within ``groups [N]``.

    The standard deviation is the population one (``unbiased=False``) over the group. A one-member group
    has advantage 0 (and counts as zero-variance): nothing to compare it with.
    """
    if norm not in ADVANTAGE_NORMS:
        raise ValueError(f"advantage norm {norm!r}: expected one of {ADVANTAGE_NORMS}")
    if rewards.shape != groups.shape or rewards.dim() != 1:
        raise ValueError(f"rewards and groups must be [N] of one shape, got {rewards.shape}, {groups.shape}")
    r = rewards.double()
    n_groups = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(n_groups, dtype=r.dtype).index_add(0, groups, torch.ones_like(r))
    mean = torch.zeros(n_groups, dtype=r.dtype).index_add(0, groups, r) / count.clamp_min(1)
    centred = r - mean[groups]
    var = torch.zeros(n_groups, dtype=r.dtype).index_add(0, groups, centred**2) / count.clamp_min(1)
    std = var.sqrt()
    zero = std[groups] <= eps
    # a group of equal rewards: every centred reward is 0 already; the exact 0 avoids 0/eps noise
    adv = torch.where(zero, torch.zeros_like(r), centred / (std[groups] + eps) if norm == "std" else centred)
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32), std <= eps


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token ``exp(ref - logp) - (ref - logp) - 1``: the k3 estimator of KL(pi || ref), >= 0."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def grpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    ref_logps: Tensor | None = None,
    kl_beta: float = 0.0,
    token_norm: str = "token",
    denominator: float | None = None,
) -> dict[str, Tensor]:
    """The clipped policy-gradient loss of sampled tokens (module docstring), ``[B, T]`` inputs.

    ``logps`` (with graph), ``old_logps`` and ``ref_logps`` are the per-token log-probs of the sampled
    tokens under the current, behaviour and reference policies; ``mask [B, T]`` marks the sampled tokens;
    ``advantages [B]`` one per sequence. Returns ``loss`` and detached ``pg`` (the surrogate), ``kl`` (the
    token mean of k3, 0 without a reference), ``clip_frac`` (share of tokens whose clipped term was the
    one taken, i.e. whose ratio left ``[1 - eps_low, 1 + eps_high]`` in the direction the advantage
    pushes) and ``ratio_mean``.

    ``denominator`` replaces the loss's own (the number of masked tokens for ``token_norm="token"``, of
    sequences with a token for ``"sequence"``): the caller that leaves out rows without a gradient (advantage
    0, no KL) passes the count over all rows, so the loss equals the one over every row.
    """
    if token_norm not in TOKEN_NORMS:
        raise ValueError(f"token norm {token_norm!r}: expected one of {TOKEN_NORMS}")
    if not (logps.shape == old_logps.shape == mask.shape) or logps.dim() != 2:
        raise ValueError(
            f"logps, old_logps and mask must be [B, T] of one shape, got {tuple(logps.shape)}, "
            f"{tuple(old_logps.shape)}, {tuple(mask.shape)}"
        )
    if advantages.shape != (logps.shape[0],):
        raise ValueError(f"advantages must be [B]={logps.shape[0]}, got {tuple(advantages.shape)}")
    if kl_beta and ref_logps is None:
        raise ValueError("kl_beta > 0 needs ref_logps (the reference policy's log-probs)")
    m = mask.to(logps.dtype)
    adv = advantages.to(logps.dtype).unsqueeze(1)
    ratio = torch.exp(logps - old_logps.detach())
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = k3_kl(logps, ref_logps.detach()) if ref_logps is not None else torch.zeros_like(logps)
    if kl_beta:
        per_token = per_token + kl_beta * kl

    def reduce(x: Tensor) -> Tensor:
        if token_norm == "token":
            den = m.sum() if denominator is None else torch.as_tensor(float(denominator), dtype=x.dtype)
            return (x * m).sum() / den.clamp_min(1)
        per_seq = (x * m).sum(1) / m.sum(1).clamp_min(1)
        has = (m.sum(1) > 0).to(x.dtype)
        den = has.sum() if denominator is None else torch.as_tensor(float(denominator), dtype=x.dtype)
        return (per_seq * has).sum() / den.clamp_min(1)

    n_tok = m.sum().clamp_min(1)
    took_clip = (clipped < unclipped) & mask.bool()
    return {
        "loss": reduce(per_token),
        "pg": reduce(-torch.minimum(unclipped, clipped)).detach(),
        "kl": ((kl * m).sum() / n_tok).detach(),
        "clip_frac": (took_clip.to(logps.dtype).sum() / n_tok).detach(),
        "ratio_mean": ((ratio * m).sum() / n_tok).detach(),
    }


__all__ = ["ADVANTAGE_NORMS", "TOKEN_NORMS", "group_ids", "group_advantages", "k3_kl", "grpo_loss"]
