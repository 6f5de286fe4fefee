"""File I/O at the edges: row readers that name file and line on failure, and atomic writers.

Every reader in cj2 goes through :func:`read_rows`, so a malformed file always gives the same kind of
error, :class:`DataError`, whose message names ``file:line`` and, where one is at fault, the field. A
record that is fine but left out on purpose (a stated policy) is a :class:`SkipRecord` instead, wherever
it is dropped: reading (the adapters) or tokenising (the collator).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import secrets
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


class DataError(ValueError):
    """A record that cannot be used, with where it is: ``file:line: field: what is wrong``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
        kind: str = "invalid",
    ):
        self.kind = kind  # a stable reason code for skip counters; the message is for people
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")


class SkipRecord(Exception):
    """A well-formed record left out on purpose by a stated policy; the caller counts it under ``reason``.

    Not an error: the adapters raise it for a record their policy drops (a PandaLM row whose annotators
    all disagree: ``no_majority``) and the collator for a training record it cannot encode as asked
    (``overlong``, ``verdict_not_found``, ...). ``record_id`` names the record when it has one.
    """

    def __init__(self, reason: str, record_id: str | None = None, detail: str = ""):
        self.reason = reason
        self.record_id = record_id
        if record_id is None:
            message = detail or reason
        else:
            message = f"record {record_id!r}: {reason}{': ' + detail if detail else ''}"
        super().__init__(message)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".jsonl.gz", ".json.gz"):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _open_text(path: Path):
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    return raw


def read_rows(
    path: str | os.PathLike, *, bad_lines: str = "raise"
) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """Yield ``(line_number, row)`` from a ``.jsonl``, ``.jsonl.gz``, ``.json`` or ``.parquet`` file.

    ``line_number`` is 1-based: the physical line for JSONL, the list index + 1 for a JSON array, the row
    index + 1 for parquet. Blank JSONL lines are skipped. A line that is not valid UTF-8 or not valid JSON (a
    truncated write, say), or a row that is not a JSON object, raises :class:`DataError`; with
    ``bad_lines="yield"`` a bad JSONL line is yielded as ``(line, DataError)`` and reading goes on (a JSON
    array or parquet file that cannot be parsed is lost as a whole and always raises).
    """
    if bad_lines not in ("raise", "yield"):
        raise ValueError(f"bad_lines={bad_lines!r}; expected 'raise' or 'yield'")
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    suffix = _suffix(path)
    if path.is_dir() and suffix != ".parquet":  # a folder of parquet parts is one table to pyarrow
        raise DataError(
            "a folder, not a file: give the path of a .jsonl, .jsonl.gz, .json or .parquet file",
            path=path,
            kind="not_a_file",
        )
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for i, row in enumerate(table.to_pylist(), start=1):
            yield i, row
        return
    if suffix in (".json", ".json.gz"):
        try:
            with _open_text(path) as fh:
                data = fh.read()
        except _DECOMPRESS_ERRORS as err:
            raise _truncated(path, err, None) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            start = data.rfind(b"\n", 0, err.start) + 1
            end = data.find(b"\n", err.start)
            raw = data[start : end if end >= 0 else len(data)]
            err = UnicodeDecodeError("utf-8", raw, err.start - start, err.end - start, err.reason)
            raise _utf8_error(raw, err, path, line, "of the line") from None
        stripped = text.lstrip()
        if stripped.startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", path=path, line=err.lineno) from None
            for i, row in enumerate(rows, start=1):
                if not isinstance(row, dict):
                    raise DataError(f"expected a JSON object, got {type(row).__name__}", path=path, line=i)
                bad = check_values(row, path=path, line=i)
                if bad is not None:
                    raise bad
                yield i, row
            return
        # A .json file holding one object per line is JSONL in disguise; read it as such.
        lines: Iterable[bytes] = io.BytesIO(data)
    else:
        lines = _open_text(path)
    lineno = 0
    try:
        for lineno, raw in enumerate(lines, start=1):
            row, error = _parse_jsonl_line(raw, path, lineno)
            if error is not None:
                if bad_lines == "raise":
                    raise error
                yield lineno, error
            elif row is not None:
                yield lineno, row
    except _DECOMPRESS_ERRORS as err:  # a cut-off .gz: the lines read so far were yielded
        raise _truncated(path, err, lineno + 1) from None
    finally:
        if hasattr(lines, "close"):
            lines.close()


