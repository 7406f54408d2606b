"""Reading image files: a cheap header probe at start-up, full decoding in the workers, and the
optional decoded-image cache.

Decoded images are always uint8 HxWx3 **RGB**, EXIF orientation applied (what viewers and
annotation tools show): grayscale is expanded to 3 channels, alpha is dropped, 16-bit is scaled
to 8 bit (>> 8).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 274
TOO_LARGE = "image over PIL's pixel limit (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)"


class ImageProblem(Exception):
    """Why an image file cannot be used (the message is the reason, the caller adds the path)."""


class ImageLoadError(RuntimeError):
    """An image that passed the start-up probe failed to decode later. Names the file."""


def probe_image(path: Path) -> tuple[int, int]:
    """(height, width) after EXIF orientation, reading only the header; raises :class:`ImageProblem`.
    An image of more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` is one (PIL refuses twice that many)."""
    if not path.is_file():
        raise ImageProblem("missing image file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise ImageProblem(TOO_LARGE)
            fmt = im.format
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Image.DecompressionBombError:
        raise ImageProblem(TOO_LARGE) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageProblem(f"corrupt or unreadable image ({type(e).__name__})") from None
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(-2, 2)
            if f.read() != b"\xff\xd9":
                raise ImageProblem("truncated JPEG (no end-of-image marker)")
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return height, width


def decode_image(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB; raises :class:`ImageLoadError` naming the file."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation, 3 channels, 8 bit
    if img is None:
        raise ImageLoadError(f"{path}: cannot decode image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_to_fit(img: np.ndarray, size_hw: tuple[int, int], augment: bool) -> np.ndarray:
    """Scale so the image fits in ``size_hw`` touching one side (the official ``load_image``).

    INTER_AREA when shrinking without augmentation, INTER_LINEAR otherwise.
    """
    h0, w0 = img.shape[:2]
    r = min(size_hw[0] / h0, size_hw[1] / w0)
    if r == 1:
        return img
    new = (max(1, round(w0 * r)), max(1, round(h0 * r)))
    if new == (w0, h0):
        return img
    interp = cv2.INTER_AREA if r < 1 and not augment else cv2.INTER_LINEAR
    return cv2.resize(img, new, interpolation=interp)


class ImageCache:
    """Decoded, resized images kept in RAM up to ``max_bytes`` (filled in order, then frozen).

    Filled in the main process before the DataLoader workers start, so forked workers share the
    pages; with ``max_bytes == 0`` it is disabled.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.images: dict[int, np.ndarray] = {}
        self.full = self.max_bytes <= 0

    def get(self, index: int) -> np.ndarray | None:
        return self.images.get(index)

    def put(self, index: int, img: np.ndarray) -> bool:
        if self.full or self.nbytes + img.nbytes > self.max_bytes:
            self.full = True
            return False
        self.images[index] = img
        self.nbytes += img.nbytes
        return True

    def __len__(self) -> int:
        return len(self.images)
