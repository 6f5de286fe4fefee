"""What the in-training evaluations share: the cached untrained baselines and the held-out family split.

Both in-training evaluations (generated judgments, :mod:`cj2.evaluation.generated`; verdict logits,
:mod:`cj2.evaluation.validation`) score the untrained model once on the same items and cache the scores by
model and item content (:func:`cached_metrics`), and both report the families the judge trained on apart
from the families held out whole (:func:`family_groups`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cj2.data.io import atomic_write_json
from cj2.data.schema import PairwiseItem

T = TypeVar("T")

UNSEEN_SUFFIX = "_unseen_family"


def family_groups(
    entries: Sequence[T], heldout_families: frozenset[str], domain: Callable[[T], str]
) -> list[tuple[list[T], str]]:
    """``entries`` split into ``(trained families, "")`` and ``(held-out families, "_unseen_family")``;
    an empty group is left out. The headline metrics are over the first group: new questions of the
    families the judge trained on; the suffixed ones over families it never saw."""
    seen = [e for e in entries if domain(e) not in heldout_families]
    unseen = [e for e in entries if domain(e) in heldout_families]
    return [(group, suffix) for group, suffix in ((seen, ""), (unseen, UNSEEN_SUFFIX)) if group]


def cache_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``: the file name of a cached baseline."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:16]


def item_fingerprint(items: Sequence[PairwiseItem]) -> str:
    """A hash of the items' content (ids, question, responses, label), so a cached score notices a change."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.question, it.response_a, it.response_b, it.label]).encode())
    return h.hexdigest()


def cached_metrics(cache_dir: str | Path | None, key: str, model_id: str, compute) -> dict[str, float]:
    """``compute()``'s metrics, cached as ``<cache_dir>/baselines/<key>.json`` (no cache without a dir)."""
    path = Path(cache_dir) / "baselines" / f"{key}.json" if cache_dir else None
    if path is not None and path.exists():
        return {k: float(v) for k, v in json.loads(path.read_text())["metrics"].items()}
    if compute is None:  # a lookup only (a resumed run reports the baseline it was started with, if cached)
        return {}
    metrics = compute()
    if path is not None:
        atomic_write_json(path, {"model": model_id, "metrics": metrics})
    return metrics
