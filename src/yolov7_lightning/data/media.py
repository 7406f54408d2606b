"""Prediction sources beyond single images: video files, folders that mix images and videos, live
streams or webcams (whatever OpenCV's ``VideoCapture`` can open), and image sequences (numbered
frames ``frames/%06d.jpg``, or a folder of frames), read frame by frame."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from ..errors import MissingInputError, UserError
from .image_io import IMAGE_SUFFIXES, ImageLoadError, decode_image

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")
FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}  # codecs OpenCV's own writer has
DEFAULT_FPS = 30.0  # the frame rate of a source that does not say (a stream without it, an image sequence)
NUMBER = re.compile(r"%(0?)(\d*)d")  # the printf number of an image-sequence pattern (%d, %06d)


class MediaError(UserError):
    """A video or stream that cannot be opened or written; the message names it."""


def is_stream(source: str | int) -> bool:
    """A webcam index (``0``) or a network stream address."""
    text = str(source)
    return text.isdigit() or text.lower().startswith(STREAM_PREFIXES)


def media_files(source: str | Path) -> tuple[list[Path], list[Path]]:
    """(images, videos) of a file or a folder (searched recursively, sorted)."""
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return [], [path]
        return [path], []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        if images or videos:
            return images, videos
        kinds = ", ".join(sorted({*IMAGE_SUFFIXES, *VIDEO_SUFFIXES}))
        raise UserError(f"{path}: no images or videos ({kinds}) in this folder")
    raise MissingInputError(f"source not found: {path}")


def open_capture(source: str | Path | int) -> tuple[cv2.VideoCapture, float]:
    """An opened ``VideoCapture`` and its frame rate (:data:`DEFAULT_FPS` when the source does not say)."""
    text = str(source)
    capture = cv2.VideoCapture(int(text) if text.isdigit() else text)
    if not capture.isOpened():
        raise MediaError(f"{source}: OpenCV cannot open this video or stream")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if fps and fps > 0 else DEFAULT_FPS


def read_frames(capture: cv2.VideoCapture, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames ``[H, W, 3]`` until the source ends (or ``max_frames``); releases it."""
    try:
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = capture.read()
            if not ok:
                return
            n += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


class VideoOut:
    """An annotated video written frame by frame (opened at the first frame's size). Containers
    without a codec in OpenCV's own writer are written as ``.mp4``."""

    def __init__(self, path: Path, fps: float):
        self.path = path if path.suffix.lower() in FOURCC else path.with_suffix(".mp4")
        self.fps, self.writer, self.frames, self._temp = fps, None, 0, None

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None:
            self._temp = atomic_path(self.path)  # written beside it, renamed by close()
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self._temp.__enter__()), fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self.writer.isOpened():
                raise MediaError(f"{self.path}: OpenCV cannot write this video")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file (``keep=False``: discard it, e.g. after an error; an earlier file stays)."""
        if self.writer is not None:
            self.writer.release()
            self.writer, temp, self._temp = None, self._temp, None
            if keep:
                temp.__exit__(None, None, None)
            else:
                temp.__exit__(RuntimeError, RuntimeError("discarded"), None)


def is_sequence(source: str | Path) -> bool:
    """A printf pattern of numbered frames in the file name: ``frames/%06d.jpg``, ``img_%d.png``."""
    return len(NUMBER.findall(Path(str(source)).name)) == 1


def _natural(path: Path) -> list:
    """Sort key: numbers in the name compare as numbers (``frame2`` before ``frame10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def sequence_files(source: str | Path, folder: bool = False) -> list[Path]:
    """The frames of an image sequence in order: the files a printf ``pattern`` matches
    (``frames/%06d.jpg``: ``000000.jpg``, ``000001.jpg``, ... by number), or with ``folder`` the
    images of a folder (searched recursively) in natural name order. Gaps in the numbering are
    logged; no frame at all is a :class:`MediaError` naming the source."""
    source = Path(str(source))
    if folder:
        if not source.is_dir():
            raise MediaError(f"{source}: no such folder (as_video=true reads a folder of frames)")
        files = sorted((p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: _natural(p.relative_to(source)))
        if not files:
            raise MediaError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder of frames")
        return files
    (zero, width), = NUMBER.findall(source.name)
    parts = NUMBER.split(source.name, maxsplit=1)  # head, zero, width, tail
    head, tail = parts[0], parts[-1]
    digits = rf"\d{{{width}}}" if zero and width else r"\d+"
    rule = re.compile(re.escape(head) + f"({digits})" + re.escape(tail) + "$")
    folder_path = source.parent
    numbered = sorted((int(m.group(1)), p) for p in (folder_path.iterdir() if folder_path.is_dir() else ())
                      if p.is_file() and (m := rule.match(p.name)))
    if not numbered:
        raise MediaError(f"{source}: no file matches this image sequence "
                         "(numbered frames, e.g. 000000.jpg for %06d.jpg)")
    first, last = numbered[0][0], numbered[-1][0]
    if last - first + 1 != len(numbered):
        have = {n for n, _ in numbered}
        missing = [n for n in range(first, last + 1) if n not in have]
        log.warning("%s: %d frame number(s) missing between %d and %d (first: %d); the frames are read in order",
                    source, len(missing), first, last, missing[0])
    return [p for _, p in numbered]


def read_sequence(files: list[Path], max_frames: int | None = None,
                  skipped: list[str] | None = None) -> Iterator[tuple[np.ndarray, Path]]:
    """(RGB uint8 frame, its file) in order (up to ``max_frames``). A frame that cannot be decoded is
    skipped with a warning naming it, and its message appended to ``skipped``."""
    n = 0
    for path in files:
        if max_frames is not None and n >= max_frames:
            return
        try:
            frame = decode_image(path)
        except (ImageLoadError, OSError) as e:
            message = str(e) if str(path) in str(e) else f"{path}: {e}"
            log.warning("skipped %s", message)
            if skipped is not None:
                skipped.append(message)
            continue
        n += 1
        yield frame, path
