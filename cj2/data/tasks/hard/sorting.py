"""Hard tier: sorting a short list of numbers, ascending or descending.

Wrong answers: two neighbours swapped, or one number put in the wrong place.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cj2.data.tasks.answers import check_number_list
from cj2.data.tasks.base import Family, Phrasing, Problem


def _chain(nums: Sequence[int], order: str) -> str:
    return f" {'<' if order == 'asc' else '>'} ".join(map(str, nums))


def _make_sorting(rng: random.Random, order: str | None) -> Problem:
    order = order or rng.choice(("asc", "desc"))
    n = rng.randint(4, 6)
    nums = rng.sample(range(10, 100), n)
    truth = sorted(nums, reverse=order == "desc")
    wrong = list(truth)
    if rng.random() < 0.6:
        kind, i = "adjacent_swap", rng.randrange(n - 1)
        wrong[i], wrong[i + 1] = wrong[i + 1], wrong[i]
        hint = f"it swaps {truth[i]} and {truth[i + 1]}"
    else:
        kind, i = "misplaced", rng.randrange(n - 2)
        moved = wrong.pop(i) if rng.random() < 0.5 else wrong.pop(i + 2)
        wrong.insert(i + 2 if moved == truth[i] else i, moved)
        hint = f"it puts {moved} in the wrong place"
    rel = "<" if order == "asc" else ">"
    wrong_step = next(
        f"{a} {rel} {b}" for a, b in zip(wrong, wrong[1:]) if (a > b if order == "asc" else a < b)
    )
    # A slip: one number misread while ordering, the order itself right.
    j = rng.randrange(n)
    t = truth[j]
    # digits swapped, a ten off, a unit off; any free number as a last resort
    candidates = [int(str(t)[::-1]), t + 10, t - 10, t + 1, t - 1, *range(10, 100)]
    misread = next(m for m in candidates if 10 <= m <= 99 and m != t and m not in nums)
    slipped = list(truth)
    slipped[j] = misread
    slip_step = _chain(slipped[max(0, j - 1) : j + 2], order)
    word = "ascending" if order == "asc" else "descending"
    return Problem(
        subtask=order,
        fields={"nums": ", ".join(map(str, nums))},
        truth=", ".join(map(str, truth)),
        wrong=", ".join(map(str, wrong)),
        error_kind=kind,
        work=[_chain(truth, order)],
        wrong_work=[_chain(wrong, order)],
        slip_work=[_chain(slipped, order)],
        wrong_step=wrong_step,
        slip_step=slip_step,
        demand=f"the numbers in {word} order",
        hint=hint,
        params={"numbers": nums, "order": order},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "sorting",
        "sorting a short list of numbers",
        ("asc", "desc"),
        _make_sorting,
        (
            Phrasing("sort-smallest", "train", "Sort these numbers from smallest to largest: {nums}.", "asc"),
            Phrasing("sort-desc", "train", "Put these numbers in descending order: {nums}.", "desc"),
            Phrasing("sort-increasing", "validation", "Arrange {nums} in increasing order.", "asc"),
            Phrasing(
                "sort-largest", "validation", "List the following from largest to smallest: {nums}.", "desc"
            ),
        ),
        check=check_number_list,
    ),
)
