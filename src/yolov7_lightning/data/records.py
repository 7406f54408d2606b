"""The in-memory form of a labelled dataset, independent of its file format.

Every reader (COCO JSON, YOLO text, the shapes generator through its COCO JSON) produces a
:class:`DatasetIndex`: one :class:`ImageRecord` per usable image, the class names, the map from
contiguous class ids back to the original category ids, and a :class:`LoadReport` that counts
everything skipped or repaired so it can be reported once at start-up.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)


class DatasetError(UserError):
    """A dataset that cannot be used at all (bad JSON, duplicate ids, no images...). Names the file."""


@dataclass
class ImageRecord:
    """One image and its labels, in pixels of the original (EXIF-oriented) image.

    boxes: float32 [n, 4] xyxy; classes: int64 [n] contiguous ids; segments: one float32 [k, 2]
    polygon (xy pixels) per box, ``k == 0`` when the box has no polygon; crowd_*: ``iscrowd``
    regions, never used as training targets, kept for evaluation.
    """

    image_id: int
    path: Path
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    segments: list[np.ndarray]
    crowd_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    crowd_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def has_segments(self) -> bool:
        return any(len(s) >= 3 for s in self.segments)


class LoadReport:
    """Counts skipped/repaired items by reason, with the first few examples, for one summary line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.skipped: Counter[str] = Counter()
        self.repaired: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def _note(self, counter: Counter, reason: str, where: str) -> None:
        counter[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(where)

    def skip(self, reason: str, where: str) -> None:
        """Something (an image, an annotation) was left out; ``where`` names the file/item."""
        self._note(self.skipped, reason, where)

    def repair(self, reason: str, where: str) -> None:
        """Something was kept after a safe repair (e.g. a box clipped to the image)."""
        self._note(self.repaired, reason, where)

    @property
    def clean(self) -> bool:
        return not self.skipped and not self.repaired

    def summary(self) -> str:
        if self.clean:
            return f"{self.source}: no problems found"
        parts = [f"{self.source}:"]
        for kind, counter in (("skipped", self.skipped), ("repaired", self.repaired)):
            for reason, n in counter.most_common():
                parts.append(f"  {kind} {n} x {reason} (e.g. {', '.join(self.examples[reason])})")
        return "\n".join(parts)

    def log_once(self) -> None:
        if not getattr(self, "_logged", False):
            self._logged = True
            (log.info if self.clean else log.warning)(self.summary())


@dataclass
class DatasetIndex:
    """All usable images of one split plus the class mapping.

    ``category_ids[c]`` is the original (e.g. COCO) category id of contiguous class ``c``.
    """

    records: list[ImageRecord]
    names: list[str]
    category_ids: list[int]
    report: LoadReport
    annotation_file: Path | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def has_segments(self) -> bool:
        return any(r.has_segments for r in self.records)

    def sizes_hw(self) -> np.ndarray:
        """int64 [n, 2] original (height, width) per record."""
        return np.array([(r.height, r.width) for r in self.records], dtype=np.int64).reshape(-1, 2)

    def require_images(self, where: str) -> None:
        if not self.records:
            extra = f" ({sum(self.report.skipped.values())} skipped)" if self.report.skipped else ""
            raise DatasetError(f"{where}: empty dataset, no usable images{extra}\n{self.report.summary()}")


CLIPPED = "bbox partly outside the image, clipped"  # the repair every reader counts


def box_problem(box: np.ndarray, height: int, width: int) -> tuple[str | None, np.ndarray]:
    """Check one xyxy box against its image: (reason to skip or None, clipped box).

    NaN/inf, w or h <= 0 and boxes wholly outside the image are skipped; a box partly outside is
    clipped (the caller counts it as a repair when the returned box differs).
    """
    if not np.all(np.isfinite(box)):
        return "bbox with NaN or inf", box
    if box[2] <= box[0] or box[3] <= box[1]:
        return "bbox with w or h <= 0", box
    clipped = np.array([np.clip(box[0], 0, width), np.clip(box[1], 0, height),
                        np.clip(box[2], 0, width), np.clip(box[3], 0, height)], np.float32)
    if clipped[2] - clipped[0] < 1e-3 or clipped[3] - clipped[1] < 1e-3:
        return "bbox outside the image", box
    return None, clipped


@dataclass
class Labelled:
    """A working image with labels in its own pixels: img uint8 [h,w,3] RGB, boxes xyxy [n,4],
    classes [n], segments one [k,2] polygon per box (``k == 0``: none)."""

    img: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    segments: list[np.ndarray]

    def shifted(self, dx: float, dy: float) -> "Labelled":
        """Labels moved by (dx, dy) px (image unchanged)."""
        d = np.array([dx, dy], np.float32)
        return Labelled(self.img, self.boxes + np.tile(d, 2), self.classes, [s + d for s in self.segments])


def single_class(index: DatasetIndex) -> DatasetIndex:
    """Every box (crowd regions too) as class 0: the official ``--single-cls``. The class is named
    after the dataset's only class when it has one, else ``item`` (the official name); evaluation
    then reads the ground truth from these records (one category, id 1)."""
    import dataclasses

    name = index.names[0] if len(index.names) == 1 else "item"
    records = [dataclasses.replace(r, classes=np.zeros_like(r.classes), crowd_classes=np.zeros_like(r.crowd_classes))
               for r in index.records]
    return DatasetIndex(records, [name], [1], index.report, annotation_file=None)
