"""One run per folder: a training run claims its Hydra run folder, keeps it locked while it writes
there, and never replaces the results of another run.

* :func:`claim` (rank 0 only): an exclusive ``fcntl.flock`` on ``<run>/.run.lock`` for the whole run
  (a second run into the same folder stops at once, naming the holder's pid), then the guard: a
  folder holding results (:data:`RESULTS`) is refused unless the run resumes it (``ckpt_path=auto``
  or a ``ckpt_path`` inside the folder) or ``overwrite=true`` (the earlier results are deleted
  first). Resuming wins over ``overwrite``: a requeued job given both keeps its progress.
* :class:`ClaimBeforeHydraWrites`: a Hydra callback that claims the folder of a single run before
  Hydra writes ``.hydra/`` into it, so a refused run leaves the earlier run's ``.hydra/`` as it was
  (multirun jobs are claimed by ``run()`` itself, in their own sub-folders).
* :func:`finished_run`: the stored ``metrics.json`` of a folder whose run already finished with at
  least the epochs now asked for (a finished run resumed stays finished instead of training again).
  A run's ``metrics.json`` holds ``finished: true`` and ``max_epochs``, the ``trainer.max_epochs`` it
  was given (an early stop or a time budget ends it before, by its own rule).

DDP ranks other than 0 (``RANK``, ``LOCAL_RANK``, ``NODE_RANK`` or ``SLURM_PROCID`` non-zero) run in
the folder rank 0 claimed and do none of this.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hydra.experimental.callback import Callback

from ..cli.output import OutputFolderError, require_writable
from .cluster import AUTO

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
METRICS = "metrics.json"
RESULTS = (METRICS, "checkpoints/*.ckpt", "hpc_ckpt_*.ckpt")  # what a run leaves that another must not replace
RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")

_held: dict[str, int] = {}  # folder -> descriptor of its lock file, for the folders this process holds


class RunFolderError(OutputFolderError):
    """A run folder another run holds (its results, or its lock). Names the folder."""


def secondary_rank() -> bool:
    """True in a DDP process other than rank 0 (started by Lightning's launcher, torchrun or srun)."""
    return any(os.environ.get(k, "0").strip() not in ("", "0") for k in RANK_VARS)


def results_in(folder: str | os.PathLike) -> list[Path]:
    """The files of :data:`RESULTS` in ``folder``."""
    folder = Path(folder)
    return sorted(p for pattern in RESULTS for p in folder.glob(pattern) if p.is_file())


def resumes(folder: str | os.PathLike, ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` (as configured) continues the run of ``folder``."""
    if not ckpt_path:
        return False
    if ckpt_path == AUTO:
        return True
    inside = Path(os.path.abspath(ckpt_path))
    return Path(os.path.abspath(folder)) in inside.parents


def _lock(folder: Path) -> int:
    """Hold the exclusive lock of ``folder`` (its descriptor), or raise :class:`RunFolderError`."""
    require_writable(folder)  # a folder that cannot be written: the one line every output folder gets
    path = folder / LOCK_NAME  # a lock, not an output: it must stay the same file while held
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderError(f"{folder}: cannot lock the run folder ({e.strerror or e})") from None
        raise RunFolderError(f"{folder}: another run is writing there (pid {holder}); wait for it to end or "
                             "choose another hydra.run.dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release(folder: str | os.PathLike) -> None:
    """Let go of the lock of ``folder`` if this process holds it."""
    fd = _held.pop(os.path.abspath(folder), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def acquire(folder: str | os.PathLike, ckpt_path: str | None, overwrite: bool) -> None:
    """Lock ``folder`` and apply the guard (see the module docstring); nothing on ranks other than 0,
    nothing when this process holds the folder already."""
    key = os.path.abspath(folder)
    if secondary_rank() or key in _held:
        return
    folder = Path(key)
    fd = _lock(folder)
    try:
        found = results_in(folder)
        if found and not resumes(folder, ckpt_path):
            names = ", ".join(str(p.relative_to(folder)) for p in found)
            if not overwrite:
                raise RunFolderError(f"{folder} holds the results of another run ({names}); resume it with "
                                     "ckpt_path=auto, choose another hydra.run.dir, or overwrite=true")
            for p in found:
                p.unlink()
            # printed: a single run gets here before Hydra has set up logging
            print(f"overwrite=true: deleted the results of the earlier run in {folder} ({names})", file=sys.stderr,
                  flush=True)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    _held[key] = fd


@contextmanager
def claim(folder: str | os.PathLike, ckpt_path: str | None, overwrite: bool) -> Iterator[None]:
    """:func:`acquire` ``folder`` for the ``with`` block (or keep the claim :class:`ClaimBeforeHydraWrites`
    made), then :func:`release` it."""
    acquire(folder, ckpt_path, overwrite)
    try:
        yield
    finally:
        release(folder)


def finished_run(folder: str | os.PathLike, max_epochs: int) -> dict[str, Any] | None:
    """The stored metrics of the run in ``folder`` when it finished given at least ``max_epochs``
    (a ``metrics.json`` written before the ``finished`` marker: trained at least ``max_epochs``),
    else None."""
    path = Path(folder) / METRICS
    if not path.is_file() or not (Path(folder) / "checkpoints" / "last.ckpt").is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); the run is treated as not finished", path, e)
        return None
    if not isinstance(stored, dict):
        return None
    planned = stored.get("max_epochs") if stored.get("finished") is True else None
    done = planned if isinstance(planned, int) else stored.get("epochs")
    return stored if isinstance(done, int) and done >= max_epochs else None


class ClaimBeforeHydraWrites(Callback):
    """Claim a single run's folder before Hydra writes ``.hydra/`` and the log file into it; a refusal
    prints its one line and exits with status 1 (``HYDRA_FULL_ERROR=1``: the traceback)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        try:
            acquire(config.hydra.run.dir, config.ckpt_path, config.overwrite)
        except RunFolderError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(1)

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        release(config.hydra.run.dir)
