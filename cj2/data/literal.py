"""Safe parsing of structured values stored as strings in public data files.

Some public judge/reward files hold lists or dicts as *strings*: JSON text, or the ``repr`` of a Python
object (single quotes, ``True``/``None``), left by a ``str(obj)`` somewhere in their export. Such text is
data, never code: :func:`parse_literal` accepts only literal displays (strings, numbers, booleans,
``None``, lists, tuples, dicts, sets, and a sign on a number) and rejects anything else -- a call such
as ``__import__('os')``, a name, an attribute, an operator -- *before* anything is evaluated. Nothing here
calls ``eval``. Failures raise :class:`~cj2.data.io.DataError` naming file, line and field, with
``kind`` set to ``"unsafe_literal"`` (code-like text) or ``"invalid_literal"`` (not a literal at all).
"""

from __future__ import annotations

import ast
import json
import os
from typing import Any

from cj2.data.io import DataError

# Long enough for any real conversation (a few MB of text), short enough that a corrupted cell cannot make
# the parser build a huge tree.
MAX_LITERAL_CHARS = 4_000_000

# ast.walk also visits the operator of a unary op; the UnaryOp itself is checked to sign a number only.
_CONTAINER_NODES = (ast.Expression, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Load, ast.USub, ast.UAdd)
_CONSTANT_TYPES = (str, int, float, bool, type(None))


def _error(kind: str, message: str, path, line, field) -> DataError:
    return DataError(message, path=path, line=line, field=field, kind=kind)


def _check_tree(tree: ast.AST, path, line, field) -> None:
    """Reject every node that is not part of a literal display, naming the first offender."""
    for node in ast.walk(tree):
        if isinstance(node, _CONTAINER_NODES):
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, _CONSTANT_TYPES):
                continue
            raise _error(
                "invalid_literal",
                f"literal of type {type(node.value).__name__} is not allowed",
                path,
                line,
                field,
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = getattr(node.operand, "value", None)
            if (
                isinstance(node.operand, ast.Constant)
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                continue
        what = type(node).__name__
        if isinstance(node, (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Lambda)):
            raise _error(
                "unsafe_literal",
                f"text holds code ({what} at column {getattr(node, 'col_offset', '?')}),"
                " not a literal; it was not evaluated",
                path,
                line,
                field,
            )
        raise _error("invalid_literal", f"{what} is not allowed in a literal", path, line, field)


def parse_literal(
    text: str,
    *,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    field: str | None = None,
    max_chars: int = MAX_LITERAL_CHARS,
) -> Any:
    """Parse a Python-literal string (e.g. ``"[{'role': 'user', 'content': 'hi'}]"``) without evaluating code.

    The text is parsed to a syntax tree, every node is checked to be part of a literal display, and only
    then is the checked tree handed to :func:`ast.literal_eval`. Raises :class:`DataError` for text longer
    than ``max_chars``, a syntax error, code (``kind="unsafe_literal"``) or any other non-literal.
    """
    if not isinstance(text, str):
        raise _error(
            "wrong_type", f"expected a string to parse, got {type(text).__name__}", path, line, field
        )
    if len(text) > max_chars:
        raise _error(
            "invalid_literal",
            f"literal text is {len(text)} characters, over the cap of {max_chars}",
            path,
            line,
            field,
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        # ValueError: NUL bytes; RecursionError/MemoryError: pathological nesting.
        raise _error(
            "invalid_literal", f"not a Python literal ({type(err).__name__}: {err})", path, line, field
        ) from None
    _check_tree(tree, path, line, field)
    try:
        return ast.literal_eval(tree)
    except (ValueError, TypeError, RecursionError, MemoryError) as err:
        # e.g. an integer past the int-string conversion limit, an unhashable dict key
        raise _error(
            "invalid_literal", f"not a Python literal ({type(err).__name__}: {err})", path, line, field
        ) from None


def parse_structured(
    text: str,
    *,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    field: str | None = None,
    max_chars: int = MAX_LITERAL_CHARS,
) -> Any:
    """Parse a string holding a list or dict written as JSON or as a Python literal (JSON tried first)."""
    if isinstance(text, str) and len(text) <= max_chars:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is an over-long int
            pass
    return parse_literal(text, path=path, line=line, field=field, max_chars=max_chars)
