"""HSV colour gains (YOLOv7's ``hsv_h/s/v``).

Hand-written: the official augmentation multiplies H, S and V by gains ``U(-1,1)*g + 1`` through
lookup tables; ``albumentations.HueSaturationValue`` adds shifts instead and ``ColorJitter`` uses
different (PIL) semantics, so neither reproduces the hyps.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """uint8 [h,w,3] RGB -> same, hue/saturation/value multiplied by random gains (hue wraps at 180)."""
    if not (hgain or sgain or vgain):
        return img
    r = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    h, s, v = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
