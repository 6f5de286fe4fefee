"""Reading and writing judge training records (the JSONL format of the README).

A training record is one JSON object per line::

    {"id": "...", "messages": [{"role": "user", "content": "..."}], "response": "critique ... verdict",
     "verdict": "A", "format": "cj2_choice", "source": "..."}

and a preference record (for ``loss=dpo_seq``)::

    {"id": "...", "messages": [...], "chosen": "...", "rejected": "...", "format": "...", "source": "..."}

Every problem is reported as a :class:`~cj2.data.io.DataError` naming file, line and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from cj2.data.io import DataError, read_rows, write_jsonl
from cj2.data.schema import PreferenceRecord, TrainRecord
from cj2.verdict import FORMATS, labels_for

_ROLES = ("system", "user", "assistant")


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
    rid = _require(row, "id", (str, int), path=path, line=line)
    messages = validate_messages(_require(row, "messages", list, path=path, line=line), path=path, line=line)
    response = _require(row, "response", str, path=path, line=line)
    if not response.strip():
        raise DataError("empty response", path=path, line=line, field="response")
    fmt = _format(row, path=path, line=line)
    verdict = _require(row, "verdict", str, path=path, line=line, optional=fmt == "none")
    if fmt == "none":
        verdict = None
    elif verdict not in labels_for(fmt):
        raise DataError(
            f"verdict {verdict!r} is not a label of format {fmt!r} {labels_for(fmt)}",
            path=path,
            line=line,
            field="verdict",
        )
    source = row.get("source") or ""
    weight = row.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
        raise DataError(
            f"weight must be a non-negative number, got {weight!r}", path=path, line=line, field="weight"
        )
    meta = row.get("meta") or {}
    return TrainRecord(
        id=str(rid),
        messages=messages,
        response=response,
        verdict=verdict,
        format=fmt,
        source=str(source),
        weight=float(weight),
        meta=dict(meta),
    )


def preference_record_from_row(row: dict[str, Any], *, path=None, line=None) -> PreferenceRecord:
    rid = _require(row, "id", (str, int), path=path, line=line)
    messages = validate_messages(_require(row, "messages", list, path=path, line=line), path=path, line=line)
    chosen = _require(row, "chosen", str, path=path, line=line)
    rejected = _require(row, "rejected", str, path=path, line=line)
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise DataError("empty response", path=path, line=line, field=name)
    fmt = _format(row, path=path, line=line)
    return PreferenceRecord(
        id=str(rid),
        messages=messages,
        chosen=chosen,
        rejected=rejected,
        format=fmt,
        source=str(row.get("source") or ""),
        meta=dict(row.get("meta") or {}),
    )


def read_train_records(path: str | os.PathLike) -> list[TrainRecord]:
    """Read a JSONL/JSON/parquet file of training records; the first bad record raises a DataError."""
    return [train_record_from_row(row, path=path, line=line) for line, row in read_rows(path)]


def read_preference_records(path: str | os.PathLike) -> list[PreferenceRecord]:
    return [preference_record_from_row(row, path=path, line=line) for line, row in read_rows(path)]


def write_records(path: str | os.PathLike, records: Iterable[TrainRecord | PreferenceRecord]) -> int:
    return write_jsonl(path, (r.to_json() for r in records))
