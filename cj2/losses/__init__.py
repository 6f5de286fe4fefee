"""Pure loss functions of cj2 (arXiv 2507.09104, Sec. 3.2, Eq. 12, Table 1): no Lightning, Hydra or I/O.

* :mod:`cj2.losses.verdict`   -- the verdict terms g: margin, DPO without reference, temperature;
* :mod:`cj2.losses.dpo`       -- sequence DPO with a frozen reference (the ``dpo_seq`` baseline);
* :mod:`cj2.losses.ce`        -- token CE from hidden states and the output weight, ``impl`` switch;
* :mod:`cj2.losses.objective` -- the objectives that combine them, with exact accumulation normalisation;
* :mod:`cj2.losses.grpo`      -- GRPO's group advantages and clipped policy-gradient loss (``loss=grpo``).
"""

from cj2.losses.ce import CE_BACKENDS, project, register_ce_backend, token_logps, weighted_nll
from cj2.losses.dpo import sequence_dpo_loss, sequence_logps
from cj2.losses.grpo import group_advantages, grpo_loss, k3_kl
from cj2.losses.objective import OBJECTIVES, VERDICT_TERMS, LossConfig, Objective, build_objective
from cj2.losses.verdict import (
    dpo_verdict_loss,
    hardest_other,
    margin_loss,
    temperature_loss,
    verdict_diagnostics,
)

__all__ = [
    "CE_BACKENDS",
    "OBJECTIVES",
    "VERDICT_TERMS",
    "LossConfig",
    "Objective",
    "build_objective",
    "dpo_verdict_loss",
    "group_advantages",
    "grpo_loss",
    "k3_kl",
    "hardest_other",
    "margin_loss",
    "project",
    "register_ce_backend",
    "sequence_dpo_loss",
    "sequence_logps",
    "temperature_loss",
    "token_logps",
    "verdict_diagnostics",
    "weighted_nll",
]
