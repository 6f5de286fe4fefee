"""An append-only JSONL of per-item results that survives a kill at any moment.

Each batch of rows is written with one ``write`` call, flushed and fsynced before the run moves on, so
a kill (SIGKILL, pre-emption) can only tear the *last* line. On reopening, a last line that is
incomplete (no newline) or not valid JSON is cut off (the file is truncated to the last complete line)
and the rows before it are kept; a bad line anywhere else is a :class:`~cj2.data.io.DataError` naming
``file:line``, because that is not what a kill leaves behind. Rows are keyed; a key seen twice keeps its
first row (the resume never writes one twice, but a hand-merged file might).

Each line carries the digest of its row (``row_sha256``: SHA-256 of the row's canonical JSON, without the
digest), written with it and checked on reopening. A row whose content no longer matches (a verdict flipped
or a score changed by hand) or that has no digest is refused, every such line named: a resume builds its
metrics from the rows it reuses, so an edited row would be reported as the judge's own result. Refused rather
than recomputed, because a researcher who edited a row meant something by it, and re-judging can cost API
calls: the message says how to have the rows judged again (delete those lines) or to start afresh. A file
with no digest on any line was written by an older cj2: refused with its own message, which says how to
judge again (move it aside) or to continue from its rows as they are (``python -m cj2.evaluation.store FILE``
adds the digests, :func:`add_digests`). The digest is of the row as stored (JSON keys are strings), so a row
with ``int`` keys digests the same before and after the round trip. The digest catches edits, not forgery
(anyone can recompute it); the store is not a security boundary. Rows in memory (:attr:`ResultStore.rows`)
do not hold it, and are kept as they read back from the file, so a fresh run and its resume score the same
rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, atomic_write_bytes

log = logging.getLogger(__name__)

DIGEST = "row_sha256"
"""The field of each stored line that holds its row's digest (:func:`row_digest`)."""


