"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``; a crash or a full
disk never leaves a truncated checkpoint, report, image or JSON behind (the previous file stays as it
was, and the temp file is removed). Every file the project writes goes through here."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import torch


@contextmanager
def atomic_open(path: str | os.PathLike, binary: bool = True, newline: str | None = None) -> Iterator[IO]:
    """A file to write ``path`` through (text: UTF-8): a temp file beside it, renamed to ``path``
    when the ``with`` block ends without an exception, removed otherwise. A write the disk refuses (full,
    quota, file-size limit) raises the OSError naming ``path``, also where the writer reported it
    otherwise (``torch.save`` turns it into a RuntimeError)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    f = None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; the file gets the mode open() would give
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": newline})) as raw:
            f = _Remembering(raw)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        error = e if isinstance(e, OSError) else getattr(f, "error", None)
        if error is not None and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from e
        raise


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` (same suffix) for writers that take a file name (video, TorchScript);
    renamed to ``path`` when the ``with`` block ends without an exception, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A temp folder beside ``path`` to fill with many files (a generated dataset), renamed to ``path``
    when the ``with`` block ends without an exception and removed otherwise: ``path`` appears complete
    or not at all. When another process renamed its own ``path`` first, that one is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished first (a non-empty folder cannot be replaced)
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it to ``path``."""
    with atomic_open(path, binary=binary) as f:
        write(f)
    return Path(path)


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


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: str | os.PathLike, **dump_kwargs: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, **dump_kwargs), binary=False)


def atomic_save_onnx(proto: Any, path: str | os.PathLike) -> Path:
    """An ``onnx.ModelProto`` as one self-contained file (no external data: every variant's graph is
    far below protobuf's 2 GB limit, and a single file is replaced in one rename)."""
    return atomic_write(path, lambda f: f.write(proto.SerializeToString()))


def atomic_save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """A matplotlib figure, in the format of ``path``'s suffix."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))
