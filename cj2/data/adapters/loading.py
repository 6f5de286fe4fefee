"""Reading sources through an adapter: files, folders and Hugging Face dataset ids, with skip counters.

:func:`iter_items` streams and :func:`load_items` collects the items of a source read with a named
adapter (:data:`~cj2.data.adapters.registry.ADAPTERS`), counting what was read, kept and skipped (by
reason) and flagging empty responses.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cj2.data.adapters.fields import Item, data_error
from cj2.data.adapters.registry import ADAPTERS
from cj2.data.hub import (
    DEFAULT_SPLIT,
    HubRef,
    hub_rows,
    is_hub_uri,
    is_saved_dataset,
    parse_hub_uri,
    saved_rows,
)
from cj2.data.io import DataError, SkipRecord, read_rows
from cj2.data.schema import PairwiseItem, PointwiseItem

_DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in _DATA_SUFFIXES if name.endswith(s)), path.suffix.lower())


def _data_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and _suffix(p) in _DATA_SUFFIXES
    )
    if not files:
        raise data_error(
            "not_found", f"folder holds no data files ({', '.join(_DATA_SUFFIXES)})", path=root, line=None
        )
    return files


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _source_rows(
    source: str | os.PathLike,
    st: dict,
    *,
    tolerant: bool,
    split: str | None,
    name: str | None,
    revision: str | None,
) -> Iterator[tuple[str, int, dict | DataError]]:
    """Rows of ``source`` as ``(file, line, row)``; a hub or saved dataset is described in
    ``st["origin"]``."""
    text = str(source)
    if is_hub_uri(text):
        try:
            ref = parse_hub_uri(text, split=split, revision=revision, config=name)
        except ValueError as err:
            raise data_error("not_found", str(err), path=text, line=None) from None
        rows = hub_rows(ref)
        st["origin"] = rows.origin
        yield from rows
        return
    path = Path(os.path.expanduser(text))
    if not path.exists():
        looks_local = text.startswith((".", "/", "~")) or _suffix(path) in _DATA_SUFFIXES or "\\" in text
        if looks_local or not _HUB_ID.match(text):
            raise data_error("not_found", "file not found", path=source, line=None)
        # A bare id (org/name) that is not a local path: read from the hub, as hf://org/name would be.
        try:
            ref = HubRef(text, split=split or DEFAULT_SPLIT, revision=revision, config=name)
        except ValueError as err:
            raise data_error("not_found", str(err), path=text, line=None) from None
        rows = hub_rows(ref, prefix="path does not exist and no hub is reachable")
        st["origin"] = rows.origin
        yield from rows
        return
    if is_saved_dataset(path):
        rows = saved_rows(path, split)
        st["origin"] = rows.origin
        yield from rows
        return
    if revision is not None or name is not None:
        raise data_error(
            "not_found",
            "revision and config (name) apply to hub datasets, not local files",
            path=path,
            line=None,
        )
    for file in _data_files(path):
        # A JSON array or parquet file that cannot be parsed is lost as a whole: that always raises.
        for line, row in read_rows(file, bad_lines="yield" if tolerant else "raise"):
            yield str(file), line, row


def _empty(item: Item) -> bool:
    if isinstance(item, PairwiseItem):
        texts = [item.response_a, item.response_b]
    elif isinstance(item, PointwiseItem):
        texts = [item.response]
    else:
        texts = [item.best, *item.losers]
    return any(not t.strip() for t in texts)


def _reason(err: DataError) -> str:
    # Every error raised inside the skip loop comes from this module or literal.py, which set ``kind``.
    return getattr(err, "kind", None) or "invalid"


def _adapter_options(adapter: str, fn: Callable, options: dict[str, Any]) -> None:
    params = inspect.signature(fn).parameters
    allowed = [
        p
        for p, spec in params.items()
        if spec.kind is inspect.Parameter.KEYWORD_ONLY and p not in ("path", "line")
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"adapter {adapter!r} has no option {unknown[0]!r}; its options: "
            f"{', '.join(allowed) or 'none'} (and load_items' drop_empty, split, name, revision, source_name)"
        )


def iter_items(
    source: str | os.PathLike,
    adapter: str,
    *,
    on_error: str = "raise",
    stats: dict | None = None,
    limit: int | None = None,
    drop_empty: bool = False,
    split: str | None = None,
    name: str | None = None,
    revision: str | None = None,
    source_name: str | None = None,
    **options: Any,
) -> Iterator[Item]:
    """Stream the items of ``source`` read with ``adapter``; see :func:`load_items`.

    Arguments are checked when this is called; records are read as the iterator is consumed.
    """
    if adapter not in ADAPTERS:
        raise KeyError(f"unknown adapter {adapter!r}; known: {', '.join(sorted(ADAPTERS))}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit}; expected a non-negative integer or None")
    fn = ADAPTERS[adapter]
    _adapter_options(adapter, fn, options)
    st = stats if stats is not None else {}
    for key in ("read", "kept", "skipped", "empty_responses"):
        st.setdefault(key, 0)
    st.setdefault("skipped_by_reason", {})
    return _generate(
        fn,
        source,
        st,
        on_error=on_error,
        limit=limit,
        drop_empty=drop_empty,
        split=split,
        name=name,
        revision=revision,
        source_name=source_name,
        options=options,
    )


def _generate(
    fn: Callable,
    source,
    st: dict,
    *,
    on_error: str,
    limit: int | None,
    drop_empty: bool,
    split: str | None,
    name: str | None,
    revision: str | None,
    source_name: str | None,
    options: dict[str, Any],
) -> Iterator[Item]:
    by_reason = st["skipped_by_reason"]

    def skip(reason: str) -> None:
        st["skipped"] += 1
        by_reason[reason] = by_reason.get(reason, 0) + 1

    if limit == 0:
        return
    kept = 0
    rows = _source_rows(source, st, tolerant=on_error == "skip", split=split, name=name, revision=revision)
    for path, line, row in rows:
        st["read"] += 1
        try:
            if isinstance(row, DataError):
                raise row
            items = fn(row, path=path, line=line, **options)
        except SkipRecord as policy:
            skip(policy.reason)
            continue
        except DataError as err:
            if on_error == "raise":
                raise
            skip(_reason(err))
            continue
        for item in items:
            if source_name is not None:
                item.source = source_name
            if _empty(item):
                # Flagged, not silently dropped: an empty reply is a legitimate (bad) response to judge.
                item.meta["empty_response"] = True
                st["empty_responses"] += 1
                if drop_empty:
                    skip("empty_response")
                    continue
            st["kept"] += 1
            kept += 1
            yield item
            if limit is not None and kept >= limit:
                return


def load_items(
    source: str | os.PathLike,
    adapter: str,
    *,
    on_error: str = "raise",
    stats: dict | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Item]:
    """Read judge items from ``source`` with the named adapter (see :data:`ADAPTERS`).

    ``source`` is a file (``.json``, ``.jsonl``, ``.jsonl.gz``, ``.json.gz``, ``.parquet``), a folder (all
    data files under it, sorted; JudgerBenchV2 and RMB ship folders of ``.json``), a folder written by
    ``datasets``' ``save_to_disk`` (``split`` picks the split), or a Hugging Face hub dataset:
    ``hf://org/name[@revision][:[config:]split]``, or a bare ``org/name`` that is not a local path
    (:mod:`cj2.data.hub`: a local copy under ``$CJ2_HUB_MIRROR`` or the hub; needs ``pip install
    "cj2[hub]"``). ``split``, ``revision`` and ``name`` (the config) fill what the hub id does not say.
    A hub row's "file" is the canonical ``hf://org/name[@rev][:config]:split`` and its "line" the 1-based
    row index, so its errors read like a file's. ``stats["origin"]`` records what was read (hub and saved
    datasets only; a file's counters stay as they were): the saved dataset's path, or the hub id, config,
    split, revision, the resolved ``hash`` and ``datasets``' ``fingerprint``.

    ``on_error="raise"``: the first bad record raises :class:`DataError` naming ``file:line: field``.
    ``on_error="skip"``: bad records are skipped and counted in ``stats["skipped"]`` and
    ``stats["skipped_by_reason"][reason]`` (``invalid_json``, ``non_utf8``, ``missing_field``,
    ``wrong_type``, ``unknown_label``, ``inconsistent``, ``unsafe_literal``, ...). A file that cannot be
    parsed at all (a truncated JSON array) raises either way. Records a policy leaves out (PandaLM
    ``no_majority``) are always counted as skipped.

    Items with an empty response get ``meta["empty_response"] = True`` and are counted in
    ``stats["empty_responses"]``; ``drop_empty=True`` also drops them (reason ``empty_response``).
    ``stats["read"]`` counts source records, ``stats["kept"]`` returned items (RM-Bench gives 9 per record).
    Counters are added to, so one dict can collect several calls. ``limit`` stops after that many items;
    ``source_name`` overrides every item's ``source``. Other ``options`` go to the adapter (e.g.
    ``language``, PandaLM's ``no_majority``, JudgerBenchV2's ``scenario``); an unknown option is an error.
    """
    return list(iter_items(source, adapter, on_error=on_error, stats=stats, limit=limit, **options))
