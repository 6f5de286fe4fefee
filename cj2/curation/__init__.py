"""Curation: turning public data and a generator into judge training data (arXiv 2507.09104, Sec. 3.1-3.2).

* :mod:`~cj2.curation.rejection`: rejection sampling with a verifiable reward (M candidates, keep the ones
  whose verdict matches), sharded, resumable and cached; nested subsets for an M sweep.
* :mod:`~cj2.curation.prompts`: judge prompts from items, a seeded template per item (template diversity).
* :mod:`~cj2.curation.rectify`: public judge data: rectification of outdated judgments, re-wrapping.
* :mod:`~cj2.curation.synthetic`: knowledge-based pointwise items, style-controlled pairs, MT-Bench offline.
* :mod:`~cj2.curation.hygiene`: position balancing and decontamination.
* :mod:`~cj2.curation.mixture`: weighted mixture of the components, with the realised mix.
* :mod:`~cj2.curation.sources`: source specs and readers.
* :mod:`~cj2.curation.pipeline`: every stage from a plain config (``python -m cj2.curate`` is its entry).
* :mod:`~cj2.curation.settings`: a ``rejection`` config section as the arguments of rejection sampling.
* :mod:`~cj2.curation.rft_data`: the RFT data of a training run (``data.rejection``; drawn once, by the
  policy, or in semi-online rounds), handed to the DataModule by ``cj2.train``.
"""

from cj2.curation.hygiene import Decontaminator, balance_positions, normalize_question
from cj2.curation.mixture import mix
from cj2.curation.prompts import build_prompts, gold_verdict
from cj2.curation.rejection import (
    STATUSES,
    Candidate,
    JudgePrompt,
    RejectionDraws,
    Selection,
    cache_key,
    filter_candidates,
    rejection_sample,
    select,
)

__all__ = [
    "STATUSES",
    "Candidate",
    "Decontaminator",
    "JudgePrompt",
    "RejectionDraws",
    "Selection",
    "balance_positions",
    "build_prompts",
    "cache_key",
    "filter_candidates",
    "gold_verdict",
    "mix",
    "normalize_question",
    "rejection_sample",
    "select",
]
