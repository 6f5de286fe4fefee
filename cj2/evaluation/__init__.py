"""Judge evaluation (arXiv 2507.09104, Sec. 4-5): benchmarks, placement, verdict-logit scoring, the run
loop behind ``python -m cj2.evaluate``, the embedded benchmark, reports and Mix-of-Judgers agreement.

Light to import: the heavy pieces (models, plots) load when used.
"""

from cj2.evaluation.embedded import DEFAULT_MODELS, REFERENCE_MODEL, EmbeddedBenchmark, build_embedded
from cj2.evaluation.placement import (
    PLACEMENTS,
    balanced_placement,
    compute_placement,
    generate_balanced_list,
    opencompass_placement,
)

__all__ = [
    "DEFAULT_MODELS",
    "PLACEMENTS",
    "REFERENCE_MODEL",
    "EmbeddedBenchmark",
    "balanced_placement",
    "build_embedded",
    "compute_placement",
    "generate_balanced_list",
    "opencompass_placement",
    "VerdictLogitEval",
    "verdict_logit_metrics",
]


def __getattr__(name: str):
    if name in ("verdict_logit_metrics", "VerdictLogitEval"):
        from cj2.evaluation import validation

        return getattr(validation, name)
    raise AttributeError(f"module 'cj2.evaluation' has no attribute {name!r}")
