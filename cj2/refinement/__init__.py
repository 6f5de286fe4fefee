"""Critique -> revision (arXiv 2507.09104, Table 5): does a judge's critique make a policy's answers better?

* :mod:`~cj2.refinement.checking`: the ``Answer:`` line, checked by the item's family (``Family.check``);
* :mod:`~cj2.refinement.prompts`: what the policy is asked (its answer, then a revision);
* :mod:`~cj2.refinement.runner`: the loop, its controls (self-refine, a second critic), resume and caps;
* :mod:`~cj2.refinement.report`: the metrics and ``report.md``.

``python -m cj2.refine`` (:mod:`cj2.refine`) runs it from a Hydra config.
"""

from cj2.refinement.checking import check_response, check_value, extract_answer
from cj2.refinement.runner import ARMS, CONTROLS, load_questions, refine_batch, run_refine

__all__ = [
    "ARMS",
    "CONTROLS",
    "check_response",
    "check_value",
    "extract_answer",
    "load_questions",
    "refine_batch",
    "run_refine",
]
