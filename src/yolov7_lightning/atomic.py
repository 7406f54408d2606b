"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``; a crash never
leaves a truncated checkpoint, report or JSON behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it to ``path``. A write the
    disk refuses (full, quota, file-size limit) raises the OSError naming ``path``, also where the
    writer reported it otherwise (``torch.save`` turns it into a RuntimeError)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    f = None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; the file gets the mode open() would give
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as raw:
            f = _Remembering(raw)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        error = e if isinstance(e, OSError) else getattr(f, "error", None)
        if error is not None and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from e
        raise
    return path


class _Remembering:
    """A file whose first OSError on write or flush is kept (``error``)."""

    def __init__(self, file: IO):
        self._file, self.error = file, None

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def _remember(self, call, *args):
        try:
            return call(*args)
        except OSError as e:
            self.error = self.error or e
            raise

    def write(self, data):
        return self._remember(self._file.write, data)

    def flush(self):
        return self._remember(self._file.flush)


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: str | os.PathLike, **dump_kwargs: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, **dump_kwargs), binary=False)
