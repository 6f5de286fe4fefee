"""cj2's own layouts: JSONL of :class:`~cj2.data.schema.PairwiseItem` or :class:`PointwiseItem` fields.

Unknown fields are an error by default (a typo must not pass silently); ``extra_fields="meta"`` keeps
them in ``meta``.
"""

from __future__ import annotations

from typing import Any

from cj2.data.adapters.fields import Fields, line_id, type_name
from cj2.data.schema import PAIRWISE_LABELS, PairwiseItem, PointwiseItem


def _own_common(f: Fields, known: tuple[str, ...], extra_fields: str, default_source: str) -> dict[str, Any]:
    if extra_fields not in ("error", "meta"):
        raise ValueError(f"extra_fields={extra_fields!r}; expected 'error' or 'meta'")
    extras = {k: v for k, v in f.row.items() if k not in known}
    if extras and extra_fields == "error":
        key = sorted(extras)[0]
        raise f.fail(
            "unknown_field",
            key,
            f"unknown field (known: {', '.join(known)}); "
            "pass extra_fields='meta' to keep unknown fields in meta",
        )
    meta = dict(f.structured("meta", dict)) if f.has("meta") else {}
    if extras:
        meta.update(extras)
    out: dict[str, Any] = {
        "id": f.ident("id") if f.has("id") else line_id(f.path, f.line),
        "question": f.text("question"),
        "conversation": f.messages("conversation") if f.has("conversation") else [],
        "domain": f.opt_text("domain", "general"),
        "language": f.opt_text("language", "en"),
        "source": f.opt_text("source", default_source),
        "date": f.opt_text("date"),
        "judgment": f.opt_text("judgment"),
        "meta": meta,
    }
    return out


_PAIRWISE_FIELDS = (
    "id",
    "question",
    "response_a",
    "response_b",
    "label",
    "conversation",
    "domain",
    "language",
    "source",
    "date",
    "judgment",
    "meta",
)


def pairwise(row: dict, *, path, line, extra_fields: str = "error") -> list[PairwiseItem]:
    """cj2's own pairwise JSONL: the :class:`PairwiseItem` fields (``id`` optional: file:line).

    Unknown fields are an error (a typo such as ``respnse_a`` must not pass silently); with
    ``extra_fields="meta"`` they are kept in ``meta``.
    """
    f = Fields(row, path, line)
    common = _own_common(f, _PAIRWISE_FIELDS, extra_fields, "pairwise")
    label = f.label("label", {name: name for name in PAIRWISE_LABELS})
    return [
        PairwiseItem(response_a=f.text("response_a"), response_b=f.text("response_b"), label=label, **common)
    ]


_POINTWISE_FIELDS = (
    "id",
    "question",
    "response",
    "score",
    "correct",
    "conversation",
    "reference",
    "domain",
    "language",
    "source",
    "date",
    "judgment",
    "meta",
)


def pointwise(row: dict, *, path, line, extra_fields: str = "error") -> list[PointwiseItem]:
    """cj2's own pointwise JSONL: the :class:`PointwiseItem` fields.

    ``score`` is a number and ``correct`` a boolean; either, both or neither may be present.
    """
    f = Fields(row, path, line)
    common = _own_common(f, _POINTWISE_FIELDS, extra_fields, "pointwise")
    score = row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise f.fail("wrong_type", "score", f"expected a number, got {type_name(score)}")
    correct = row.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise f.fail("wrong_type", "correct", f"expected true or false, got {type_name(correct)}")
    return [
        PointwiseItem(
            response=f.text("response"),
            score=score,
            correct=correct,
            reference=f.opt_text("reference"),
            **common,
        )
    ]
