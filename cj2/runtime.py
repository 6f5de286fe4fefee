"""Run-time plumbing shared by the entry points: run folders, precision, loggers, secrets, atomic
checkpoints."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import re
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

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

    parts = [redact(p) for p in override_dirname.split(",") if p]  # a secret never names a folder
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


# The *name* of an environment variable (what every ``*_env`` key holds): anything else is probably the
# secret itself, typed where its name belongs.
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values that have a name's characters but the shape of a token: a provider's token prefix (Hugging Face
# hf_, GitHub ghp_/github_pat_, GitLab glpat-, Slack xox?-, OpenAI/Stripe sk_/sk-, AWS key ids AKIA/ASIA...),
# or 20+ characters mixing lower case, upper case and digits (names are upper case by convention).
TOKEN_SHAPE_RE = re.compile(
    r"^(?:hf_|api_org_|gh[pousr]_|github_pat_|glpat-|xox[abpr]-|sk[-_]|rk_|(?:AKIA|ASIA)[A-Z0-9]{12,}$)"
    r"|^(?=\S*[a-z])(?=\S*[A-Z])(?=\S*[0-9])\S{20,}$"
)
# ``scheme://user:password@host``: credentials in a URL.
URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]+)@")
# ``https://host/v1?api_key=...``: a key in a URL's query, under any parameter whose name holds one of the
# words (api_key, apikey, access_token, client_secret, private_token, X-Amz-Signature, X-Amz-Credential,
# sig, auth, password, ...). Every such parameter of every URL in a text is found (:func:`url_query_secrets`).
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
SECRET_PARAM_RE = re.compile(r"key|token|secret|passw|pwd|sig|auth|credential", re.IGNORECASE)
URL_QUERY_PARAM_RE = re.compile(r"[?&;](?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s]+)")


def url_query_secrets(text: str) -> list[tuple[str, str]]:
    """``(name, value)`` of every URL query parameter in ``text`` whose name says it holds a secret."""
    return [
        (m.group("name"), m.group("value"))
        for url in URL_RE.finditer(text)
        for m in URL_QUERY_PARAM_RE.finditer(url.group(0))
        if SECRET_PARAM_RE.search(m.group("name"))
    ]


# Secret values met in this process (config values of secret keys, URL credentials, keys typed into
# ``*_env``): every text a run writes or prints is scrubbed of them (:func:`scrub_text`).
_SECRET_VALUES: set[str] = set()
_MIN_SECRET_LEN = 4  # shorter values would garble ordinary text when scrubbed


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY_RE.search(key))


def is_env_name_key(key: Any) -> bool:
    return isinstance(key, str) and key.endswith("_env")


def bad_env_name(key: Any, value: Any) -> bool:
    """An ``*_env`` key whose value is not an environment variable's name (a key typed in its place): not a
    name's characters, or a token's shape although it has them (``hf_...``, ``ghp_...``, ``AKIA...``, a long
    mix of cases and digits: :data:`TOKEN_SHAPE_RE`)."""
    if not (is_env_name_key(key) and isinstance(value, str) and value):
        return False
    return not ENV_NAME_RE.match(value) or bool(TOKEN_SHAPE_RE.search(value))


def register_secret(value: Any) -> None:
    """Scrub ``value`` from every text this process writes or prints from now on."""
    if isinstance(value, str):
        value = value.strip().strip("'\"")
        if len(value) >= _MIN_SECRET_LEN:
            _SECRET_VALUES.add(value)


def _register_in_string(text: str) -> None:
    for _, value in url_query_secrets(text):
        register_secret(value)
    for m in URL_USERINFO_RE.finditer(text):
        info = m.group("userinfo")
        register_secret(info)
        register_secret(info.partition(":")[2])


def register_secrets(obj: Any, key: Any = None) -> None:
    """Register every secret a (nested) config or list of ``key=value`` overrides holds: values of
    secret-looking keys, URL credentials, and ``*_env`` values that are not variable names."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(obj, (DictConfig, ListConfig)):
        from omegaconf import OmegaConf

        obj = OmegaConf.to_container(obj, resolve=False)
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            register_secrets(v, k)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            register_secrets(v, key)
    elif isinstance(obj, str):
        if is_secret_key(key) or bad_env_name(key, obj):
            register_secret(obj)
        _register_in_string(obj)
        if key is None and "=" in obj:  # an override "key=value" (maybe "+key=value")
            k, _, v = obj.partition("=")
            last = k.lstrip("+~").split("@")[0].split(".")[-1].split("/")[-1]
            if is_secret_key(last) or bad_env_name(last, v.strip().strip("'\"")):
                register_secret(v)


