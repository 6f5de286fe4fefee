"""Which response of a pair the judge sees in position A: a pure function of the seed and the item ids.

A judge's verdict depends on the order of the two responses (position bias), so a benchmark score is only
reproducible when the order is. cj2 fixes it up front, over the benchmark's **full** list of item ids,
before any cap (``benchmark.limit``, ``evaluate.max_generated``) or resume: capping or resuming then never
changes where a pair's responses sit. The headline numbers use this single placement, as the paper does;
a second pass in the swapped order gives swap consistency and position bias.

``swapped[id]`` is ``False`` when the item's first response (``response_a`` as read from the benchmark file)
is shown in position A, ``True`` when it is shown in position B.

* :func:`balanced_placement` (default): a seeded permutation of a balanced list over the item ids sorted
  by code point, so exactly ``n // 2`` items are swapped (for odd ``n`` the extra item keeps its order)
  whatever order the file lists them in.
* :func:`opencompass_placement`: OpenCompass's JudgerBenchV2 placement (arXiv 2507.09104, Sec. 4 and the
  ``Judgerbenchv2Dataset`` loader): ``generate_balanced_list(100)`` seeds Python's global ``random`` with 0,
  shuffles 50 zeros and 50 ones, and tiles the list over each scenario file's items in file order; 0 puts
  the reference model (GPT-4o-mini, response A in cj2's adapter) in position A, 1 the candidate. OpenCompass
  tiles exactly 10 copies (1,000 items); cj2 repeats the list for longer files instead of failing.
* :func:`fixed_placement`: every item as read (RMB's own loader keeps the chosen answer in A).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cj2.data.schema import PairwiseItem
from cj2.verdict import unswap

PLACEMENTS = ("balanced", "opencompass", "fixed")


def _check_unique(ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise ValueError(
                f"item id {item_id!r} (position {i}) occurs twice; placement and resume key on unique ids"
            )
        seen.add(item_id)


def balanced_placement(ids: Sequence[str], seed: int) -> dict[str, bool]:
    """``id -> swapped`` with exactly ``len(ids) // 2`` items swapped, a pure function of ``seed`` and the
    *set* of ids (they are sorted first, so file order does not matter). Duplicate ids are an error."""
    ids = [str(i) for i in ids]
    _check_unique(ids)
    ordered = sorted(ids)
    n = len(ordered)
    flags = [True] * (n // 2) + [False] * (n - n // 2)
    # A string seed is hashed with SHA-512 by `random`, so the stream is the same on every platform and
    # Python version that keeps version-2 seeding (all of 3.x), and independent of PYTHONHASHSEED.
    random.Random(f"cj2-placement|{int(seed)}").shuffle(flags)
    return dict(zip(ordered, flags))


def generate_balanced_list(length: int, seed: int = 0) -> list[int]:
    """OpenCompass's ``generate_balanced_list``: ``length // 2`` zeros and as many ones (plus one random
    entry for odd ``length``), shuffled after seeding Python's ``random`` with ``seed``.

    A private ``random.Random(seed)`` produces the same stream as seeding the global generator, so the
    result equals OpenCompass's without touching global state.
    """
    rng = random.Random(seed)
    half = length // 2
    values = [0] * half + [1] * half
    if length % 2:
        values.append(rng.choice([0, 1]))
    rng.shuffle(values)
    return values


def opencompass_placement(items: Sequence[PairwiseItem], period: int = 100) -> dict[str, bool]:
    """OpenCompass's JudgerBenchV2 placement: ``swapped = balanced[index % period] == 1`` with ``index`` the
    item's position in its scenario file (``meta["index"]``, set by the ``judgerbenchv2`` adapter; items
    without it are numbered in list order within their domain)."""
    balanced = generate_balanced_list(period, 0)
    counters: dict[str, int] = {}
    out: dict[str, bool] = {}
    _check_unique([it.id for it in items])
    for item in items:
        index = item.meta.get("index") if isinstance(item.meta, dict) else None
        if index is None:
            index = counters.get(item.domain, 0)
            counters[item.domain] = index + 1
        out[item.id] = balanced[int(index) % period] == 1
    return out


def fixed_placement(ids: Sequence[str]) -> dict[str, bool]:
    """Every item in the order read (``swapped=False``)."""
    ids = [str(i) for i in ids]
    _check_unique(ids)
    return dict.fromkeys(ids, False)


def compute_placement(items: Sequence[PairwiseItem], kind: str, seed: int) -> dict[str, bool]:
    """The placement ``kind`` (one of :data:`PLACEMENTS`) over ``items``: call it on the full benchmark."""
    if kind == "balanced":
        return balanced_placement([it.id for it in items], seed)
    if kind == "opencompass":
        return opencompass_placement(items)
    if kind == "fixed":
        return fixed_placement([it.id for it in items])
    raise ValueError(f"placement={kind!r}; expected one of {PLACEMENTS}")


def present(item: PairwiseItem, swapped: bool) -> PairwiseItem:
    """The item as the judge sees it: responses exchanged (and label flipped) when ``swapped``."""
    return item.swapped() if swapped else item


def to_original(verdict: str | None, swapped: bool) -> str | None:
    """A verdict given on the presented pair, in the frame of the item as read (``A`` = first response)."""
    return unswap(verdict) if swapped else verdict
