"""Prediction sources beyond single images: video files, folders that mix images and videos, and
live streams or webcams (whatever OpenCV's ``VideoCapture`` can open), read frame by frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from ..errors import MissingInputError, UserError
from .image_io import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")
FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}  # codecs OpenCV's own writer has


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
    """An opened ``VideoCapture`` and its frame rate (30 when the source does not say)."""
    text = str(source)
    capture = cv2.VideoCapture(int(text) if text.isdigit() else text)
    if not capture.isOpened():
        raise MediaError(f"{source}: OpenCV cannot open this video or stream")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if fps and fps > 0 else 30.0


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