def redact(obj: Any, key: Any = None) -> Any:
    """A copy of a (nested) config with every secret replaced: the values of secret-looking keys, ``*_env``
    values that are not environment variable names, URL credentials, and every registered secret value
    inside any string (an override list, an override_dirname)."""
    if isinstance(obj, Mapping):
        return {
            k: (
                REDACTED if (is_secret_key(k) and v not in (None, "")) or bad_env_name(k, v) else redact(v, k)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        if "=" in obj and key is None:  # an override: "judge.api_key=..." -> "judge.api_key=<redacted>"
            k, _, v = obj.partition("=")
            last = k.lstrip("+~").split("@")[0].split(".")[-1].split("/")[-1]
            if (is_secret_key(last) and v not in ("", "null")) or bad_env_name(last, v.strip("'\"")):
                return f"{k}={REDACTED}"
        return scrub_text(obj)
    return obj


def scrub_text(text: str) -> str:
    """``text`` without secrets: the values of secret environment variables, every registered secret value
    (:func:`register_secret`) and the credentials of any URL."""
    if not isinstance(text, str) or not text:
        return text
    values = set(_SECRET_VALUES)
    for key, value in os.environ.items():
        if value and len(value) >= 8 and SECRET_KEY_RE.search(key):
            values.add(value)
    for value in sorted(values, key=len, reverse=True):  # longest first: a value may contain another
        if value in text:
            text = text.replace(value, REDACTED)
    if "@" in text:
        text = URL_USERINFO_RE.sub(lambda m: m.group("scheme") + REDACTED + "@", text)
    return text


def reraise_scrubbed(err: BaseException) -> None:
    """Re-raise ``err`` without secret values in its message (if it had any); returns when it has none."""
    msg = scrub_text(str(err))
    if msg != str(err):
        try:
            clean = type(err)(msg)
        except Exception:  # noqa: BLE001 - an exception class that takes other arguments
            clean = RuntimeError(f"{type(err).__name__}: {msg}")
        raise clean from None


def check_secrets(cfg: Any) -> None:
    """Refuse credentials where they would be saved with the run: a URL with ``user:password@`` and an
    ``*_env`` key whose value is not an environment variable name. Neither message echoes the value."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=False)

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                where = f"{path}.{k}" if path else str(k)
                if bad_env_name(k, v):
                    register_secret(v)
                    raise ValueError(
                        f"{where} must be the NAME of an environment variable (letters, digits and _, like "
                        f"OPENAI_API_KEY), not a key: the value given is not one, or has the shape of a "
                        f"token, and is not shown. Put the key in the environment (export MY_KEY=...) and "
                        f"set {where}=MY_KEY."
                    )
                walk(v, where)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, str) and url_query_secrets(obj):
            found = url_query_secrets(obj)
            for _, value in found:
                register_secret(value)
            raise ValueError(
                f"{path}: a URL carrying a key in its query ({', '.join(n + '=...' for n, _ in found)}) is "
                f"refused: it would be saved with the run and logged. Give the key through the environment "
                f"variable an api_key_env key names."
            )
        elif isinstance(obj, str) and URL_USERINFO_RE.search(obj):
            _register_in_string(obj)
            raise ValueError(
                f"{path}: a URL with credentials (user:password@host) is refused: they would be saved with "
                f"the run and logged. Give the URL without them and the key through the environment "
                f"variable an api_key_env key names (e.g. api_key_env=OPENAI_API_KEY)."
            )

    walk(cfg, "")


class _ScrubbingStream:
    """A text stream that scrubs secrets (:func:`scrub_text`) from everything written through it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(scrub_text(text) if isinstance(text, str) else text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_GUARDED = False


def guard_process_output(argv: list[str] | None = None) -> None:
    """Keep secrets off the screen and out of log files for the rest of the process: register those in the
    command line (before Hydra parses it: its own errors echo overrides), scrub every log record (whatever
    handler Hydra configures later) and everything written to stdout and stderr."""
    global _GUARDED
    import sys

    register_secrets(list(sys.argv[1:] if argv is None else argv))
    if _GUARDED:
        return
    _GUARDED = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: leave it to the handler to report
            return record
        clean = scrub_text(message)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if scrub_text(text) != text:  # the traceback text would show the secret: keep the type only
                record.msg = f"{clean} ({type(record.exc_info[1]).__name__}: {scrub_text(text)})"
                record.exc_info, record.exc_text = None, None
        return record

    logging.setLogRecordFactory(factory)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ScrubbingStream):
            setattr(sys, name, _ScrubbingStream(stream))


@contextlib.contextmanager
def argv_redacted():
    """``sys.argv`` with its secrets redacted for the duration (wandb records the command line when its run
    starts), restored afterwards: a DDP launcher re-runs ``sys.argv`` for the other ranks."""
    import sys

    saved = list(sys.argv)
    sys.argv[1:] = [redact(a) for a in saved[1:]]
    try:
        yield
    finally:
        sys.argv[:] = saved


def wandb_mode(configured: str | None) -> str:
    """Offline by default; online when a key is set; ``WANDB_MODE`` or the config decide otherwise."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def wandb_section(cfg: Any) -> Mapping[str, Any]:
    """The one place every entry's wandb settings live: ``logger.wandb`` (``{}`` when absent)."""
    logger = cfg.get("logger") if hasattr(cfg, "get") else None
    section = logger.get("wandb") if logger else None
    return section or {}


def wandb_init_kwargs(wcfg: Mapping[str, Any], out: str | os.PathLike, *, config: Any, **fields: Any) -> dict:
    """The keyword arguments of ``wandb.init`` for a cj2 run, whichever entry: the config redacted, the
    mode resolved (:func:`wandb_mode`), the files in the run folder, and nothing recorded that may hold a
    secret: no code, no git state (a remote URL may carry a token), the command line redacted first."""
    import wandb

    return dict(
        project=wcfg.get("project", "cj2"),
        entity=wcfg.get("entity"),
        mode=wandb_mode(wcfg.get("mode")),
        dir=str(out),
        config=redact(to_plain(config)),
        settings=wandb.Settings(save_code=False, disable_code=True, disable_git=True),
        **fields,
    )


def start_wandb(cfg: Any, out: str | os.PathLike, *, config: Any, **fields: Any):
    """A wandb run for an entry (``wandb.init``) when ``logger.wandb.enabled``, else ``None``."""
    wcfg = wandb_section(cfg)
    if not wcfg.get("enabled", False):
        return None
    import wandb

    with argv_redacted():
        return wandb.init(**wandb_init_kwargs(wcfg, out, config=config, **fields))


@contextlib.contextmanager
def wandb_run(cfg: Any, out: str | os.PathLike, *, config: Any, **fields: Any):
    """:func:`start_wandb` as a ``with`` block: yields the run (``None`` when ``logger.wandb`` is off) and
    finishes it on leaving, also after an error. Every entry but training (Lightning's logger) logs so."""
    run = start_wandb(cfg, out, config=config, **fields)
    try:
        yield run
    finally:
        if run is not None:
            import wandb

            wandb.finish()


def log_summary(run: Any, summary: Mapping[str, Any]) -> None:
    """An entry's results in its wandb run: the numbers logged as one step, and every entry (the protocol
    strings too) set in the run's summary."""
    run.log({k: v for k, v in summary.items() if not isinstance(v, str)})
    for key, value in summary.items():
        run.summary[key] = value


def wandb_logger(cfg: Any, out: str | os.PathLike, *, config: Any, **fields: Any):
    """Lightning's WandbLogger for a training run, with :func:`wandb_init_kwargs`."""
    from lightning.pytorch.loggers import WandbLogger

    kwargs = wandb_init_kwargs(wandb_section(cfg), out, config=config, **fields)
    kwargs["save_dir"] = kwargs.pop("dir")
    logger = WandbLogger(**kwargs)
    with argv_redacted():
        logger.experiment  # noqa: B018 - start the run now (rank 0), while the command line is redacted
    return logger


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


def _atomic_checkpoint_io() -> type:
    # Lightning is imported here, not at the top: the entries that never train (evaluate, curate, refine, moj)
    # import this module and would otherwise pay seconds of start-up for it.
    from lightning.pytorch.plugins.io import TorchCheckpointIO

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
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except CHECKPOINT_LOAD_ERRORS as err:
                raise checkpoint_load_error(path, err) from None

    AtomicCheckpointIO.__module__ = __name__
    AtomicCheckpointIO.__qualname__ = "AtomicCheckpointIO"
    return AtomicCheckpointIO


def __getattr__(name: str) -> Any:
    """``AtomicCheckpointIO`` (a Lightning checkpoint plugin), built on first use: Lightning loads then."""
    if name == "AtomicCheckpointIO":
        cls = _atomic_checkpoint_io()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


CHECKPOINT_LOAD_ERRORS = (
    __import__("pickle").UnpicklingError,
    RuntimeError,
    EOFError,
    ValueError,
    AttributeError,
    ImportError,
    OSError,
)


def checkpoint_load_error(path: Any, err: BaseException) -> ValueError:
    """The error for a file ``torch.load(weights_only=True)`` refuses, naming the file, and never torch's
    advice to retry with ``weights_only=False`` (which would run whatever code the file carries)."""
    import pickle

    text = str(err).strip()
    if isinstance(err, pickle.UnpicklingError) and ("weights_only" in text or "global" in text.lower()):
        why = (
            "it holds objects other than tensors and plain data, which cj2 never unpickles "
            "(that could run code)"
        )
    else:
        first = text.splitlines()[0][:200] if text else ""
        why = f"{type(err).__name__}{': ' + first if first else ''}"
    return ValueError(f"checkpoint {path}: not a loadable checkpoint ({why})")


# ----------------------------------------------------------------------------------------- Hydra entries
HYDRA_SUBDIR = ".hydra"


def write_hydra_files(out: str | os.PathLike, task_cfg: Any, hydra_cfg: Any, overrides: Any) -> None:
    """Hydra's three record files (``config.yaml``, ``hydra.yaml``, ``overrides.yaml`` in ``.hydra/``),
    secrets redacted. cj2's configs turn Hydra's own writing off (``hydra.output_subdir: null``): it writes
    them unredacted, before cj2 sees the config."""
    from omegaconf import OmegaConf

    folder = Path(out) / HYDRA_SUBDIR
    for name, obj in (
        ("config.yaml", task_cfg),
        ("hydra.yaml", {"hydra": to_plain_unresolved(hydra_cfg)}),
        ("overrides.yaml", overrides),
    ):
        plain = to_plain_unresolved(obj)
        atomic_write_text(folder / name, OmegaConf.to_yaml(OmegaConf.create(redact(plain))))


def to_plain_unresolved(cfg: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=False)
    return cfg


def write_hydra_record(out: str | os.PathLike, task_cfg: Any) -> None:
    """:func:`write_hydra_files` for the Hydra run in progress (nothing outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:
        return
    write_hydra_files(out, task_cfg, hydra_cfg, list(hydra_cfg.overrides.task))


def _folder_is_new(out: Path) -> bool:
    """Nothing in ``out`` but Hydra's job log (just opened) and cj2's lock."""
    if not out.is_dir():
        return True
    return all(p.suffix == ".log" or p.name == ".cj2.lock" for p in out.iterdir())


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object


class HydraRunGuard(_HydraCallback):
    """Hydra callback of every cj2 entry (``hydra.callbacks.cj2_guard``): keeps secrets out of what Hydra
    writes and prints.

    * at the start: registers the secrets of the config and its overrides (scrubbed from every log record,
      stdout and stderr from then on);
    * each job: writes Hydra's ``.hydra/`` files redacted, into a new run folder only (a folder that holds a
      run keeps its first start's: a refused start must change nothing); where a user turned Hydra's own
      writing back on (``hydra.output_subdir=...``), rewrites them redacted;
    * a multirun: Hydra's basic sweeper saves the sweep's ``multirun.yaml`` redacted
      (:func:`redact_sweep_record`); another sweeper's is rewritten redacted at each job's start and the end;
    * each job's end: redacts the overrides Hydra prints in ``Error executing job with overrides: [...]``.

    ``record=false`` (an entry that writes no run folder, ``cj2.moj``): no ``.hydra/`` files are written.
    """

    def __init__(self, record: bool = True) -> None:
        self.record = bool(record)

    def _start(self, config: Any) -> None:
        register_secrets(to_plain_unresolved(config))
        guard_process_output([])

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._start(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._start(config)
        redact_sweep_record()

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        hydra_cfg = config.hydra
        out = Path(str(hydra_cfg.runtime.output_dir))
        register_secrets(list(hydra_cfg.overrides.task))
        task = {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}
        overrides = list(hydra_cfg.overrides.task)
        subdir = hydra_cfg.get("output_subdir")
        if subdir is not None:  # Hydra wrote its files unredacted: rewrite them
            folder = out / str(subdir)
            for name, obj in (("config.yaml", task), ("overrides.yaml", overrides)):
                atomic_write_text(folder / name, OmegaConf.to_yaml(OmegaConf.create(redact(obj))))
            hydra_plain = {"hydra": to_plain_unresolved(hydra_cfg)}
            atomic_write_text(folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create(redact(hydra_plain))))
        elif self.record and _folder_is_new(out):
            write_hydra_files(out, task, hydra_cfg, overrides)
        self._redact_multirun_file(config)

    def _redact_multirun_file(self, config: Any) -> None:
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        if config.hydra.get("mode") != RunMode.MULTIRUN:
            return
        sweep = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        if sweep.is_file():
            text = sweep.read_text(encoding="utf-8")
            clean = OmegaConf.to_yaml(
                OmegaConf.create(redact(OmegaConf.to_container(OmegaConf.create(text))))
            )
            if scrub_text(text) != text or clean != text:
                atomic_write_text(sweep, clean)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        job_return.overrides = redact(list(job_return.overrides or []))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._redact_multirun_file(config)


class _RedactingOmegaConf:
    """``OmegaConf`` as Hydra's basic sweeper module sees it (:func:`redact_sweep_record`): its one use there,
    ``OmegaConf.save(config, <sweep dir>/multirun.yaml)``, writes the config redacted; all else is
    OmegaConf's own."""

    def __getattr__(self, name: str) -> Any:
        from omegaconf import OmegaConf

        return getattr(OmegaConf, name)

    @staticmethod
    def save(config: Any, f: Any, resolve: bool = False) -> None:
        from omegaconf import OmegaConf

        plain = (
            OmegaConf.to_container(config, resolve=resolve)
            if not isinstance(config, (dict, list))
            else config
        )
        text = scrub_text(OmegaConf.to_yaml(OmegaConf.create(redact(plain))))
        if isinstance(f, (str, os.PathLike)):
            atomic_write_text(f, text)
        else:
            f.write(text)


def redact_sweep_record() -> None:
    """Make Hydra's basic sweeper (the default ``hydra/sweeper``) save the sweep's ``multirun.yaml`` with
    secrets redacted.

    It saves the whole config, the command line's overrides included, before the first job starts; rewriting
    the file afterwards (a job's start, the sweep's end) leaves the secret on disk in between, and for good
    when the sweep fails before any job runs (Hydra composes every job's config first: one bad override
    ends the sweep there). Hydra has no hook between composing the sweep and that write, and the config it
    saves is the one the jobs are built from, so it cannot be redacted in place: the module's name
    ``OmegaConf`` (used for nothing else there) is bound to :class:`_RedactingOmegaConf`. A Hydra release
    that saves otherwise is caught by tests/test_hostile_inputs.py (the secret would be found on disk)."""
    try:
        from hydra._internal.core_plugins import basic_sweeper
    except ImportError:  # pragma: no cover - a Hydra without it: the rewrite at each job's start remains
        return
    if not isinstance(getattr(basic_sweeper, "OmegaConf", None), _RedactingOmegaConf):
        basic_sweeper.OmegaConf = _RedactingOmegaConf()


def hydra_entry(config_name: str):
    """``@hydra.main`` for a cj2 entry, with secrets kept off the screen from the first line: the command
    line's secrets are registered (:func:`guard_process_output`) before Hydra parses it, so even Hydra's
    own errors about an override print it scrubbed."""
    import functools

    import hydra

    def decorate(task):
        hydra_main = hydra.main(version_base="1.3", config_path=CONF_MODULE, config_name=config_name)(task)

        @functools.wraps(task)
        def main(cfg_passthrough: Any = None) -> Any:
            if cfg_passthrough is not None:
                return hydra_main(cfg_passthrough)
            guard_process_output()
            return hydra_main()

        return main

    return decorate
