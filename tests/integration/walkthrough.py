"""The own-data walkthrough of ``docs/own_data.md``, run as written on a small YOLO-format folder.

The block after ``<!-- walkthrough -->`` is read line by line (``\\`` continues a line, ``#`` starts
a comment); in each command only the data path (``/data/mine``) is replaced and the test's small
settings are appended (later ``key=value`` overrides win in Hydra). The commands run in this process
(``tests.helpers.run_cli``) from a working folder of their own, so their relative run folders
(``runs/...``) land there. One run is shared by the tests of a session (``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import numpy as np

from tests.helpers import REPO, run_cli

DOC = REPO / "docs" / "own_data.md"
MARKER = "<!-- walkthrough -->"
DATA_PATH = "/data/mine"
CLASS = "car"
IMAGE_SIZE = 64

TINY_DATA = [f"data.img_size={IMAGE_SIZE}", "data.batch_size=4", "data.num_workers=0", "data.pin_memory=false",
             "data.persistent_workers=false"]
# small sizes for each command (appended: they override what the walkthrough wrote)
SMALL = {
    "data": [f"data.img_size={IMAGE_SIZE}"],
    "train": [*TINY_DATA, "schedule.epochs=1", "augment.close_mosaic=0", "export.enabled=false",
              "visuals.enabled=false", "trainer.log_every_n_steps=1"],
    "eval": TINY_DATA,
    "export": ["check_batch=1"],
    "predict": ["conf_thres=0.001"],  # a one-epoch model is not confident yet: keep its low-score boxes
}


def schedule_fields() -> set[str]:
    from yolov7_lightning.training.optim import ScheduleSpec

    return {f.name for f in dataclasses.fields(ScheduleSpec)}


def commands(doc: Path = DOC) -> list[list[str]]:
    """The walkthrough's commands as argument lists (command name first)."""
    text = doc.read_text()
    assert text.count(MARKER) == 1, f"{doc}: one {MARKER} block expected"
    block = text.split(MARKER, 1)[1].split("```", 2)
    assert block[0].strip() == "" and block[1].startswith("bash\n"), f"{doc}: a ```bash block must follow {MARKER}"
    lines, current = [], ""
    for raw in block[1][len("bash\n"):].splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(shlex.split(current))
        current = ""
    return lines


def write_car_data(root: Path, num_train: int = 8, num_val: int = 4) -> Path:
    """A YOLO-format folder (``images/{train,val}``, ``labels/{train,val}``) of shapes-generator tiles
    with one class (the generator's circles, labelled 0 = car)."""
    from yolov7_lightning.data.shapes import SPLITS, ShapesSpec, draw_image

    spec = ShapesSpec(num_train=num_train, num_val=num_val, image_size=IMAGE_SIZE, min_size=12, max_objects=3,
                      num_classes=1, empty_fraction=0.0)
    for split, count in (("train", num_train), ("val", num_val)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(count):
            data, objects = draw_image(spec, SPLITS[split], i)
            (images / f"{i:06d}.jpg").write_bytes(data)
            rows = []
            for cls, poly in objects:
                (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
                box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) / IMAGE_SIZE
                rows.append(f"{cls} " + " ".join(f"{v:.6f}" for v in box))
            (labels / f"{i:06d}.txt").write_text("\n".join(rows) + "\n")
    return root


@dataclasses.dataclass
class Step:
    name: str          # the command without its ``yolov7-`` prefix
    args: list[str]    # what ran (data path substituted, small settings appended)
    code: int
    out: str
    err: str


def run(work: Path) -> tuple[Path, Path, list[Step]]:
    """Build the data under ``work/mine`` and run every walkthrough command from ``work``:
    (the data folder, the working folder, the steps in order)."""
    import importlib

    data = write_car_data(work / "mine")
    extra = {**SMALL}
    if "minutes" in schedule_fields():  # a time budget would plan its own epochs: the test's are fixed
        extra["train"] = [*extra["train"], "schedule.minutes=null"]
    steps, before = [], os.getcwd()
    os.chdir(work)
    try:
        for argv in commands():
            program, args = argv[0], argv[1:]
            assert program.startswith("yolov7-"), f"{DOC}: not a yolov7 command: {argv}"
            name = program[len("yolov7-"):]
            args = [a.replace(DATA_PATH, str(data)) for a in args] + extra.get(name, [])
            main = importlib.import_module(f"yolov7_lightning.cli.{name}").main
            code, out, err = run_cli(main, *args)
            steps.append(Step(name, args, code, out, err))
            if code != 0:
                break
    finally:
        os.chdir(before)
    return data, work, steps
