"""What every adapter reads records with: typed field access and dialogue splitting.

:class:`Fields` wraps one raw record (or a nested object in it) and turns each field into the type an
adapter expects; every failure is a :class:`~cj2.data.io.DataError` naming file, line and field, with a
stable ``kind`` (``missing_field``, ``wrong_type``, ``unknown_label``, ``inconsistent``) for the skip
counters. :func:`split_prompt` and :func:`split_reply` cut a message list into the turns before and the
turn that matters. Nothing here knows a particular dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cj2.data.io import DataError
from cj2.data.literal import parse_structured
from cj2.data.schema import BestOfNItem, PairwiseItem, PointwiseItem

Item = PairwiseItem | PointwiseItem | BestOfNItem
_ROLES = ("system", "user", "assistant")


def data_error(kind: str, message: str, *, path, line, field: str | None = None) -> DataError:
    return DataError(message, path=path, line=line, field=field, kind=kind)


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def line_id(path, line: int) -> str:
    """An id for records that carry none: the file name and the record's line (stable across machines)."""
    return f"{Path(str(path)).name}:{line}"


class Fields:
    """Typed access to one raw record (or a nested object in it); every failure names file, line, field."""

    def __init__(self, row: Any, path, line: int, prefix: str = ""):
        self.row, self.path, self.line, self.prefix = row, path, line, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, kind: str, key: str | None, message: str) -> DataError:
        return data_error(
            kind, message, path=self.path, line=self.line, field=None if key is None else self.name(key)
        )

    def has(self, key: str) -> bool:
        return self.row.get(key) is not None

    def raw(self, key: str) -> Any:
        if self.row.get(key) is None:  # parquet fills absent columns with null: same as missing
            raise self.fail("missing_field", key, "missing required field")
        return self.row[key]

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail("wrong_type", key, f"expected a string, got {type_name(value)}")
        return value

    def opt_text(self, key: str, default: str | None = None) -> str | None:
        return self.text(key) if self.has(key) else default

    def ident(self, key: str) -> str:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail("wrong_type", key, f"expected a string or integer id, got {type_name(value)}")
        return str(value)

    def structured(self, key: str, want: type) -> Any:
        """A list/dict field, given natively or as a JSON / Python-literal string (parsed safely)."""
        value = self.raw(key)
        if isinstance(value, str):
            value = parse_structured(value, path=self.path, line=self.line, field=self.name(key))
        if isinstance(value, tuple) and want is list:
            value = list(value)
        if not isinstance(value, want):
            raise self.fail("wrong_type", key, f"expected a {want.__name__}, got {type_name(value)}")
        return value

    def record(self, key: str) -> Fields:
        return Fields(self.structured(key, dict), self.path, self.line, f"{self.name(key)}.")

    def text_list(self, key: str) -> list[str]:
        values = self.structured(key, list)
        if not values:
            raise self.fail("wrong_type", key, "expected a non-empty list of strings")
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.fail("wrong_type", f"{key}[{i}]", f"expected a string, got {type_name(value)}")
        return values

    def messages(self, key: str, values: list | None = None) -> list[dict[str, str]]:
        """A ``[{role, content}, ...]`` list; extra keys per message (RMB's ``language``) are dropped.

        ``values`` is the field's already-parsed list, when the caller needed it too.
        """
        values = self.structured(key, list) if values is None else values
        if not values:
            raise self.fail("wrong_type", key, "expected a non-empty list of {role, content} messages")
        out = []
        for i, msg in enumerate(values):
            where = f"{key}[{i}]"
            if isinstance(msg, str):
                msg = parse_structured(msg, path=self.path, line=self.line, field=self.name(where))
            if not isinstance(msg, dict):
                raise self.fail(
                    "wrong_type", where, f"expected a {{role, content}} object, got {type_name(msg)}"
                )
            sub = Fields(msg, self.path, self.line, f"{self.name(where)}.")
            role, content = sub.text("role"), sub.text("content")
            if role not in _ROLES:
                raise sub.fail("unknown_label", "role", f"role {role!r} is not one of {_ROLES}")
            out.append({"role": role, "content": content})
        return out

    def label(self, key: str, mapping: dict[Any, str]) -> str:
        """Map a native label to ``A``/``B``/``tie``; ints also match their decimal string form."""
        value = self.raw(key)
        # A float label (1.0) comes from pandas exports; it matches its int key in the mapping.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail("wrong_type", key, f"expected one of {list(mapping)}, got {type_name(value)}")
        if value in mapping:
            return mapping[value]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and int(value) in mapping:
            return mapping[int(value)]
        raise self.fail("unknown_label", key, f"unknown label {value!r}; expected one of {list(mapping)}")


def split_prompt(messages: list[dict[str, str]], f: Fields, key: str) -> tuple[list[dict[str, str]], str]:
    """(earlier turns, last user turn) of a prompt that must end with a user message."""
    if messages[-1]["role"] != "user":
        raise f.fail(
            "inconsistent",
            f"{key}[{len(messages) - 1}].role",
            f"the prompt must end with a user turn, not {messages[-1]['role']!r}",
        )
    return messages[:-1], messages[-1]["content"]


def split_reply(
    messages: list[dict[str, str]], f: Fields, key: str, *, indexed: bool = True
) -> tuple[list[dict[str, str]], str]:
    """(prompt turns, final assistant reply) of a dialogue that must end with an assistant message.

    ``indexed=False`` names the field itself in errors (an HH transcript is one string, not a list).
    """
    if messages[-1]["role"] != "assistant":
        raise f.fail(
            "inconsistent",
            f"{key}[{len(messages) - 1}].role" if indexed else key,
            f"expected the dialogue to end with an assistant reply, not {messages[-1]['role']!r}",
        )
    return messages[:-1], messages[-1]["content"]
