"""Public judge data: judgment rectification for outdated items, template diversity for up-to-date ones.

arXiv 2507.09104, Sec. 3.1 (Fig. 1, "Filter by time"): public judge data is split at a cutoff date
(October 2024). Judgments written before it by outdated judges are *rectified*: the generator re-judges the
item and the new judgment is kept only when its verdict matches the human label. Up-to-date items get
*diversity enhancement*: their prompt is re-rendered with a template drawn per item from community
templates (ArenaHard, MT-Bench, ...).

The paper does not say whether up-to-date judgments are re-generated after the template swap. cj2's
default, ``up_to_date="rewrap"``, keeps the original judgment text and re-writes only its verdict: the
original final verdict marker (in whatever format it was, found with :func:`cj2.verdict.locate_verdict`)
and the rest of its line are cut, and the new template's marker is appended
(:meth:`~cj2.data.templates.JudgeTemplate.render_response`). Rewrapping needs a template whose answer is
prose or a single analysis key (``cj2_eval``, ``mtbench_pair``, ``arena_hard``, ``judgerbenchv2``); the
multi-key critical-thinking templates cannot hold a free-form judgment. An up-to-date judgment whose own
verdict disagrees with the human label, or has none, is dropped and counted (it would teach reasoning that
contradicts its verdict). ``up_to_date="rejudge"`` sends up-to-date items through the generator as well.

Items without a date are treated as outdated by default (``undated="outdated"``): a date that cannot be
read cannot prove a judgment recent.

:func:`simulate_public_judgments` gives built-in items dated judgments from an "older judge" (the
``simulated`` teacher with a lower accuracy), so the whole stage runs on a CPU; it stands in for real
public judge data and is never used for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cj2.data.schema import PairwiseItem, PointwiseItem, TrainRecord
from cj2.data.templates import JudgeTemplate, get_template, sample_template
from cj2.verdict import FORMATS, labels_for, locate_verdict

DEFAULT_CUTOFF = "2024-10-01"
UNDATED_POLICIES = ("outdated", "up_to_date")


def parse_date(value: str | None) -> dt.date | None:
    """An ISO date (``2024-10-01``, or a datetime whose first 10 characters are one), else None."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def is_outdated(
    item: PairwiseItem | PointwiseItem, cutoff: str | dt.date = DEFAULT_CUTOFF, *, undated: str = "outdated"
) -> bool:
    """Whether ``item``'s judgment predates ``cutoff`` (undated or unreadable dates follow ``undated``)."""
    if undated not in UNDATED_POLICIES:
        raise ValueError(f"undated={undated!r}; expected one of {UNDATED_POLICIES}")
    limit = cutoff if isinstance(cutoff, dt.date) else parse_date(cutoff)
    if limit is None:
        raise ValueError(f"cutoff={cutoff!r} is not an ISO date (YYYY-MM-DD)")
    day = parse_date(item.date)
    if day is None:
        return undated == "outdated"
    return day < limit


def strip_verdict(text: str) -> tuple[str, str | None]:
    """``(analysis, label)``: ``text`` without its final verdict marker's line, and that verdict's label.

    The final marker is the last one found in any verdict format; ``label`` is None when there is none (the
    text is returned stripped).
    """
    best: tuple[int, int, str] | None = None
    for fmt in FORMATS:
        if fmt == "none":
            continue
        found = locate_verdict(text, fmt)
        if found is not None and (best is None or found[1] > best[0]):
            best = (found[1], found[2], found[0])
    if best is None:
        return text.strip(), None
    start, end, label = best
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    rest = "" if line_end == -1 else text[line_end:]
    return (text[:line_start] + rest).strip(), label


def rewrappable(template: JudgeTemplate) -> bool:
    """Whether a free-form judgment fits ``template``'s answer (prose, or a single analysis key)."""
    return len(template.keys) <= 1


