"""Judge metrics as torchmetrics ``Metric`` classes (arXiv 2507.09104, Sec. 4-5).

Pure: no Lightning, no Hydra, no file I/O. Every metric takes already-parsed verdicts (``str``, or
``None`` when the parser found none) and reduces correctly under DDP: counts are ``sum`` states, and where
a metric needs items (win tables, best-of-N groups, bootstrap) they are ``cat`` states of integer codes,
with strings stored as stable ids plus a shared name table (:mod:`cj2.metrics._base`).

Scales: generic rates (:class:`JudgeAccuracy`, :class:`SwapConsistency`, :class:`Calibration`,
:class:`BootstrapCI`) are fractions in [0, 1]; benchmark scores (:class:`JudgerBenchV2Score`,
:class:`RMBScore`, :class:`RewardBenchScore`, :class:`RMBenchScore`) are on the paper's 0-100 scale; the
RewardBench 2 functions (:mod:`cj2.metrics.rewardbench2`) return fractions.
"""

from cj2.metrics.accuracy import JudgeAccuracy
from cj2.metrics.bootstrap import BootstrapCI, binomial_ci, bootstrap_ci, bootstrap_ci_fn, percentile_interval
from cj2.metrics.calibration import Calibration
from cj2.metrics.judgerbench import (
    JudgerBenchV2Score,
    ScenarioCounts,
    final_score,
    rank_models,
    score_opencompass,
    score_strict,
)
from cj2.metrics.rank import RankAgreement, average_ranks, kendall_tau_b, spearman_rho
from cj2.metrics.rewardbench import REWARDBENCH_SECTIONS, REWARDBENCH_SUBSETS, RewardBenchScore
from cj2.metrics.rewardbench2 import (
    REWARDBENCH2_SUBSETS,
    best_of_n_credit,
    ratings_credit,
    subset_mean,
    ties_score,
)
from cj2.metrics.rmb import RMBScore, category_split
from cj2.metrics.rmbench import RMBENCH_DOMAINS, RMBenchScore, rmbench_domain, triangles
from cj2.metrics.swap import SwapConsistency, unswap

__all__ = [
    "REWARDBENCH2_SUBSETS",
    "RMBENCH_DOMAINS",
    "RMBenchScore",
    "best_of_n_credit",
    "ratings_credit",
    "rmbench_domain",
    "subset_mean",
    "ties_score",
    "triangles",
    "REWARDBENCH_SECTIONS",
    "REWARDBENCH_SUBSETS",
    "BootstrapCI",
    "Calibration",
    "JudgeAccuracy",
    "JudgerBenchV2Score",
    "RMBScore",
    "RankAgreement",
    "RewardBenchScore",
    "ScenarioCounts",
    "SwapConsistency",
    "average_ranks",
    "binomial_ci",
    "bootstrap_ci",
    "bootstrap_ci_fn",
    "category_split",
    "final_score",
    "kendall_tau_b",
    "percentile_interval",
    "rank_models",
    "score_opencompass",
    "score_strict",
    "spearman_rho",
    "unswap",
]
