"""Who owns a training run's folder, and what a start may do to it.

* :class:`RunLock` -- one process trains in a run folder at a time. The lock is an ``flock`` on
  ``<run>/.cj2.lock`` (which holds the holder's PID and host, for the message a second process gets). The
  kernel releases an ``flock`` when its process dies, however it dies, so a lock file left by a killed run is
  found free and taken over (with a warning naming the dead PID); a PID check alone would trust a PID the
  system has since given to another process.
* :func:`claim` -- a fresh start never replaces a run: on a folder that holds one it is refused, with the
  three choices spelled out (``ckpt_path=last``, another ``run_name``, ``overwrite=true``, which moves the old
  run aside into ``<run>.replaced-<time>/``, deleting nothing).
* :func:`check_resume` -- a resume is checked against the checkpoint's run config (and the training data's
  content fingerprint) before anything is written, so a refused resume leaves the folder as it was.
* :class:`RunCSVLogger` -- Lightning's CSV logger deletes ``metrics.csv`` whenever it is created on a folder
  that has one; this one keeps the rows of the steps a resumed checkpoint already holds and flushes at every
  checkpoint, so a killed run's CSV ends where its checkpoint does.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import logging
import math
import os
import shutil
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".cj2.lock"


class RunFolderBusy(RuntimeError):
    """Another live process trains in this run folder."""


class RunFolderTaken(RuntimeError):
    """A fresh start on a folder that holds a run (or a resume that cannot be one)."""


def global_rank_from_env() -> int:
    """This process's rank as the launchers set it (0 when none did): only rank 0 owns the run folder."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value not in (None, ""):
            try:
                if var == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
                    continue
                return int(value)
            except ValueError:
                continue
    return 0


class RunLock:
    """An exclusive lock on a run folder for the life of this process's training in it."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @staticmethod
    def _holder(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> RunLock:
        import fcntl

        for _ in range(10):  # the file may be unlinked by its holder between our open and our flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                holder = self._holder(self.path)
                raise RunFolderBusy(
                    f"run folder {self.path.parent} is in use: another training holds its lock ({holder}). "
                    f"Wait for it to end, or give this run another run_name."
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a file its holder had just removed: try the new one
                os.close(fd)
                continue
            previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
            if previous:
                log.warning(
                    "run folder %s: took over the lock left by a process that no longer holds it (%s)",
                    self.path.parent,
                    previous,
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            stamp = _dt.datetime.now().isoformat(timespec="seconds")
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunFolderBusy(f"run folder {self.path.parent}: could not take its lock {self.path}")

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        try:
            self.path.unlink(missing_ok=True)  # while still held: a waiter re-checks the inode
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_contents(run_dir: str | os.PathLike) -> list[str]:
    """What in ``run_dir`` makes it hold a run: checkpoints, ``metrics.json``, the CSV log, an export."""
    out = Path(run_dir)
    if not out.is_dir():
        return []
    found = sorted(p.name for p in out.glob("*.ckpt"))
    found += [n for n in ("metrics.json", "csv/metrics.csv", "hf") if (out / n).exists()]
    return found


def move_aside(run_dir: Path) -> Path:
    """Move the run in ``run_dir`` into ``<run_dir>.replaced-<time>/`` (nothing deleted). Open log files
    (Hydra's ``<job>.log``, written to by this process) are copied there and emptied instead of moved."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    aside = run_dir.parent / f"{run_dir.name}.replaced-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.parent / f"{run_dir.name}.replaced-{stamp}-{n}"
    aside.mkdir(parents=True)
    for entry in sorted(run_dir.iterdir()):
        if entry.name == LOCK_FILE:
            continue
        if entry.is_file() and entry.suffix == ".log":
            shutil.copy2(entry, aside / entry.name)
            with open(entry, "r+b") as fh:
                fh.truncate(0)
            continue
        os.replace(entry, aside / entry.name)
    return aside


def claim(run_dir: Path, ckpt_path: Any, *, overwrite: bool) -> str | None:
    """Decide what this start does to ``run_dir`` and return the checkpoint to resume from (None: fresh).

    Fresh (``ckpt_path`` null) on a folder that holds a run: refused, or with ``overwrite=true`` the old run
    is moved aside first. ``ckpt_path=last``: ``last.ckpt`` of the folder, or a fresh start where the folder
    holds no run yet (a pre-emptible job's first start). A path: that checkpoint.
    """
    ckpt = None if ckpt_path in (None, "", "null", "None") else str(ckpt_path)
    if overwrite and ckpt is not None:
        raise RunFolderTaken(
            f"overwrite=true starts afresh and ckpt_path={ckpt!r} resumes: choose one (drop ckpt_path to "
            f"replace the run, or overwrite to continue it)"
        )
    found = run_contents(run_dir)
    if ckpt == "last":
        last = run_dir / "last.ckpt"
        if last.exists():
            return str(last)
        if not found:
            log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
            return None
        raise RunFolderTaken(
            f"ckpt_path=last: {run_dir} holds a run ({', '.join(found)}) but no last.ckpt to continue it "
            f"from. "
            f"{_choices(run_dir, resume=False)}"
        )
    if ckpt is not None:
        if not Path(ckpt).exists():
            raise FileNotFoundError(f"ckpt_path={ckpt!r} does not exist")
        inside = Path(ckpt).resolve().parent == run_dir.resolve()
        if found and not inside:
            raise RunFolderTaken(
                f"ckpt_path={ckpt!r} would start {run_dir}, which holds another run ({', '.join(found)}), "
                f"from an outside checkpoint. {_choices(run_dir)}"
            )
        return ckpt
    if found:
        if not overwrite:
            raise RunFolderTaken(f"{run_dir} already holds a run ({', '.join(found)}). {_choices(run_dir)}")
        aside = move_aside(run_dir)
        log.warning("overwrite=true: the run that was in %s is now in %s", run_dir, aside)
    return None


def _choices(run_dir: Path, resume: bool = True) -> str:
    first = "ckpt_path=last to continue it, " if resume else ""
    return (
        f"Choose: {first}another run_name for a new run, or overwrite=true to move the old run aside "
        f"(into {run_dir.name}.replaced-<time>/, nothing deleted) and start afresh."
    )


def read_checkpoint(path: str) -> tuple[dict[str, Any], int]:
    """The run config and global step stored in a checkpoint (``weights_only``: nothing but tensors and
    plain data is unpickled). A file that is not a cj2 checkpoint is an error naming it."""
    import torch

    from cj2.runtime import CHECKPOINT_LOAD_ERRORS, checkpoint_load_error

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except CHECKPOINT_LOAD_ERRORS as err:
        raise checkpoint_load_error(f"ckpt_path={path}", err) from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"ckpt_path {path}: not a Lightning checkpoint (a {type(ckpt).__name__})")
    run_config = ((ckpt.get("hyper_parameters") or {}).get("run_config")) or {}
    return run_config, int(ckpt.get("global_step", 0) or 0)