def as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as it reads back from the file (the digest field left out): JSON turns every key into a
    string (``{1: ...}`` into ``{"1": ...}``) and tuples into lists, so a fresh run and its resume see the
    same rows."""
    body = {k: v for k, v in row.items() if k != DIGEST}
    return json.loads(json.dumps(body, ensure_ascii=False))


def row_digest(row: dict[str, Any]) -> str:
    """The SHA-256 (hex) of ``row``'s canonical JSON (keys sorted, no spaces), the digest field left out.

    Computed over the row as stored (:func:`as_stored`), not the Python object: ``{2: .., 10: ..}`` sorts
    as numbers in Python and as strings once read back, and mixed ``int``/``str`` keys cannot be sorted at
    all, so a digest of the object would not match the same row read from the file."""
    text = json.dumps(as_stored(row), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResultStore:
    """Rows of one JSONL file keyed by ``key_fn(row)``; :meth:`append` adds rows durably."""

    def __init__(self, path: str | os.PathLike, key_fn: Callable[[dict[str, Any]], Hashable]):
        self.path = Path(path)
        self.key_fn = key_fn
        self.rows: dict[Hashable, dict[str, Any]] = {}
        self.recovered_bytes = 0  # bytes of a torn last line cut off on opening
        self.duplicates = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything up to the last newline is complete lines
        body, tail = data[:end], data[end:]
        lines = body.split(b"\n")[:-1]
        rows: list[tuple[int, dict[str, Any]]] = []
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            row = _parse(raw)
            if row is None:
                raise DataError(
                    "invalid result row; only the last line may be torn by a kill",
                    path=self.path,
                    line=lineno,
                )
            rows.append((lineno, row))
        last = _parse(tail) if tail.strip() else None
        if last is not None:
            rows.append((len(lines) + 1, last))
        self._check_digests(rows)  # before the file is touched: a refused store is left as it was
        for _, row in rows:
            self._add(row)
        if not tail.strip():
            return
        with open(self.path, "r+b") as fh:
            if last is not None:  # complete, only its newline was lost: keep it and end the line
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                self.recovered_bytes = len(tail)
                log.warning(
                    "%s: dropping a torn last line (%d bytes) left by an interrupted run",
                    self.path,
                    len(tail),
                )
                fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())

    def _check_digests(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        if rows and not any(DIGEST in row for _, row in rows):
            raise DataError(
                f"written by an older cj2, before result rows carried a digest (field {DIGEST!r}): its "
                f"{len(rows)} row(s) cannot be checked for edits, so they are not reused. To judge the "
                f"items again, move the file aside (mv {self.path} {self.path}.old) and run the same "
                "command. To continue from these rows as they are (if nobody edited them), add their "
                f"digests with `python -m cj2.evaluation.store {self.path}` and run the same command",
                path=self.path,
                kind="no_digests",
            )
        edited = [n for n, row in rows if row.get(DIGEST) != row_digest(row)]
        if not edited:
            return
        shown = ", ".join(map(str, edited[:10])) + (
            f" and {len(edited) - 10} more" if len(edited) > 10 else ""
        )
        raise DataError(
            f"{len(edited)} result row(s) do not match the digest written with them, or have none "
            f"(field {DIGEST!r}; line(s) {shown}): edited by hand, or written by another program, so their "
            "results are not reused. Delete those lines (or the file) to have the items judged again, or "
            "use another run_name",
            path=self.path,
            line=edited[0],
            kind="edited_row",
        )

    def _add(self, row: dict[str, Any]) -> None:
        row = {k: v for k, v in row.items() if k != DIGEST}
        key = self.key_fn(row)
        if key in self.rows:
            self.duplicates += 1
            return
        self.rows[key] = row

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: Hashable) -> dict[str, Any] | None:
        return self.rows.get(key)

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Write the rows whose keys are new, in one durable write; returns how many were written."""
        fresh = []
        for row in rows:
            row = as_stored(row)  # the rows a resume would read: the same metrics either way
            key = self.key_fn(row)
            if key in self.rows:
                continue
            self.rows[key] = row
            fresh.append(row)
        if not fresh:
            return 0
        payload = "".join(
            json.dumps({**r, DIGEST: row_digest(r)}, ensure_ascii=False) + "\n" for r in fresh
        ).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        return len(fresh)


def add_digests(path: str | os.PathLike) -> int:
    """Give every row of a results file written by an older cj2 (no ``row_sha256``) its digest, so a run
    continues from those rows as they are; the original is kept beside it as ``<name>.before-digests``.
    A row that already has a digest must match it (an edited row is not blessed). Returns the rows
    digested."""
    path = Path(path)
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # a torn last line is left to the store (it cuts it off on opening)
    out, added = [], 0
    for lineno, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        row = _parse(raw)
        if row is None:
            raise DataError("invalid result row", path=path, line=lineno)
        if DIGEST in row:
            if row[DIGEST] != row_digest(row):
                raise DataError(
                    f"the row does not match its digest (field {DIGEST!r}): edited, not digested",
                    path=path,
                    line=lineno,
                    kind="edited_row",
                )
        else:
            row = {**row, DIGEST: row_digest(row)}
            added += 1
        out.append(json.dumps(row, ensure_ascii=False) + "\n")
    backup = path.with_name(path.name + ".before-digests")
    if backup.exists():
        raise FileExistsError(f"{backup} exists: move it aside first (it is the copy of an earlier run)")
    shutil.copy2(path, backup)
    atomic_write_bytes(path, "".join(out).encode("utf-8") + data[end:])
    return added


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return row if isinstance(row, dict) else None


if __name__ == "__main__":  # python -m cj2.evaluation.store FILE...: digest the rows of an older results file
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m cj2.evaluation.store RESULTS.jsonl [...]")
    for name in sys.argv[1:]:
        print(f"{name}: {add_digests(name)} row(s) digested; the original kept as {name}.before-digests")
