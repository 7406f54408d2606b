"""One readable table per YOLOv7 variant (the official training configs, nc-independent).

A variant is a backbone (stem, then stages of [transition, ELAN]), a neck (SPPCSPC, a top-down
path of [reduce, upsample, lateral, concat, ELAN] per level, a bottom-up path of
[transition, concat, ELAN] per level), the lead output convs and the optional auxiliary convs.
ELAN widths are written ``E(c, c3, n, block, c2)``: 1x1 width, 3x3 width, number of 3x3 convs,
convs per computational block (2: concat every second output, 1: concat all), output width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..nn.elan import ELANSpec as E
from ..errors import ConfigError

ANCHORS_TINY = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
ANCHORS_P5 = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))
ANCHORS_P6 = (
    (19, 27, 44, 40, 38, 94), (96, 68, 86, 152, 180, 137),
    (140, 301, 303, 264, 238, 542), (436, 615, 739, 380, 925, 792),
)


@dataclass(frozen=True)
class Arch:
    """Everything that defines a variant's network (see the module docstring for the layout).

    ``stem``: ``"reorg"`` or ``(c2, k, s)`` per layer. ``down``/``neck_down``: the transition kind,
    ``mp`` (max-pool), ``mpconv`` (MP-1/MP-2, width = per-branch channels), ``conv`` (3x3 s2) or
    ``downc``; a max-pool keeps its input width. ``stages``: ``(transition width or None, ELAN)``; the last ``levels`` stages feed
    the neck. ``top_down``: ``(reduce width, ELAN)`` from the top level down to P3. ``bottom_up``:
    ``(transition width, ELAN)`` from P4 up. ``lead``: output conv kind and widths per level;
    ``aux``: auxiliary conv widths per level (they read the top-down features).
    """

    name: str
    act: str
    anchors: tuple
    stem: tuple
    down: str
    stages: tuple
    spp: tuple
    top_down: tuple
    neck_down: str
    bottom_up: tuple
    lead: tuple
    aux: tuple
    aux_default: bool
    image_size: int
    eelan: bool = False
    notes: str = field(default="", compare=False)

    def has_aux_head(self, aux_head: bool | None) -> bool:
        """A model's ``aux_head`` switch, ``None`` meaning this variant's official default."""
        return self.aux_default if aux_head is None else bool(aux_head)

    @property
    def levels(self) -> int:
        return len(self.anchors)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(2 ** (3 + i) for i in range(self.levels))


TINY = Arch(
    name="yolov7-tiny", act="leaky", anchors=ANCHORS_TINY, image_size=640,
    stem=((32, 3, 2), (64, 3, 2)),
    down="mp",
    stages=((None, E(32, 32, 2, 1, 64)), (64, E(64, 64, 2, 1, 128)),
            (128, E(128, 128, 2, 1, 256)), (256, E(256, 256, 2, 1, 512))),
    spp=("tiny", 256),
    top_down=((128, E(64, 64, 2, 1, 128)), (64, E(32, 32, 2, 1, 64))),
    neck_down="conv",
    bottom_up=((128, E(64, 64, 2, 1, 128)), (256, E(128, 128, 2, 1, 256))),
    lead=("conv", (128, 256, 512)), aux=(128, 256, 512), aux_default=False,
)

YOLOV7 = Arch(
    name="yolov7", act="silu", anchors=ANCHORS_P5, image_size=640,
    stem=((32, 3, 1), (64, 3, 2), (64, 3, 1), (128, 3, 2)),
    down="mpconv",
    stages=((None, E(64, 64, 4, 2, 256)), (128, E(128, 128, 4, 2, 512)),
            (256, E(256, 256, 4, 2, 1024)), (512, E(256, 256, 4, 2, 1024))),
    spp=("sppcspc", 512),
    top_down=((256, E(256, 128, 4, 1, 256)), (128, E(128, 64, 4, 1, 128))),
    neck_down="mpconv",
    bottom_up=((128, E(256, 128, 4, 1, 256)), (256, E(512, 256, 4, 1, 512))),
    lead=("repconv", (256, 512, 1024)), aux=(256, 512, 1024), aux_default=False,
)

YOLOV7X = Arch(
    name="yolov7x", act="silu", anchors=ANCHORS_P5, image_size=640,
    stem=((40, 3, 1), (80, 3, 2), (80, 3, 1), (160, 3, 2)),
    down="mpconv",
    stages=((None, E(64, 64, 6, 2, 320)), (160, E(128, 128, 6, 2, 640)),
            (320, E(256, 256, 6, 2, 1280)), (640, E(256, 256, 6, 2, 1280))),
    spp=("sppcspc", 640),
    top_down=((320, E(256, 256, 6, 2, 320)), (160, E(128, 128, 6, 2, 160))),
    neck_down="mpconv",
    bottom_up=((160, E(256, 256, 6, 2, 320)), (320, E(512, 512, 6, 2, 640))),
    lead=("conv", (320, 640, 1280)), aux=(320, 640, 1280), aux_default=False,
)

YOLOV7_W6 = Arch(
    name="yolov7-w6", act="silu", anchors=ANCHORS_P6, image_size=1280,
    stem=("reorg", (64, 3, 1)),
    down="conv",
    stages=((128, E(64, 64, 4, 2, 128)), (256, E(128, 128, 4, 2, 256)), (512, E(256, 256, 4, 2, 512)),
            (768, E(384, 384, 4, 2, 768)), (1024, E(512, 512, 4, 2, 1024))),
    spp=("sppcspc", 512),
    top_down=((384, E(384, 192, 4, 1, 384)), (256, E(256, 128, 4, 1, 256)), (128, E(128, 64, 4, 1, 128))),
    neck_down="conv",
    bottom_up=((256, E(256, 128, 4, 1, 256)), (384, E(384, 192, 4, 1, 384)), (512, E(512, 256, 4, 1, 512))),
    lead=("conv", (256, 512, 768, 1024)), aux=(320, 640, 960, 1280), aux_default=True,
)


def _e6(name: str, stem: int, widths: tuple, n: int, elan_mult: int, eelan: bool = False) -> Arch:
    """E6, D6 and E6E share one layout: ReOrg stem, DownC everywhere, n 3x3 convs per ELAN."""
    w1, w2, w3, w4, w5 = widths  # stage outputs
    stage_c = (64, 128, 256, 384, 512)
    stages = tuple((w, E(c, c, n, 2, w)) for w, c in zip(widths, stage_c))
    assert all(w == c * elan_mult // 2 for w, c in zip(widths, stage_c))
    return Arch(
        name=name, act="silu", anchors=ANCHORS_P6, image_size=1280, eelan=eelan,
        stem=("reorg", (stem, 3, 1)),
        down="downc",
        stages=stages,
        spp=("sppcspc", w5 // 2),
        top_down=((w4 // 2, E(384, 192, n, 1, w4 // 2)), (w3 // 2, E(256, 128, n, 1, w3 // 2)),
                  (w2 // 2, E(128, 64, n, 1, w2 // 2))),
        neck_down="downc",
        bottom_up=((w3 // 2, E(256, 128, n, 1, w3 // 2)), (w4 // 2, E(384, 192, n, 1, w4 // 2)),
                   (w5 // 2, E(512, 256, n, 1, w5 // 2))),
        lead=("conv", (w2, w3, w4, w5)), aux=(w2, w3, w4, w5), aux_default=True,
    )


YOLOV7_E6 = _e6("yolov7-e6", 80, (160, 320, 640, 960, 1280), n=6, elan_mult=5)
YOLOV7_D6 = _e6("yolov7-d6", 96, (192, 384, 768, 1152, 1536), n=8, elan_mult=6)
YOLOV7_E6E = _e6("yolov7-e6e", 80, (160, 320, 640, 960, 1280), n=6, elan_mult=5, eelan=True)

ARCHS: dict[str, Arch] = {a.name: a for a in (TINY, YOLOV7, YOLOV7X, YOLOV7_W6, YOLOV7_E6, YOLOV7_D6, YOLOV7_E6E)}


def get_arch(name: str) -> Arch:
    """The variant table by name; an unknown name lists the valid ones."""
    try:
        return ARCHS[name]
    except KeyError:
        raise ConfigError(f"unknown model variant {name!r}; valid: {', '.join(ARCHS)}") from None
