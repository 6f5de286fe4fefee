"""Training records from built-in items: gold SFT records, DPO preference pairs, and a whole dataset.

Each item gets one template drawn with :func:`~cj2.data.templates.sample_template` (template diversity,
arXiv 2507.09104, Sec. 3.1); a pointwise template judges one of the item's two responses (seeded).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from cj2.data.schema import PairwiseItem, PointwiseItem, PreferenceRecord, TrainRecord
from cj2.data.tasks.base import SOURCE
from cj2.data.tasks.generate import generate_items, pointwise_views
from cj2.data.tasks.judgments import OTHER, build_judgment, default_verdict
from cj2.data.templates import JudgeTemplate, sample_template


def _names(template_names: Sequence[str] | str) -> tuple[str, ...]:
    # A lone name is one template, not a sequence of one-letter names.
    return (template_names,) if isinstance(template_names, str) else tuple(template_names)


def _gold(
    item: PairwiseItem, names: Sequence[str], seed: int
) -> tuple[PairwiseItem | PointwiseItem, JudgeTemplate, str, random.Random]:
    """What a record of ``item`` judges, in which template, with which gold verdict, and the generator its
    wording is drawn from. A pointwise template judges one of the two responses (seeded)."""
    template = sample_template(seed, item.id, names)
    judged: PairwiseItem | PointwiseItem = item
    if template.kind == "pointwise":
        judged = pointwise_views(item)[random.Random(f"view|{seed}|{item.id}").randrange(2)]
    r = random.Random(f"record|{seed}|{judged.id}|{template.name}")
    return judged, template, default_verdict(judged, template, r), r


def build_records(
    items: Sequence[PairwiseItem], template_names: Sequence[str] | str = ("cj2_short",), *, seed: int = 0
) -> list[TrainRecord]:
    """Gold training records (sound checks, correct verdicts) for built-in items.

    Each item gets one template drawn with :func:`~cj2.data.templates.sample_template` (template diversity,
    arXiv 2507.09104, Sec. 3.1); a pointwise template judges one of the item's two responses (seeded).
    """
    names = _names(template_names)
    records = []
    for item in items:
        judged, template, verdict, r = _gold(item, names, seed)
        records.append(
            TrainRecord(
                id=judged.id,
                messages=template.render(judged),
                response=build_judgment(judged, template, verdict=verdict, rng=r),
                verdict=verdict,
                format=template.format,
                source=SOURCE,
                meta={"template": template.name, "family": item.domain, **_checkable(judged)},
            )
        )
    return records


def _checkable(judged: PairwiseItem | PointwiseItem) -> dict[str, Any]:
    """``{"item": <the pairwise item as shown>}`` when it carries a computed truth, so that a judgment of the
    record can be checked for right-for-the-wrong-reason (:func:`cj2.evaluation.faithfulness.is_spurious`,
    the GRPO reward's spurious term); nothing otherwise. Not rendered into the prompt or the response."""
    if isinstance(judged, PairwiseItem) and "truth" in (judged.meta or {}):
        return {"item": dataclasses.asdict(judged)}
    return {}


def _opposite(verdict: str, template: JudgeTemplate) -> str:
    if template.kind == "pairwise":
        return OTHER[verdict]
    if template.format == "correctness":
        return "no" if verdict == "yes" else "yes"
    return str(11 - int(verdict))  # score: 8-10 <-> 3-1


def build_preference_records(
    items: Sequence[PairwiseItem], template_names: Sequence[str] | str = ("cj2_short",), *, seed: int = 0
) -> list[PreferenceRecord]:
    """Preference pairs for sequence DPO: ``chosen`` is the gold judgment (the response of
    :func:`build_records`), ``rejected`` a flawed check that reaches the other verdict (what rejection
    sampling discards, arXiv 2507.09104, Sec. 3.2)."""
    names = _names(template_names)
    records = []
    for item in items:
        judged, template, verdict, r = _gold(item, names, seed)
        chosen = build_judgment(judged, template, verdict=verdict, rng=r)
        rejected = build_judgment(judged, template, flawed=True, verdict=_opposite(verdict, template), rng=r)
        records.append(
            PreferenceRecord(
                id=judged.id,
                messages=template.render(judged),
                chosen=chosen,
                rejected=rejected,
                format=template.format,
                source=SOURCE,
                meta={"template": template.name, "family": item.domain},
            )
        )
    return records


def builtin_dataset(
    split: str, n: int, *, seed: int = 0, template_names: Sequence[str] | str = ("cj2_short",)
) -> list[TrainRecord]:
    """``n`` gold training records of ``split``: :func:`generate_items` then :func:`build_records`."""
    return build_records(generate_items(n, split=split, seed=seed), template_names, seed=seed)