def data_fingerprint(files: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """``{"train_files": {path: sha256}, ...}`` of the data files (content, not just path): a resume
    compares it with the checkpoint's."""
    from cj2.data.io import file_sha256

    out: dict[str, dict[str, str]] = {}
    for key, paths in files.items():
        out[key] = {}
        for p in paths:
            try:
                out[key][str(p)] = file_sha256(p)
            except OSError:
                out[key][str(p)] = "<unreadable>"  # the reader reports it, naming the file
    return out


def check_resume(ckpt: str, current: dict[str, Any]) -> float:
    """Refuse (before anything is written) a resume whose config or training data differ from the
    checkpoint's in what is trained; the data by content, naming each file that changed. Returns the
    checkpoint's global step (``inf`` for a sharded checkpoint folder, which Lightning's strategy reads and
    the module checks as it loads)."""
    from cj2.module import IncompatibleResumeError, check_resume_compatible

    if Path(ckpt).is_dir():  # trainer.strategy.save_distributed_checkpoint=true: one shard per rank
        log.info("%s is a sharded checkpoint folder: its config is checked as it loads", ckpt)
        return math.inf
    saved, step = read_checkpoint(ckpt)
    if not saved:
        return step
    old = (saved.get("data") or {}).get("content")
    new = (current.get("data") or {}).get("content")
    changed = []
    if old is not None and new is not None:
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key) or {}, new.get(key) or {}
            for path in sorted(set(a) & set(b)):
                if a[path] != b[path]:
                    changed.append(f"  data.{key}: the content of {path} changed since the checkpoint")
    try:
        check_resume_compatible(saved, current)
    except IncompatibleResumeError as err:
        if changed:
            raise IncompatibleResumeError(f"{err}\n" + "\n".join(changed)) from None
        raise
    return step


def _csv_step(row: dict[str, str]) -> float | None:
    try:
        return float(row.get("step", ""))
    except ValueError:
        return None


class _KeepingWriter:
    """Mixed into Lightning's CSV experiment writer: keep (rather than delete) an existing metrics.csv."""

    resume_step: float | None = None  # None: a fresh start; inf: keep every row

    def _check_log_dir_exists(self) -> None:
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        if self.resume_step is None:  # a fresh start in a folder with no run (cj2 refuses the others)
            os.remove(path)
            return
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if (_csv_step(r) is None or _csv_step(r) < self.resume_step)]
        # rows of steps after the checkpoint (flushed before a kill) are trained again: drop them
        import io

        from cj2.data.io import atomic_write_text

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())
        self.metrics_keys = sorted(keys)


def run_csv_logger(save_dir: str, resume_step: float | None):
    """Lightning's CSVLogger (``<run>/csv/metrics.csv``) that keeps the rows of a resumed run's earlier
    steps (those before ``resume_step``) and saves them at every checkpoint."""
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class Writer(_KeepingWriter, ExperimentWriter):
        pass

    Writer.resume_step = resume_step

    class RunCSVLogger(CSVLogger):
        @property
        def experiment(self):
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = Writer(log_dir=self.log_dir)
            return self._experiment

        def after_save_checkpoint(self, checkpoint_callback) -> None:
            self.save()  # the rows up to a checkpoint are on disk with it

    return RunCSVLogger(save_dir=save_dir, name="csv", version="")
