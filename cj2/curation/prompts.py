"""Judge prompts from schema items: a seeded template per item, the gold verdict in that template's format.

Template diversity (arXiv 2507.09104, Sec. 3.1, "Diversity Enhance") is a per-item draw among the configured
templates (:func:`cj2.data.templates.sample_template`: a pure function of the seed and the item id, so a
resumed or re-ordered run renders every item the same way). Ties follow the ``ties`` policy: ``drop``
(dropped and counted) or ``keep``, where a tie item draws only among templates whose verdict format has a
tie label (``brackets``, ``arena``) and is dropped and counted when none is configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from cj2.curation.rejection import JudgePrompt
from cj2.data.schema import BestOfNItem, PairwiseItem, PointwiseItem
from cj2.data.templates import JudgeTemplate, get_template, sample_template
from cj2.verdict import labels_for

TIE_POLICIES = ("drop", "keep")


def gold_verdict(item: PairwiseItem | PointwiseItem, template: JudgeTemplate) -> str | None:
    """The gold verdict of ``item`` written in ``template``'s format, or None when the item has none for it.

    Pairwise: the label (a tie only where the format has one). Pointwise ``correctness``: ``yes``/``no`` from
    ``item.correct``. Pointwise ``score``: the item's score when it is an integer 1-10.
    """
    labels = labels_for(template.format)
    if template.kind == "pairwise":
        return item.label if item.label in labels else None
    if template.format == "correctness":
        return None if item.correct is None else ("yes" if item.correct else "no")
    if template.format == "score" and item.score is not None and float(item.score).is_integer():
        value = str(int(item.score))
        return value if value in labels else None
    return None


def expand_best_of_n(items: Iterable[Any]) -> list[PairwiseItem | PointwiseItem]:
    """Best-of-N groups become one pair per loser (best first; positions are balanced afterwards)."""
    out: list[PairwiseItem | PointwiseItem] = []
    for item in items:
        if isinstance(item, BestOfNItem):
            for pair in item.pairs():
                pair.meta["position_fixed"] = True
                out.append(pair)
        else:
            out.append(item)
    return out


def build_prompts(
    items: Iterable[PairwiseItem | PointwiseItem],
    template_names: Sequence[str],
    *,
    seed: int,
    ties: str = "drop",
    pointwise_templates: Sequence[str] = ("correctness",),
    stats: dict[str, Any] | None = None,
) -> list[JudgePrompt]:
    """One :class:`JudgePrompt` per usable item, in item order (module docstring).

    Pairwise items draw among the pairwise templates of ``template_names``, pointwise items among
    ``pointwise_templates``. An item's ``meta["style_note"]`` (style-controlled data, arXiv 2507.09104,
    Sec. 3.1 / 5.4) is passed to the template. ``stats`` (if given) gets ``dropped`` counts per reason
    (``tie_dropped``, ``tie_no_format``, ``no_gold``) and the templates drawn.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties={ties!r}; expected one of {TIE_POLICIES}")
    pair_names = [n for n in template_names if get_template(n).kind == "pairwise"]
    point_names = [n for n in pointwise_templates if get_template(n).kind == "pointwise"]
    tie_names = [n for n in pair_names if "tie" in labels_for(get_template(n).format)]
    dropped: Counter[str] = Counter()
    drawn: Counter[str] = Counter()
    prompts = []
    for item in items:
        if item.kind == "pairwise":
            names = pair_names
            if item.label == "tie":
                if ties == "drop":
                    dropped["tie_dropped"] += 1
                    continue
                names = tie_names
                if not names:
                    dropped["tie_no_format"] += 1
                    continue
        else:
            names = point_names
        if not names:
            raise ValueError(
                f"item {item.id!r} is {item.kind} but no {item.kind} template is configured "
                f"(pairwise: {list(template_names)}, pointwise: {list(pointwise_templates)})"
            )
        template = sample_template(seed, item.id, names)
        gold = gold_verdict(item, template)
        if gold is None:
            dropped["no_gold"] += 1
            continue
        drawn[template.name] += 1
        prompts.append(
            JudgePrompt(
                id=item.id,
                messages=template.render(item, style_note=item.meta.get("style_note")),
                gold=gold,
                format=template.format,
                source=item.source,
                template=template.name,
                item=item,
                meta={
                    "kind": item.kind,
                    "domain": item.domain,
                    "language": item.language,
                    **({"swapped": True} if item.meta.get("swapped") else {}),
                },
            )
        )
    if stats is not None:
        stats["prompts"] = stats.get("prompts", 0) + len(prompts)
        for reason, n in dropped.items():
            stats.setdefault("dropped", {})[reason] = stats.get("dropped", {}).get(reason, 0) + n
        for name, n in drawn.items():
            stats.setdefault("templates", {})[name] = stats.get("templates", {}).get(name, 0) + n
    return prompts
