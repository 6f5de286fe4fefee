"""Reading and writing judge training records (the JSONL format of the README).

A training record is one JSON object per line::

    {"id": "...", "messages": [{"role": "user", "content": "..."}], "response": "critique ... verdict",
     "verdict": "A", "format": "cj2_choice", "source": "..."}

and a preference record (for ``loss=dpo_seq``)::

    {"id": "...", "messages": [...], "chosen": "...", "rejected": "...", "format": "...", "source": "..."}

Every problem is reported as a :class:`~cj2.data.io.DataError` naming file, line and field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

from cj2.data.io import DataError, read_rows, write_jsonl
from cj2.data.schema import PreferenceRecord, TrainRecord
from cj2.verdict import FORMATS, labels_for

_ROLES = ("system", "user", "assistant")

# The fields of a record line; anything else is a typo ("wieght", "verdcit") and refused: extra
# information goes under "meta".
TRAIN_FIELDS = ("id", "messages", "response", "verdict", "format", "source", "weight", "meta")
PREFERENCE_FIELDS = ("id", "messages", "chosen", "rejected", "format", "source", "meta")
# A weight scales a record's share of the loss. Above this a record swamps every other one, and near
# float32's maximum (3.4e38) the loss itself overflows.
MAX_WEIGHT = 1e6


def _known_fields(row: dict[str, Any], fields: tuple[str, ...], *, path, line) -> None:
    for name in row:
        if name not in fields:
            raise DataError(
                f"unknown field {name!r} (a typo?); a record has {', '.join(fields)}; put anything else "
                f"under 'meta'",
                path=path,
                line=line,
                field=str(name),
            )


def _id(row: dict[str, Any], *, path, line) -> str:
    rid = _require(row, "id", str, path=path, line=line)
    if not rid.strip():
        raise DataError("empty id", path=path, line=line, field="id")
    return rid


def _meta(row: dict[str, Any], *, path, line) -> dict[str, Any]:
    meta = row.get("meta")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise DataError(
            f"expected an object (or null), got {type(meta).__name__}", path=path, line=line, field="meta"
        )
    return dict(meta)


def _source(row: dict[str, Any], *, path, line) -> str:
    source = row.get("source")
    if source is None:
        return ""
    if not isinstance(source, str):
        raise DataError(f"expected str, got {type(source).__name__}", path=path, line=line, field="source")
    return source


def _weight(row: dict[str, Any], *, path, line) -> float:
    weight = row.get("weight", 1.0)
    valid = f"a finite, non-negative number at most {MAX_WEIGHT:g}"
    if not isinstance(weight, (int, float)) or isinstance(weight, bool):
        raise DataError(f"weight must be {valid}, got {weight!r}", path=path, line=line, field="weight")
    try:
        value = float(weight)
    except OverflowError:  # an integer beyond any float
        value = math.inf
    if not math.isfinite(value) or value < 0 or value > MAX_WEIGHT:
        shown = (
            repr(weight) if len(repr(weight)) < 40 else f"{repr(weight)[:20]}... ({len(repr(weight))} digits)"
        )
        raise DataError(f"weight must be {valid}, got {shown}", path=path, line=line, field="weight")
    return value


def _require(
    row: dict[str, Any], name: str, kind: type | tuple[type, ...], *, path, line, optional: bool = False
) -> Any:
    if name not in row or row[name] is None:
        if optional:
            return None
        raise DataError("missing required field", path=path, line=line, field=name)
    value = row[name]
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"expected {want}, got {type(value).__name__}", path=path, line=line, field=name)
    return value


def validate_messages(
    messages: Any, *, path=None, line=None, field: str = "messages"
) -> list[dict[str, str]]:
    """Check a chat-message list: a non-empty list of ``{role, content}`` with known roles."""
    if not isinstance(messages, list) or not messages:
        raise DataError(
            "expected a non-empty list of {role, content} messages", path=path, line=line, field=field
        )
    out = []
    for i, msg in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            raise DataError(
                f"expected an object, got {type(msg).__name__}", path=path, line=line, field=where
            )
        role, content = msg.get("role"), msg.get("content")
        if role not in _ROLES:
            raise DataError(
                f"role {role!r} is not one of {_ROLES}", path=path, line=line, field=f"{where}.role"
            )
        if not isinstance(content, str):
            raise DataError(
                f"content must be a string, got {type(content).__name__}",
                path=path,
                line=line,
                field=f"{where}.content",
            )
        out.append({"role": role, "content": content})
    if out[-1]["role"] == "assistant":
        raise DataError(
            "the prompt must not end with an assistant turn (the response is separate)",
            path=path,
            line=line,
            field=f"{field}[{len(out) - 1}].role",
        )
    return out


def _format(row, *, path, line) -> str:
    fmt = _require(row, "format", str, path=path, line=line)
    if fmt not in FORMATS:
        raise DataError(
            f"unknown verdict format {fmt!r}; expected one of {FORMATS}", path=path, line=line, field="format"
        )
    return fmt


def train_record_from_row(row: dict[str, Any], *, path=None, line=None) -> TrainRecord:
    _known_fields(row, TRAIN_FIELDS, path=path, line=line)
    rid = _id(row, path=path, line=line)
    messages = validate_messages(_require(row, "messages", list, path=path, line=line), path=path, line=line)
    response = _require(row, "response", str, path=path, line=line)
    if not response.strip():
        raise DataError("empty response", path=path, line=line, field="response")
    fmt = _format(row, path=path, line=line)
    verdict = _require(row, "verdict", str, path=path, line=line, optional=fmt == "none")
    if fmt == "none":
        if verdict is not None:
            raise DataError(
                f"verdict {verdict!r} with format 'none' (CE only, no verdict): give the format the "
                f"response uses, or drop the verdict",
                path=path,
                line=line,
                field="verdict",
            )
    elif verdict not in labels_for(fmt):
        raise DataError(
            f"verdict {verdict!r} is not a label of format {fmt!r} {labels_for(fmt)}",
            path=path,
            line=line,
            field="verdict",
        )
    return TrainRecord(
        id=rid,
        messages=messages,
        response=response,
        verdict=verdict,
        format=fmt,
        source=_source(row, path=path, line=line),
        weight=_weight(row, path=path, line=line),
        meta=_meta(row, path=path, line=line),
    )


def preference_record_from_row(row: dict[str, Any], *, path=None, line=None) -> PreferenceRecord:
    _known_fields(row, PREFERENCE_FIELDS, path=path, line=line)
    rid = _id(row, path=path, line=line)
    messages = validate_messages(_require(row, "messages", list, path=path, line=line), path=path, line=line)
    chosen = _require(row, "chosen", str, path=path, line=line)
    rejected = _require(row, "rejected", str, path=path, line=line)
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise DataError("empty response", path=path, line=line, field=name)
    fmt = _format(row, path=path, line=line)
    return PreferenceRecord(
        id=rid,
        messages=messages,
        chosen=chosen,
        rejected=rejected,
        format=fmt,
        source=_source(row, path=path, line=line),
        meta=_meta(row, path=path, line=line),
    )


def iter_train_records(path: str | os.PathLike) -> Iterator[tuple[int, TrainRecord]]:
    """``(line, record)`` of a JSONL/JSON/parquet file of training records; a bad record raises DataError."""
    for line, row in read_rows(path):
        yield line, train_record_from_row(row, path=path, line=line)


def read_train_records(path: str | os.PathLike) -> list[TrainRecord]:
    """Read a JSONL/JSON/parquet file of training records; the first bad record raises a DataError."""
    return [rec for _, rec in iter_train_records(path)]


def read_preference_records(path: str | os.PathLike) -> list[PreferenceRecord]:
    return [preference_record_from_row(row, path=path, line=line) for line, row in read_rows(path)]


def write_records(path: str | os.PathLike, records: Iterable[TrainRecord | PreferenceRecord]) -> int:
    return write_jsonl(path, (r.to_json() for r in records))