def rewrap(item: PairwiseItem | PointwiseItem, template: JudgeTemplate | str) -> TrainRecord:
    """A training record from an up-to-date judgment re-wrapped in ``template`` (module docstring).

    Raises ``ValueError`` with a reason code as its first argument: ``no_judgment``,
    ``judgment_unparseable``, ``judgment_disagrees``, ``no_gold`` or ``rewrap_interferes``.
    """
    from cj2.curation.prompts import gold_verdict

    template = get_template(template) if isinstance(template, str) else template
    if not rewrappable(template):
        raise TypeError(
            f"template {template.name!r} has {len(template.keys)} answer keys; a free-form judgment "
            f"can only be re-wrapped in a prose or single-key template"
        )
    if not item.judgment or not item.judgment.strip():
        raise ValueError("no_judgment")
    gold = gold_verdict(item, template)
    if gold is None:
        raise ValueError("no_gold")
    analysis, original = strip_verdict(item.judgment)
    if original is None or not analysis:
        raise ValueError("judgment_unparseable")
    if original != _original_gold(item):
        raise ValueError("judgment_disagrees")
    keys = template.response_keys(item.language)
    sections: dict[str, str] | str = {keys[0]: analysis} if keys else analysis
    try:
        response = template.render_response(sections, gold, language=item.language)
    except ValueError:
        raise ValueError("rewrap_interferes") from None
    return TrainRecord(
        id=item.id,
        messages=template.render(item),
        response=response,
        verdict=gold,
        format=template.format,
        source=item.source,
        meta={"stage": "rewrap", "template": template.name, "date": item.date},
    )


def _original_gold(item: PairwiseItem | PointwiseItem) -> str | None:
    """The label an original judgment must carry to agree with the human label."""
    if isinstance(item, PairwiseItem):
        return item.label
    if item.correct is not None:
        return "yes" if item.correct else "no"
    if item.score is not None and float(item.score).is_integer():
        return str(int(item.score))
    return None


def rewrap_items(
    items: Sequence[PairwiseItem | PointwiseItem],
    template_names: Sequence[str],
    *,
    seed: int,
    ties: str = "drop",
) -> tuple[list[TrainRecord], dict[str, Any]]:
    """Re-wrap every up-to-date item in a template drawn per item; returns records and counts."""
    names = list(template_names)
    bad = [n for n in names if not rewrappable(get_template(n))]
    if bad:
        raise ValueError(
            f"rectification.rewrap_templates {bad} have several answer keys; use prose or "
            f"single-key templates (cj2_eval, mtbench_pair, arena_hard, judgerbenchv2)"
        )
    dropped: Counter[str] = Counter()
    records = []
    for item in items:
        kind_names = [n for n in names if get_template(n).kind == item.kind]
        if item.kind == "pairwise" and item.label == "tie":
            if ties == "drop":
                dropped["tie_dropped"] += 1
                continue
            kind_names = [n for n in kind_names if "tie" in labels_for(get_template(n).format)]
        if not kind_names:
            dropped["no_template"] += 1
            continue
        try:
            records.append(rewrap(item, sample_template(seed, item.id, kind_names)))
        except ValueError as err:
            dropped[str(err.args[0])] += 1
    return records, {"items": len(items), "kept": len(records), "dropped": dict(dropped)}


def split_by_date(
    items: Sequence[PairwiseItem | PointwiseItem], cutoff: str = DEFAULT_CUTOFF, *, undated: str = "outdated"
) -> tuple[list, list]:
    """``(outdated, up_to_date)`` (module docstring)."""
    outdated, recent = [], []
    for item in items:
        (outdated if is_outdated(item, cutoff, undated=undated) else recent).append(item)
    return outdated, recent


def simulate_public_judgments(
    items: Sequence[PairwiseItem],
    *,
    seed: int,
    p_correct: float = 0.75,
    template: str = "mtbench_pair",
    outdated_fraction: float = 0.5,
    cutoff: str = DEFAULT_CUTOFF,
) -> list[PairwiseItem]:
    """Built-in items with dated judgments from an older judge: a CPU stand-in for public judge data.

    Each item gets a judgment by the ``simulated`` teacher with accuracy ``p_correct`` in ``template``'s
    format, dated one to 700 days before ``cutoff`` (with probability ``outdated_fraction``) or up to 300
    days after it. Everything is seeded by ``(seed, item id)``.
    """
    from cj2.generation.simulated import SimulatedTeacher

    teacher = SimulatedTeacher(p_correct=p_correct, template=template)
    limit = parse_date(cutoff)
    if limit is None:
        raise ValueError(f"cutoff={cutoff!r} is not an ISO date (YYYY-MM-DD)")
    out = []
    for item in items:
        rng = random.Random(f"public-judgment|{seed}|{item.id}")
        text, meta = teacher.judge(item, template, rng.getrandbits(31))
        old = rng.random() < outdated_fraction
        day = (
            limit - dt.timedelta(days=rng.randint(1, 700))
            if old
            else limit + dt.timedelta(days=rng.randint(0, 300))
        )
        out.append(
            dataclasses.replace(
                item,
                judgment=text,
                date=day.isoformat(),
                source=f"{item.source}_judged",
                meta={**item.meta, "original_judge": {"template": template, "p_correct": p_correct, **meta}},
            )
        )
    return out
