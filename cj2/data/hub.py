"""Hugging Face hub datasets as sources: ``hf://org/name[@revision][:[config:]split]``.

A hub source is read into the same ``(file, line, row)`` stream as a local file, so it goes through the
same adapters, errors and skip counters: the "file" is the source's canonical form
(``hf://org/name@rev:split``) and the "line" the row's 1-based index (as for a parquet file: row N is
``dataset[N - 1]``). The ``datasets`` package is imported only here, only when a hub source is read
(``pip install "cj2[hub]"``).

Where a hub source is read from, in order:

1. a local copy under a folder of ``$CJ2_HUB_MIRROR`` (``os.pathsep``-separated folders):
   ``<folder>/org/name@<revision>`` when a revision is asked for, else (or when that is absent)
   ``<folder>/org/name``. The copy is a ``save_to_disk`` folder (a ``DatasetDict``: the split is picked;
   a ``Dataset``: taken as the split asked for) or the repository's files as downloaded
   (``hf download org/name --repo-type dataset --local-dir <folder>/org/name``), read by
   ``datasets.load_dataset`` with the config and split. A local copy's revision is not checked: the
   stats name the copy (``local_copy``);
2. the hub through ``datasets`` (``revision`` and ``config`` passed on); with ``HF_HUB_OFFLINE`` or
   ``HF_DATASETS_OFFLINE`` set this is refused at once (use a mirror or a local path instead).

What was read is described in :attr:`HubRows.origin` (the loaders put it in their stats as ``origin``):
hub id, config, split, the revision asked for, ``hash`` (the commit the revision resolved to on the hub; a
hash of the files for a local download), ``fingerprint`` (``datasets``' fingerprint of the loaded split)
and ``rows``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cj2.data.io import DataError

HUB_PREFIX = "hf://"
INSTALL_HINT = 'pip install "cj2[hub]"'
MIRROR_ENV = "CJ2_HUB_MIRROR"
DEFAULT_SPLIT = "train"

_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_PART = re.compile(r"^[\w.-]+$")  # a config or split name
_REVISION = re.compile(r"^[\w./-]+$")  # a branch, tag or commit (git refs hold no ':' or '@')
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubRef:
    """One split of a hub dataset: ``repo`` (``org/name``), ``split``, ``revision`` and ``config``."""

    repo: str
    split: str = DEFAULT_SPLIT
    revision: str | None = None
    config: str | None = None

    def __post_init__(self) -> None:
        if not _REPO.match(self.repo) or ".." in self.repo:
            raise ValueError(f"hub id {self.repo!r} is not of the form org/name")
        for key, pattern in (("split", _PART), ("config", _PART), ("revision", _REVISION)):
            value = getattr(self, key)
            if key == "split" and not value:
                raise ValueError(f"hub dataset {self.repo!r}: empty split")
            if value is not None and not pattern.match(str(value)):
                raise ValueError(f"hub dataset {self.repo!r}: {key} {value!r} is not a valid name")

    @property
    def uri(self) -> str:
        """The canonical form, which :func:`parse_hub_uri` reads back: ``hf://org/name[@rev][:config]:split``."""
        text = HUB_PREFIX + self.repo
        if self.revision:
            text += f"@{self.revision}"
        if self.config:
            text += f":{self.config}"
        return f"{text}:{self.split}"


def is_hub_uri(source: Any) -> bool:
    """Whether ``source`` is written in the hub form ``hf://...``."""
    return isinstance(source, str) and source.startswith(HUB_PREFIX)


def _merge(ref: HubRef, key: str, given: str | None) -> HubRef:
    """``ref`` with ``key`` filled from ``given`` (a separate config key); both set and different is an
    error."""
    if given is None:
        return ref
    mine = getattr(ref, key)
    if mine is not None and str(given) != mine:
        raise ValueError(f"{ref.uri}: {key} {given!r} contradicts the {key} {mine!r} written in the hub id")
    return replace(ref, **{key: str(given)})


def parse_hub_uri(
    source: str, *, split: str | None = None, revision: str | None = None, config: str | None = None
) -> HubRef:
    """Read ``hf://org/name[@revision][:[config:]split]``; ``split``, ``revision`` and ``config`` fill the
    parts it does not name (the split defaults to ``train``) and must agree with those it does."""
    if not is_hub_uri(source):
        raise ValueError(f"{source!r} is not a hub id of the form hf://org/name[@revision][:[config:]split]")
    body = source[len(HUB_PREFIX) :]
    head, *parts = body.split(":")
    repo, _, rev = head.partition("@")
    if len(parts) > 2 or (head.count("@") > 1) or ("@" in head and not rev):
        raise ValueError(f"{source!r} is not of the form hf://org/name[@revision][:[config:]split]")
    uri_config, uri_split = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    if "" in parts:
        raise ValueError(f"{source!r}: empty config or split after ':'")
    ref = HubRef(repo, split=uri_split or DEFAULT_SPLIT, revision=rev or None, config=uri_config)
    ref = _merge(ref, "revision", revision)
    ref = _merge(ref, "config", config)
    if split is not None and uri_split is not None and str(split) != uri_split:
        raise ValueError(
            f"{ref.uri}: split {split!r} contradicts the split {uri_split!r} written in the hub id"
        )
    return replace(ref, split=str(split)) if split is not None else ref


