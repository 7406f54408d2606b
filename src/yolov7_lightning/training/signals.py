"""A run stopped by SIGTERM or SIGINT ends with a non-zero status and says how to resume.

During ``fit`` Lightning turns SIGTERM into ``SIGTERMException`` (a ``SystemExit`` without a code:
status 0) at the end of the current batch, and Ctrl-C into ``sys.exit(1)``, both without a word.
:class:`StopSignal` records which one stopped the run; :func:`stop_line` is the line the command
prints before it exits with ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT), the status a
shell gives a process the signal ended. Nothing is saved mid-epoch: ``checkpoints/last.ckpt`` (written
after every epoch) is what ``ckpt_path=auto`` resumes from. Lightning's SLURM requeue (SIGUSR1: an
``hpc_ckpt_<n>.ckpt`` and ``scontrol requeue``) is left as it is.
"""

from __future__ import annotations

import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException


class StopSignal(Callback):
    """Records the signal (``signum``) that interrupted ``fit``, if one did."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self.signum = signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.signum = signal.SIGINT


def stop_line(signum: int, out_dir: str | Path, epoch: int, max_epochs: int) -> str:
    """What a stopped run prints: the signal, where it stopped, and what resumes it."""
    last = Path(out_dir) / "checkpoints" / "last.ckpt"
    where = f"stopped by {signal.Signals(signum).name} in epoch {epoch + 1} of {max_epochs}"
    if not last.is_file():
        return f"{where}; no epoch was completed, so there is no checkpoint to resume from (run it again)"
    return (f"{where}; {last} holds the last completed epoch: resume with the same command and "
            f"ckpt_path=auto hydra.run.dir={out_dir}")