_DECOMPRESS_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _truncated(path: Path, err: BaseException, line: int | None) -> DataError:
    return DataError(
        f"the compressed file is truncated or corrupt ({type(err).__name__}: {err}); re-copy or re-write it",
        path=path,
        line=line,
        kind="truncated_file",
    )


def _find_bad_value(obj: Any, where: str) -> tuple[str, str] | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where, f"non-finite number {obj} (NaN and Infinity are not JSON numbers)"
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as err:
            code = ord(obj[err.start])
            return where, f"lone surrogate \\u{code:04x} at character {err.start}: not valid Unicode text"
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{where}.{k}" if where else str(k)
            found = _find_bad_value(k, sub) if isinstance(k, str) else None
            found = found or _find_bad_value(v, sub)
            if found:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _find_bad_value(v, f"{where}[{i}]")
            if found:
                return found
    return None


def _undecodable_field(obj: Any, where: str) -> str | None:
    """The first field whose text holds a byte that was not UTF-8 (decoded with ``surrogateescape``: the
    byte became a surrogate in U+DC80..U+DCFF)."""
    if isinstance(obj, str):
        return where if any("\udc80" <= c <= "\udcff" for c in obj) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        sub = f"{where}[{k}]" if isinstance(k, int) else (f"{where}.{k}" if where else str(k))
        found = (_undecodable_field(k, sub) if isinstance(k, str) else None) or _undecodable_field(v, sub)
        if found:
            return found
    return None


def _utf8_error(raw: bytes, err: UnicodeDecodeError, path: Any, line: int, place: str) -> DataError:
    """Invalid UTF-8 in ``raw`` (one line), naming the byte and, where the line is JSON apart from the bad
    bytes, the field that holds them (a file in another encoding, Latin-1 say, is then easy to find)."""
    field = None
    try:
        row = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:  # the bad bytes are outside any string: no field to name
        row = None
    if isinstance(row, (dict, list)):
        field = _undecodable_field(row, "")
    message = f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start} {place}; another encoding?)"
    return DataError(message, path=path, line=line, field=field, kind="non_utf8")


def check_values(row: dict[str, Any], *, path=None, line=None) -> DataError | None:
    """The first value of ``row`` that no reader should take, as a :class:`DataError` naming its field: a
    non-finite number (Python's JSON reader accepts ``NaN`` and ``Infinity``) or a string that is not valid
    Unicode (a lone surrogate from a ``\\ud800`` escape, which no tokenizer can encode). ``None`` if all
    fine."""
    try:  # the fast path: one C-level pass over the whole row
        json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8")
        return None
    except (ValueError, UnicodeEncodeError):
        pass
    found = _find_bad_value(row, "")
    if found is None:
        return None
    field, message = found
    kind = "non_finite" if message.startswith("non-finite") else "invalid_unicode"
    return DataError(message, path=path, line=line, field=field, kind=kind)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (what a resumed run compares its training data by)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse_jsonl_line(raw: bytes, path: Path, lineno: int) -> tuple[dict[str, Any] | None, DataError | None]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, _utf8_error(raw, err, path, lineno, "of the line")
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        return None, DataError(
            f"invalid JSON ({err.msg} at column {err.colno}); truncated line?",
            path=path,
            line=lineno,
            kind="invalid_json",
        )
    if not isinstance(row, dict):
        return None, DataError(
            f"expected a JSON object, got {'null' if row is None else type(row).__name__}",
            path=path,
            line=lineno,
            kind="not_an_object",
        )
    bad = check_values(row, path=path, line=lineno)
    if bad is not None:
        return None, bad
    return row, None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a kill mid-write never leaves a partial file
    (write, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp, which creates 0600: O_EXCL with mode 0666 lets the kernel apply the umask, so the file
    # gets the mode a plain open() would give it.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write ``rows`` as JSONL; returns the number of rows."""
    buf = io.StringIO()
    n = 0
    for row in rows:
        buf.write(json.dumps(row, ensure_ascii=False))
        buf.write("\n")
        n += 1
    atomic_write_text(path, buf.getvalue())
    return n
