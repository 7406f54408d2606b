"""What a job needs on a cluster: ``ckpt_path=auto`` (a requeued job resumes from its own folder) and
the submitit logs reachable from the job's folder.

* :func:`resolve_ckpt_path`: ``auto`` -> the newest of the job folder's ``checkpoints/last.ckpt``
  (written after every epoch) and Lightning's ``hpc_ckpt_<n>.ckpt`` (written by its SLURM SIGUSR1
  handler, when it is the one that requeues), or ``None`` (a fresh start) when there is neither.
* :func:`link_submitit_logs`: under a submitit launcher, a ``submitit`` link in the job's folder to
  the submitit folder of this job (its ``.out`` / ``.err`` logs and the pickled job).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

AUTO = "auto"


def resolve_ckpt_path(value: str | None, out_dir: str | Path) -> str | None:
    """The checkpoint to resume from: ``value`` as given, or for ``auto`` the job folder's newest
    resume checkpoint (``None``: none yet, train from scratch)."""
    if value != AUTO:
        return value
    out_dir = Path(out_dir)
    found = [p for p in [out_dir / "checkpoints" / "last.ckpt", *out_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    if not found:
        log.info("ckpt_path=auto: no checkpoints/last.ckpt in %s, starting fresh", out_dir)
        return None
    path = max(found, key=lambda p: p.stat().st_mtime)
    log.info("ckpt_path=auto: resuming from %s", path)
    return str(path)


def link_submitit_logs(out_dir: str | Path) -> Path | None:
    """Under submitit (``SUBMITIT_FOLDER`` set in the job): link ``<out_dir>/submitit`` to this job's
    submitit folder; returns the link (``None`` outside submitit)."""
    if not os.environ.get("SUBMITIT_FOLDER"):
        return None
    import submitit

    folder = submitit.JobEnvironment().paths.folder.resolve()
    link = Path(out_dir) / "submitit"
    if link.is_symlink() and link.resolve() == folder:
        return link
    if link.is_symlink():
        link.unlink()  # a requeued job: the new submission's folder
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(folder, link.parent), target_is_directory=True)
    return link
