"""Generating built-in items: :func:`generate_items` (pairwise) and :func:`pointwise_views`.

Item ``i`` is a pure function of ``(split, seed, i, families)``: the family comes from the registry order,
the label from a seeded coin (items ``2k`` and ``2k + 1`` have opposite labels), the phrasing and problem
from a generator seeded by the item's id. Both answers are written in two different answer styles
(:data:`_STYLES`), and whether the correct one is the longer is a coin flip.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.tasks.base import SOURCE, Family, Problem, capitalise, require_builtin
from cj2.data.tasks.easy import key_split
from cj2.data.tasks.registry import FAMILIES, SPLIT_NAMES, TIERS, split_families

_STYLES = (
    "{value}",
    "The answer is {value}.",
    "{Work}. So the answer is {value}.",
    "Answer: {value}",
    "{Work}, which gives {value}.",
    "Working it out: {work}. The result is {value}.",
    "{value} ({work})",
    "Final answer: {value}.",
)


def _style(style: str, value: str, work: Sequence[str]) -> str:
    w = "; ".join(work)
    return style.format(value=value, work=w, Work=capitalise(w))


def _answers(rng: random.Random, problem: Problem) -> tuple[str, str]:
    """The correct and the wrong response, in two different styles; whether the correct one is the longer
    is a coin flip, so length says nothing about correctness."""
    if not problem.styled:  # the answer is the text itself (an instruction-following answer)
        return problem.truth, problem.wrong
    s1, s2 = rng.sample(_STYLES, 2)
    options = [
        (_style(s1, problem.truth, problem.work), _style(s2, problem.wrong, problem.wrong_work)),
        (_style(s2, problem.truth, problem.work), _style(s1, problem.wrong, problem.wrong_work)),
    ]
    correct_longer = rng.random() < 0.5
    fitting = [o for o in options if (len(o[0]) > len(o[1])) == correct_longer]
    return rng.choice(fitting or options)


# ------------------------------------------------------------------ generator


def _has_step(text: str, step: str) -> bool:
    """Whether ``step`` is written in ``text`` as a whole (``= 180`` is not in ``= 1800``)."""
    return re.search(rf"(?<![\w.]){re.escape(step)}(?!\w|\.\d)", text) is not None


def _problem_defects(p: Problem) -> list[str]:
    """Why ``p`` cannot be used (empty when it can): the wrong answer must differ from the truth, and the
    mistaken steps must be findable in the flawed checks and absent from the sound one."""
    work, wrong_work, slip_work = "; ".join(p.work), "; ".join(p.wrong_work), "; ".join(p.slip_work)
    defects = []
    if p.truth == p.wrong:
        defects.append("wrong answer equals the truth")
    if not _has_step(wrong_work, p.wrong_step) or _has_step(work, p.wrong_step):
        defects.append("wrong_step must be in wrong_work and not in work")
    if not _has_step(slip_work, p.slip_step) or _has_step(work, p.slip_step):
        defects.append("slip_step must be in slip_work and not in work")
    return defects


_MAX_DRAWS = 50


def _draw_problem(family: Family, rng: random.Random, subtask: str | None, where: str) -> Problem:
    """A problem without defects; a rare degenerate draw (a misread that spells another step) is redrawn
    from the same generator, so the result stays a pure function of the seed."""
    for _ in range(_MAX_DRAWS):
        problem = family.make(rng, subtask)
        defects = _problem_defects(problem)
        if not defects:
            return problem
    raise AssertionError(f"{where}: generator bug, no usable problem in {_MAX_DRAWS} draws: {defects}")


def _split_families(
    split: str, families: Sequence[str] | None, tiers: Sequence[str] | str | None = None
) -> list[str]:
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_NAMES)}")
    if families is None:
        return split_families(split, tiers)
    allowed = split_families(split, TIERS)  # named families may come from any tier
    chosen = [families] if isinstance(families, str) else [str(f) for f in families]
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known families: {sorted(FAMILIES)}")
    outside = [f for f in chosen if f not in allowed]
    if outside:
        raise ValueError(
            f"families {outside} are not in split {split!r}, which has {allowed} "
            f"(held-out families belong to one split only)"
        )
    if not chosen:
        raise ValueError("families must name at least one family")
    return chosen


_MAX_KEY_DRAWS = 400


def _draw_for_split(
    family: Family, rng: random.Random, subtask: str | None, split: str, where: str
) -> Problem:
    """A problem whose question key belongs to ``split`` (families with ``key_splits``), else any problem."""
    for _ in range(_MAX_KEY_DRAWS if family.key_splits else 1):
        problem = _draw_problem(family, rng, subtask, where)
        if not family.key_splits or key_split(family.name, str(problem.params["key"])) == split:
            return problem
    raise AssertionError(
        f"{where}: no question of family {family.name!r} belongs to split {split!r} in "
        f"{_MAX_KEY_DRAWS} draws (the family's table is too small for three splits)"
    )


def generate_items(
    n: int,
    *,
    split: str = "train",
    seed: int = 0,
    families: Sequence[str] | None = None,
    tiers: Sequence[str] | str | None = None,
) -> list[PairwiseItem]:
    """``n`` pairwise judge items of ``split`` whose truth is computed (module docstring).

    Item ``i`` is a pure function of ``(split, seed, i, families)``, so ``generate_items(n)`` is a prefix of
    ``generate_items(2 * n)``. Items ``2k`` and ``2k + 1`` share a family and have opposite labels, so the
    labels of an even ``n`` are exactly half ``"A"``, half ``"B"``. The id is
    ``builtin/{split}/{family}/{seed}/{i}``; ``meta`` holds the truth, the wrong value, the error kind, the
    inputs (``params``) and the check steps :func:`build_judgment` uses. ``tiers`` picks the families when
    ``families`` is None (default: the hard tier, :data:`DEFAULT_TIERS`; ``["easy"]``, ``["easy", "hard"]``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fams = _split_families(split, families, tiers)
    items = []
    for i in range(n):
        family = FAMILIES[fams[(i // 2) % len(fams)]]
        first = random.Random(f"builtin-label|{split}|{seed}|{i // 2}").choice("AB")
        label = first if i % 2 == 0 else {"A": "B", "B": "A"}[first]
        rng = random.Random(f"builtin|{split}|{family.name}|{seed}|{i}")
        phrasing = rng.choice(family.phrasings_for(split))
        item_id = f"builtin/{split}/{family.name}/{seed}/{i}"
        problem = _draw_for_split(family, rng, phrasing.subtask, split, item_id)
        correct, wrong = _answers(rng, problem)
        a, b = (correct, wrong) if label == "A" else (wrong, correct)
        items.append(
            PairwiseItem(
                id=item_id,
                question=phrasing.text.format(**problem.fields),
                response_a=a,
                response_b=b,
                label=label,
                domain=family.name,
                language="en",
                source=SOURCE,
                meta={
                    "family": family.name,
                    "subtask": problem.subtask,
                    "phrasing": phrasing.id,
                    "split": split,
                    "seed": seed,
                    "truth": problem.truth,
                    "wrong_value": problem.wrong,
                    "tier": family.tier,
                    **(
                        {"truth_view": problem.truth_view, "wrong_view": problem.wrong_view}
                        if problem.truth_view is not None
                        else {}
                    ),
                    "error_kind": problem.error_kind,
                    "params": problem.params,
                    "demand": problem.demand,
                    "hint": problem.hint,
                    "check": {
                        "work": problem.work,
                        "wrong_work": problem.wrong_work,
                        "slip_work": problem.slip_work,
                        "wrong_step": problem.wrong_step,
                        "slip_step": problem.slip_step,
                    },
                },
            )
        )
    return items


def pointwise_views(item: PairwiseItem) -> list[PointwiseItem]:
    """The two responses of a built-in item as pointwise correctness items (``{id}/A``, ``{id}/B``): the
    knowledge-based pointwise data of arXiv 2507.09104, Sec. 3.1."""
    require_builtin(item)
    views = []
    for pos, response in (("A", item.response_a), ("B", item.response_b)):
        correct = pos == item.label
        views.append(
            PointwiseItem(
                id=f"{item.id}/{pos}",
                question=item.question,
                response=response,
                correct=correct,
                domain=item.domain,
                language=item.language,
                source=item.source,
                meta={
                    **item.meta,
                    "value": item.meta["truth"] if correct else item.meta["wrong_value"],
                    "pair_id": item.id,
                    "position": pos,
                },
            )
        )
    return views
