"""Data hygiene: balanced answer positions and decontamination against the evaluation sets.

* **Positions.** Chosen/rejected layouts (RewardBench, HH-RLHF, UltraFeedback, RMB, RM-Bench; the adapters
  mark them ``meta["position_fixed"] = True``) always put the better answer first; a judge trained on them
  learns "A wins". :func:`balance_positions` swaps exactly half of them (the responses exchanged, the label
  flipped: :meth:`~cj2.data.schema.PairwiseItem.swapped`), chosen by a seeded hash of the item id.
* **Decontamination.** A training item whose question matches a question of a configured evaluation set is
  removed: an exact match after normalisation (Unicode NFKC, case folded, punctuation to spaces,
  whitespace collapsed), or an overlap of word n-grams: at least ``threshold`` of the item's n-grams occur
  in the evaluation questions. Questions shorter than ``n`` words are matched exactly only. Counts are
  kept per source and reason.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from cj2.data.schema import PairwiseItem

T = TypeVar("T")


def _fraction(*parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def is_position_fixed(item: Any) -> bool:
    """Whether the source put the better answer in a fixed position (set by the adapters)."""
    meta = getattr(item, "meta", None) or {}
    return bool(meta.get("position_fixed")) or "bon_group" in meta


def balance_positions(
    items: Sequence[T], *, seed: int, force: bool = False
) -> tuple[list[T], dict[str, Any]]:
    """Swap exactly half (rounded down) of the position-fixed pairwise items (every pairwise item with
    ``force``): every other one in the order of a hash of ``(seed, id)``. Returns the items in their order
    and ``{"position_fixed", "swapped", "labels_before", "labels_after"}``."""
    fixed = [
        i for i, it in enumerate(items) if isinstance(it, PairwiseItem) and (force or is_position_fixed(it))
    ]
    ranked = sorted(fixed, key=lambda i: (_fraction("position", seed, items[i].id), i))
    to_swap = set(ranked[1::2])  # every other one in hash order: exactly floor(n/2), spread at random
    out = [it.swapped() if i in to_swap else it for i, it in enumerate(items)]  # type: ignore[attr-defined]
    before = Counter(items[i].label for i in fixed)
    after = Counter(out[i].label for i in fixed)
    return out, {
        "position_fixed": len(fixed),
        "swapped": len(to_swap),
        "labels_before": dict(before),
        "labels_after": dict(after),
    }


_NON_WORD = re.compile(r"[^\w]+|_+")


def normalize_question(text: str) -> str:
    """Normalised text for matching: NFKC, case folded, punctuation and symbols to spaces, collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Matches training questions against evaluation questions (module docstring)."""

    def __init__(self, eval_questions: Iterable[str], *, n: int = 8, threshold: float = 0.5):
        if n < 1:
            raise ValueError(f"decontamination n-gram size n={n}: expected >= 1")
        if not 0 < threshold <= 1:
            raise ValueError(f"decontamination threshold={threshold}: expected a fraction in (0, 1]")
        self.n = int(n)
        self.threshold = float(threshold)
        self.exact: set[str] = set()
        self.grams: set[tuple[str, ...]] = set()
        for q in eval_questions:
            norm = normalize_question(q)
            if not norm:
                continue
            self.exact.add(norm)
            self.grams |= _ngrams(norm.split(), self.n)

    def __len__(self) -> int:
        return len(self.exact)

    def match(self, question: str) -> str | None:
        """``"exact"``, ``"ngram"`` or None."""
        norm = normalize_question(question)
        if not norm:
            return None
        if norm in self.exact:
            return "exact"
        grams = _ngrams(norm.split(), self.n)
        if grams and len(grams & self.grams) / len(grams) >= self.threshold:
            return "ngram"
        return None

    def filter(
        self,
        things: Iterable[T],
        *,
        question: Callable[[T], str],
        source: Callable[[T], str],
        stats: dict[str, Any],
    ) -> list[T]:
        """The things whose question matches no evaluation question; ``stats[source]`` counts
        ``checked``, ``exact``, ``ngram`` and ``removed``."""
        kept = []
        for thing in things:
            src = source(thing) or "unknown"
            entry = stats.setdefault(src, {"checked": 0, "exact": 0, "ngram": 0, "removed": 0})
            entry["checked"] += 1
            how = self.match(question(thing)) if self.exact else None
            if how is None:
                kept.append(thing)
            else:
                entry[how] += 1
                entry["removed"] += 1
        return kept
