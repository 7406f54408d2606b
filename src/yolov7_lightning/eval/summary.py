"""Names of the 12 COCO numbers and the text tables printed by ``yolov7-eval``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["COCO_METRICS", "format_summary", "format_per_class", "stats_to_dict"]

#: The 12 numbers of ``COCOeval.stats``, in order (maxDets 1/10/100; -1 means "undefined": no
#: ground truth in that area range).
COCO_METRICS = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)

_ROWS = (  # (AP or AR, IoU, area, maxDets) of each stat, as pycocotools' summarize() prints them
    ("AP", "0.50:0.95", "all", 100), ("AP", "0.50", "all", 100), ("AP", "0.75", "all", 100),
    ("AP", "0.50:0.95", "small", 100), ("AP", "0.50:0.95", "medium", 100), ("AP", "0.50:0.95", "large", 100),
    ("AR", "0.50:0.95", "all", 1), ("AR", "0.50:0.95", "all", 10), ("AR", "0.50:0.95", "all", 100),
    ("AR", "0.50:0.95", "small", 100), ("AR", "0.50:0.95", "medium", 100), ("AR", "0.50:0.95", "large", 100),
)


def stats_to_dict(stats: Sequence[float]) -> dict[str, float]:
    """``COCOeval.stats`` (12 values) -> ``{name: float}`` with the names of :data:`COCO_METRICS`."""
    if len(stats) != len(COCO_METRICS):
        raise ValueError(f"expected {len(COCO_METRICS)} COCO stats, got {len(stats)}")
    return {k: float(v) for k, v in zip(COCO_METRICS, stats)}


def format_summary(metrics: Mapping[str, float]) -> str:
    """The 12 numbers as the table pycocotools' ``COCOeval.summarize()`` prints."""
    lines = []
    for key, (kind, iou, area, max_det) in zip(COCO_METRICS, _ROWS):
        title = "Average Precision" if kind == "AP" else "Average Recall"
        lines.append(f" {title:<18} ({kind}) @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_det:>3d} ]"
                     f" = {metrics[key]:0.3f}")
    return "\n".join(lines)


def format_per_class(per_class: Mapping[str, float], per_class_map50: Mapping[str, float] | None = None) -> str:
    """A ``class  AP@.5:.95  [AP@.5]`` table; undefined values (class absent from the ground
    truth of the evaluated images) show as ``-``."""
    width = max([len("class")] + [len(str(k)) for k in per_class])

    def fmt(v: float) -> str:
        return f"{v:9.3f}" if v >= 0 else f"{'-':>9}"

    head = f"{'class':<{width}}  {'AP50-95':>9}" + (f"  {'AP50':>9}" if per_class_map50 is not None else "")
    lines = [head]
    for name, ap in per_class.items():
        row = f"{str(name):<{width}}  {fmt(ap)}"
        if per_class_map50 is not None:
            row += f"  {fmt(per_class_map50.get(name, -1.0))}"
        lines.append(row)
    return "\n".join(lines)