@dataclass
class HubRows:
    """A hub split ready to read: ``label`` (the "file" of its rows), the rows, and what was read."""

    label: str
    dataset: Any
    origin: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[str, int, dict]]:
        for i, row in enumerate(self.dataset, start=1):
            yield self.label, i, row


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _import_datasets(ref: HubRef, prefix: str):
    try:
        import datasets  # optional: only hub sources and saved datasets need it
    except ImportError:
        raise DataError(
            f"{prefix}: reading it needs the `datasets` package, which is not installed: {INSTALL_HINT}",
            path=ref.uri,
            kind="not_found",
        ) from None
    return datasets


def mirror_copy(ref: HubRef) -> Path | None:
    """The local copy of ``ref`` under ``$CJ2_HUB_MIRROR`` (module docstring), or None."""
    names = ([f"{ref.repo}@{ref.revision}"] if ref.revision else []) + [ref.repo]
    for root in filter(None, os.environ.get(MIRROR_ENV, "").split(os.pathsep)):
        for name in names:
            candidate = Path(root).expanduser() / name
            if candidate.is_dir():
                return candidate
    return None


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def _pick_split(data: Any, split: str, label: str, path: Path) -> Any:
    if hasattr(data, "keys"):  # a DatasetDict
        if split not in data:
            raise DataError(
                f"no split {split!r}; the saved dataset has {sorted(data.keys())}",
                path=label,
                kind="not_found",
            )
        return data[split]
    own = getattr(data, "split", None)
    if own is not None and str(own) != split:
        raise DataError(f"the saved dataset at {path} is split {str(own)!r}", path=label, kind="not_found")
    return data


def saved_rows(path: Path, split: str | None) -> HubRows:
    """The rows of a local ``save_to_disk`` folder (a ``DatasetDict``'s ``split``, default ``train``)."""
    split = split or DEFAULT_SPLIT
    label = f"{path}:{split}"
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"a saved dataset (save_to_disk folder): reading it needs the `datasets` package, which is not "
            f"installed: {INSTALL_HINT}",
            path=path,
            kind="not_found",
        ) from None
    data = _pick_split(datasets.load_from_disk(str(path)), split, label, path)
    origin = {"path": str(path), "split": split, "fingerprint": getattr(data, "_fingerprint", None)}
    return HubRows(label, data, {**origin, "rows": len(data)})


def _from_builder(datasets, ref: HubRef, where: str | Path, revision: str | None) -> tuple[Any, str | None]:
    builder = datasets.load_dataset_builder(str(where), ref.config, revision=revision)
    builder.download_and_prepare()
    splits = sorted((builder.info.splits or {}).keys())
    if splits and ref.split not in splits:
        raise DataError(f"no split {ref.split!r}; the dataset has {splits}", path=ref.uri, kind="not_found")
    return builder.as_dataset(split=ref.split), getattr(builder, "hash", None)


def hub_rows(ref: HubRef, *, prefix: str = "hub dataset cannot be read") -> HubRows:
    """The rows of a hub split (module docstring); every failure is a :class:`DataError` naming
    ``ref.uri`` and saying why."""
    local = mirror_copy(ref)
    origin: dict[str, Any] = {"hub": ref.repo, "config": ref.config, "split": ref.split}
    origin["revision"] = ref.revision
    if local is None and _offline():
        raise DataError(
            f"{prefix} (offline mode is set: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and ${MIRROR_ENV} holds "
            "no copy of it; save it there or give a local path",
            path=ref.uri,
            kind="not_found",
        )
    datasets = _import_datasets(ref, prefix)
    try:
        if local is not None and is_saved_dataset(local):
            data = _pick_split(datasets.load_from_disk(str(local)), ref.split, ref.uri, local)
            digest = None
        elif local is not None:
            data, digest = _from_builder(datasets, ref, local, None)
        else:
            data, digest = _from_builder(datasets, ref, ref.repo, ref.revision)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 -- network, auth, missing dataset or split: "cannot read it"
        where = f"the local copy {local}" if local is not None else "the hub"
        raise DataError(
            f"{prefix} from {where} ({type(err).__name__}: {err})", path=ref.uri, kind="not_found"
        ) from None
    if local is not None:
        origin["local_copy"] = str(local)
    origin.update(hash=digest, fingerprint=getattr(data, "_fingerprint", None), rows=len(data))
    return HubRows(ref.uri, data, origin)
