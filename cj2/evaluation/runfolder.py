"""The folder of a resumable run (``cj2.evaluate``, ``cj2.refine``): its fingerprint and state, its saved
config, and the CPU caps.

A run folder remembers the fingerprint of the config that wrote it (``<name>_state.json``): the same
config resumes, a different one is refused unless ``<option>=true`` discards the old results. The
fingerprint hashes everything that changes a result, local model and data files included by their sizes
and modification times (:func:`file_identity`), so results computed from an older file are not reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.data.io import atomic_write_json, atomic_write_text


def file_identity(path: str | None) -> Any:
    """What a local file or folder currently is (sizes and modification times), so results computed from
    an older version of it are not reused; ``None`` for names that are not local paths."""
    if not path:
        return None
    p = Path(str(path)).expanduser()
    if not p.exists():
        return None
    if p.is_file():
        st = p.stat()
        return [p.name, st.st_size, st.st_mtime_ns]
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))[:2000]
    return [[str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def short_hash(payload: Mapping[str, Any]) -> str:
    """The 10-hex-digit fingerprint of a JSON-able payload (keys sorted; anything else by its text)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def check_state(
    out: Path, fp: str, overwrite: bool, *, state: str, outputs: Sequence[str], option: str
) -> None:
    """Refuse a folder that holds results of another fingerprint (unless ``overwrite``: then its
    ``outputs`` are deleted), and record ``fp`` in ``out/<state>``. ``option`` is the config key that
    allows the overwrite, for the error message."""
    path = out / state
    if path.exists():
        old = json.loads(path.read_text()).get("fingerprint")
        if old != fp and not overwrite:
            raise ValueError(
                f"{out} holds results of a different configuration (fingerprint {old}, now {fp}); "
                f"use another run_name, or {option}=true to discard them"
            )
        if old != fp:
            for name in outputs:
                (out / name).unlink(missing_ok=True)
    atomic_write_json(path, {"fingerprint": fp})


def save_config(out: Path, cfg: Mapping[str, Any]) -> None:
    """The run's config, secrets redacted, as ``config.yaml`` (written once the folder is known to be
    ours)."""
    from omegaconf import OmegaConf

    from cj2.runtime import redact

    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redact(dict(cfg)))))


def cpu_cap(value: Any, on_cpu: bool, cpu_default: Any) -> Any:
    """A cap given as ``auto``: ``cpu_default`` when a model computes on this machine's CPU, else none
    (``None``); any other value as given."""
    return (cpu_default if on_cpu else None) if value == "auto" else value
