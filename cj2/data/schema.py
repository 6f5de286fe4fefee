"""One schema for judge data (arXiv 2507.09104, Sec. 3.1).

Three item kinds cover the public judge/reward data cj2 reads:

* :class:`PairwiseItem`  -- a question, two responses and a label ``"A"``, ``"B"`` or ``"tie"``;
* :class:`PointwiseItem` -- a question, one response and a score or a correctness flag;
* :class:`BestOfNItem`   -- a question, the best response and the responses it beats.

Items describe *what is judged*. :class:`TrainRecord` and :class:`PreferenceRecord` are what a judge is
*trained on*: the prompt as chat messages plus the judge's response text (critique, then verdict).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PAIRWISE_LABELS = ("A", "B", "tie")

Message = dict[str, str]


SWAP_SUFFIX = "/swapped"
"""Id suffix of the second order of a built-in question under ``data.builtin.both_orders``."""


def pair_key(record_id: str) -> str:
    """The question a record judges, whatever its order or RFT sample: ``q/swapped#s3`` -> ``q``."""
    return record_id.split("#", 1)[0].removesuffix(SWAP_SUFFIX)


@dataclass
class PairwiseItem:
    id: str
    question: str
    response_a: str
    response_b: str
    label: str
    conversation: list[Message] = field(default_factory=list)  # turns before `question`, oldest first
    domain: str = "general"
    language: str = "en"
    source: str = ""
    date: str | None = None  # ISO date of the original judgment, where known
    judgment: str | None = None  # the original judge text, where the source has one
    meta: dict[str, Any] = field(default_factory=dict)

    kind = "pairwise"

    def __post_init__(self) -> None:
        if self.label not in PAIRWISE_LABELS:
            raise ValueError(f"item {self.id!r}: label {self.label!r} is not one of {PAIRWISE_LABELS}")

    def swapped(self) -> PairwiseItem:
        """The same pair with the responses exchanged and the label flipped."""
        flip = {"A": "B", "B": "A", "tie": "tie"}[self.label]
        return dataclasses.replace(
            self,
            response_a=self.response_b,
            response_b=self.response_a,
            label=flip,
            meta={**self.meta, "swapped": not self.meta.get("swapped", False)},
        )


@dataclass
class PointwiseItem:
    id: str
    question: str
    response: str
    score: float | None = None
    correct: bool | None = None
    conversation: list[Message] = field(default_factory=list)
    reference: str | None = None  # a reference answer, where the source has one
    domain: str = "general"
    language: str = "en"
    source: str = ""
    date: str | None = None
    judgment: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    kind = "pointwise"


@dataclass
class BestOfNItem:
    id: str
    question: str
    best: str
    losers: list[str]
    conversation: list[Message] = field(default_factory=list)
    domain: str = "general"
    language: str = "en"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    kind = "best_of_n"

    def pairs(self) -> list[PairwiseItem]:
        """One pairwise item per loser, best in position A (callers balance positions)."""
        return [
            PairwiseItem(
                id=f"{self.id}#{i}",
                question=self.question,
                response_a=self.best,
                response_b=loser,
                label="A",
                conversation=self.conversation,
                domain=self.domain,
                language=self.language,
                source=self.source,
                meta={**self.meta, "bon_group": self.id},
            )
            for i, loser in enumerate(self.losers)
        ]


@dataclass
class TrainRecord:
    """One JSONL line of judge training data: ``{id, messages, response, verdict, format, source}``.

    ``messages`` is the prompt as chat messages; ``response`` the judge's text (critique, then verdict);
    ``verdict`` the gold verdict label (``None`` with ``format="none"``: CE only).
    """

    id: str
    messages: list[Message]
    response: str
    verdict: str | None
    format: str
    source: str = ""
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PreferenceRecord:
    """One JSONL line for sequence DPO: ``{id, messages, chosen, rejected, format, source}``."""

    id: str
    messages: list[Message]
    chosen: str
    rejected: str
    format: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
