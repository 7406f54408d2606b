"""Draw detections on an image (PIL): one colour per class, a ``"name score"`` label per box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_detections", "class_color"]

_PALETTE = (  # 20 well-separated colours (RGB); classes beyond 20 cycle
    (255, 56, 56), (72, 249, 10), (0, 194, 255), (255, 157, 151), (255, 112, 31), (146, 204, 23),
    (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (52, 69, 147), (100, 115, 255),
    (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255), (255, 149, 200), (255, 55, 199),
    (207, 210, 49), (255, 178, 29),
)


def class_color(cls: int) -> tuple[int, int, int]:
    """RGB colour of class ``cls``."""
    return _PALETTE[int(cls) % len(_PALETTE)]


def _to_hwc_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (or float in [0, 1]) ``HxWx3`` or ``3xHxW``, numpy or torch -> a uint8 HxWx3 copy."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim != 3 or 3 not in (arr.shape[0], arr.shape[-1]):
        raise ValueError(f"image must be HxWx3 or 3xHxW, got {arr.shape}")
    if arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32) * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def draw_detections(image: np.ndarray | torch.Tensor, detections: np.ndarray | torch.Tensor,
                    names: Sequence[str] | None = None, line_width: int | None = None,
                    scores: bool = True) -> np.ndarray:
    """Boxes and ``"name score"`` labels drawn on a copy of ``image``.

    Args:
        image: uint8 ``HxWx3`` (or ``3xHxW``; float in [0, 1] accepted), RGB.
        detections: ``[n, 6]`` x1, y1, x2, y2 (pixels of *this* image), score, class.
        names: class names; the class id is printed when missing.
        line_width: box line width; default scales with the image size.
        scores: print the score after the name (False for ground-truth boxes).

    Returns:
        uint8 ``HxWx3`` RGB array (the input is not modified).
    """
    canvas = Image.fromarray(_to_hwc_uint8(image))
    det = detections.detach().cpu().numpy() if isinstance(detections, torch.Tensor) else np.asarray(detections)
    det = det.reshape(-1, 6)
    w, h = canvas.size
    lw = line_width or max(1, round((w + h) / 2 * 0.003))
    font = ImageFont.load_default(size=max(10, lw * 5))
    draw = ImageDraw.Draw(canvas)
    for x1, y1, x2, y2, score, cls in det[np.argsort(det[:, 4])]:  # highest score drawn last (on top)
        cls = int(cls)
        color = class_color(cls)
        draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=color, width=lw)
        label = f"{names[cls] if names is not None and 0 <= cls < len(names) else cls}"
        label = f"{label} {score:.2f}" if scores else label
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left, bottom - top + 2
        ty = y1 - th - 1 if y1 - th - 1 >= 0 else y1  # above the box, else inside it
        draw.rectangle((x1, ty, x1 + tw + 2, ty + th + 1), fill=color)
        draw.text((x1 + 1, ty - top + 1), label, fill=(255, 255, 255), font=font)
    return np.asarray(canvas).copy()
