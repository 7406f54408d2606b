"""Output folders checked at start-up: a run that cannot write its results fails before any work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import UserError


class OutputFolderError(UserError, OSError):
    """An output folder that cannot be created or written. Names the folder."""


def require_writable(*folders: str | os.PathLike) -> None:
    """Create each folder and write (then remove) a probe file in it; raise :class:`OutputFolderError`
    naming the first folder that fails."""
    for folder in folders:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise OutputFolderError(f"{folder}: output folder is not writable ({e.strerror or e}); "
                                    "fix its permissions or choose another hydra.run.dir") from None
