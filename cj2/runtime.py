"""Run-time plumbing shared by the entry points: run folders, precision, loggers, secrets, atomic
checkpoints."""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cj2.data.io import atomic_write_bytes, atomic_write_text

# Config keys whose values never leave the process (saved configs, wandb, logs, error messages).
SECRET_KEY_RE = re.compile(r"(api[_-]?key|token|secret|password|authorization)$", re.IGNORECASE)
REDACTED = "<redacted>"


# The Hydra configs ship inside the package (cj2/conf/, package data): the entries find them by module, so a
# wheel installed anywhere works from any directory. CONF_PATH is a filesystem path to the same tree.
CONF_MODULE = "pkg://cj2.conf"
CONF_PATH = Path(__file__).resolve().parent / "conf"


def _now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def run_dir(output_root: str, run_name: str | None, experiment_name: str) -> str:
    """``<root>/runs/<run_name>`` for a named run (stable: resumable), else a timestamped folder."""
    if run_name not in (None, "", "None", "null"):
        return str(Path(output_root) / "runs" / safe_name(str(run_name)))
    return str(Path(output_root) / safe_name(experiment_name) / _now())


def entry_run_dir(cfg: Any) -> Path:
    """The run folder of an entry point: ``cfg.run_dir`` when set, else Hydra's output folder, else (called
    from plain Python, no Hydra) :func:`run_dir` of ``output_root``, ``run_name`` and ``experiment_name``."""
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # no Hydra run in progress
        return Path(run_dir(cfg.output_root, cfg.get("run_name"), cfg.get("experiment_name", "default")))


def to_plain(cfg: Any) -> Any:
    """A plain dict/list copy of a (possibly OmegaConf, possibly nested) config, interpolations resolved."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return {k: to_plain(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_plain(v) for v in cfg]
    return cfg


def json_safe(obj: Any) -> Any:
    """``obj`` as JSON can hold it: tensors as numbers or lists, non-finite floats as ``None`` (JSON has no
    NaN), keys as strings, tuples as lists; recursively."""
    if torch.is_tensor(obj):
        obj = obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def sweep_dir(output_root: str, run_name: str | None, experiment_name: str) -> str:
    if run_name not in (None, "", "None", "null"):
        return str(Path(output_root) / "sweeps" / safe_name(str(run_name)))
    return str(Path(output_root) / "sweeps" / safe_name(experiment_name) / _now())


def safe_name(name: str) -> str:
    """A folder name that cannot climb out of the output root (no separators, no '..')."""
    cleaned = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name).strip(".")
    if not cleaned:
        raise ValueError(f"invalid run/experiment name {name!r}")
    return cleaned


def confined_path(base: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``base / relative``, refusing any result outside ``base`` (absolute paths, '..')."""
    base_p = Path(base).resolve()
    p = (base_p / relative).resolve()
    if p != base_p and base_p not in p.parents:
        raise ValueError(f"output path {relative!s} escapes the run directory {base_p}")
    return p


def arm_dir(override_dirname: str, max_len: int = 120) -> str:
    """The folder of one sweep arm: its overrides, arm keys first; long names end in a stable hash."""
    import hashlib

    parts = [p for p in override_dirname.split(",") if p]
    first = ("loss=", "data.rejection.m=", "seed=")
    parts.sort(key=lambda p: (next((i for i, k in enumerate(first) if p.startswith(k)), len(first)), p))
    name = safe_name(",".join(parts) or "default")
    if len(name) > max_len:
        digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:10]
        name = name[: max_len - 11].rstrip(",") + "-" + digest
    return name


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    for name, fn in (("cj2_run_dir", run_dir), ("cj2_sweep_dir", sweep_dir), ("cj2_arm_dir", arm_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(requested: str | int | None, accelerator: str = "auto") -> str:
    """``auto`` -> ``bf16-mixed`` where the hardware runs bf16 natively, else ``32-true``."""
    if requested not in (None, "auto"):
        return str(requested)
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def redact(obj: Any) -> Any:
    """A copy of a (nested) config with every secret-looking key's value replaced."""
    if isinstance(obj, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and SECRET_KEY_RE.search(k) and obj[k] not in (None, "")
                else redact(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def scrub_text(text: str) -> str:
    """Remove the values of secret environment variables from a string (logs, error messages)."""
    for key, value in os.environ.items():
        if value and len(value) >= 8 and SECRET_KEY_RE.search(key):
            text = text.replace(value, REDACTED)
    return text


def reraise_scrubbed(err: BaseException) -> None:
    """Re-raise ``err`` without secret values in its message (if it had any); returns when it has none."""
    msg = scrub_text(str(err))
    if msg != str(err):
        raise type(err)(msg) from None


def wandb_mode(configured: str | None) -> str:
    """Offline by default; online when a key is set; ``WANDB_MODE`` or the config decide otherwise."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


WANDB_ID_FILE = "wandb_run_id"
"""The file in a training run's folder that holds its wandb run id (written at the first start)."""


def wandb_run_id(run_dir: str | os.PathLike, *, resume: bool, save: bool = True) -> str:
    """The wandb run id of the training run in ``run_dir``.

    Resuming (``resume``), the id saved in ``<run_dir>/wandb_run_id`` at the first start, so the resumed run
    continues the same wandb run; otherwise (or when none was saved) a new id, written there atomically when
    ``save`` (rank zero only: the other ranks log nothing to wandb).
    """
    path = Path(run_dir) / WANDB_ID_FILE
    if resume and path.exists():
        saved = path.read_text(encoding="utf-8").strip()
        if saved:
            return saved
    alphabet = string.ascii_lowercase + string.digits
    new = "".join(secrets.choice(alphabet) for _ in range(8))
    if save:
        atomic_write_text(path, new + "\n")
    return new


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints atomically (temp file + rename) and loads them with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        import io

        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(
        self, path, map_location=lambda storage, loc: storage, weights_only: bool | None = None
    ):
        if not Path(path).exists():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return torch.load(path, map_location=map_location, weights_only=True)
