"""Sequence-level DPO with a frozen reference: the ``dpo_seq`` baseline.

Not part of arXiv 2507.09104 (its "DPO" row in Table 4 is the reference-free verdict-token loss in
:mod:`cj2.losses.verdict`); this is the usual preference-optimisation baseline cj2 compares against:

    l = -log sigmoid(beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))))

with ``log pi(y|x)`` the sum of the response tokens' log-probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cj2.losses.verdict import reduce_rows, upcast


def sequence_logps(per_token_logps: Tensor, mask: Tensor) -> Tensor:
    """Sum of ``per_token_logps [B, T']`` where ``mask [B, T']`` is true, as ``[B]``.

    ``where`` rather than a product, so a masked ``-inf`` (or NaN) position cannot poison its row.
    """
    if per_token_logps.shape != mask.shape:
        raise ValueError(
            f"per_token_logps {tuple(per_token_logps.shape)} and mask {tuple(mask.shape)} must have one shape"
        )
    values = upcast(per_token_logps)
    return torch.where(mask.bool(), values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(-1)


def dpo_logits(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """The implicit reward margin ``beta * ((pi_w - ref_w) - (pi_l - ref_l))`` per pair."""
    chosen = upcast(policy_chosen_logps) - upcast(ref_chosen_logps)
    rejected = upcast(policy_rejected_logps) - upcast(ref_rejected_logps)
    return beta * (chosen - rejected)


def sequence_dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    reduction: str = "mean",
) -> Tensor:
    """Sequence DPO: mean (or sum) over pairs of ``-log sigmoid(dpo_logits)``; all inputs ``[P]``."""
    shapes = {
        tuple(t.shape)
        for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    }
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"sequence DPO needs four [P] log-prob vectors of one shape, got {sorted(shapes)}")
    # The reference is frozen: never let a gradient reach it, even if the caller forgot no_grad.
    margin = dpo_logits(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps.detach(),
        ref_rejected_logps.detach(),
        beta,
    )
    return reduce_rows(-F.logsigmoid(margin), reduction)
