"""``yolov7-predict source=<folder>``: an unreadable image is a counted skip naming the file (the
others are predicted and ``predictions.json`` is written); drawn files and ``save_txt`` label files
keep the source's relative path and extension (``a.jpg``, ``a.png``, ``sub/a.jpg`` are three outputs
each), for ``yolov7-eval save_txt=true`` too."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import run_cli, save_tiny_checkpoint
from yolov7_lightning.cli import eval as eval_cli
from yolov7_lightning.cli import predict as predict_cli
from yolov7_lightning.export.deploy import save_deploy, source_from_model
from yolov7_lightning.models import build_model


@pytest.fixture(scope="module")
def deploy_file(tmp_path_factory):
    """A deploy file of a randomly initialised yolov7-tiny (predict reads deploy files too)."""
    path = tmp_path_factory.mktemp("model") / "deploy.pt"
    torch.manual_seed(0)  # the same random model every run
    model = build_model("yolov7-tiny", num_classes=2)
    save_deploy(source_from_model(model, names=["a", "b"], image_size=64), path)
    return path


def test_folder_with_a_broken_image_and_same_stems(deploy_file, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    img = np.full((48, 64, 3), 120, np.uint8)
    for name in ("a.jpg", "a.png", "sub/a.jpg"):
        assert cv2.imwrite(str(src / name), img)
    (src / "broken.jpg").write_bytes(b"")
    run = tmp_path / "run"
    code, out, err = run_cli(predict_cli.main, f"ckpt={deploy_file}", f"source={src}", "conf_thres=0.0",
                             "save_txt=true", f"hydra.run.dir={run}")
    assert code == 0, out[-2000:] + err[-2000:]
    assert f"skipped 1 unreadable image(s): {src / 'broken.jpg'}: cannot decode image" in out
    records = json.loads((run / "predictions.json").read_text())
    assert sorted(r["file"] for r in records) == sorted(str(src / n) for n in ("a.jpg", "a.png", "sub/a.jpg"))
    drawn = sorted(p.relative_to(run / "images").as_posix() for p in (run / "images").rglob("*") if p.is_file())
    assert drawn == ["a.jpg", "a.png", "sub/a.jpg"]
    # save_txt: one label file per image, named like the drawn file (a.jpg and a.png used to share a.txt)
    labels = {p.relative_to(run / "labels").as_posix(): p for p in (run / "labels").rglob("*") if p.is_file()}
    assert sorted(labels) == ["a.jpg.txt", "a.png.txt", "sub/a.jpg.txt"] and "labels/: 3 files" in out
    by_file = {r["file"]: len(r["scores"]) for r in records}
    for name, path in labels.items():
        assert len(path.read_text().splitlines()) == by_file[str(src / name[:-4])] > 0
    assert cv2.imread(str(run / "images" / "a.png")).shape == (48, 64, 3)
    # written files follow the umask (atomic writes used to leave 0600)
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((run / "predictions.json").stat().st_mode) == 0o666 & ~mask


def test_eval_save_txt_keeps_relative_paths(tmp_path):
    """``val/x.jpg`` and ``val/sub/x.jpg``: two label files (one used to overwrite the other while the
    count said two)."""
    root = tmp_path / "data"
    for split in ("train", "val"):
        for name in ("x.jpg", "sub/x.jpg"):
            image = root / "images" / split / name
            image.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(image), np.full((48, 64, 3), 120, np.uint8))
            label = root / "labels" / split / Path(name).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("1 0.5 0.5 0.25 0.25\n")
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt")
    run = tmp_path / "run"
    code, out, err = run_cli(eval_cli.main, f"ckpt={ckpt}", "data=yolo", f"data.source.root={root}",
                             "data.source.names=[a,b]", "data.img_size=64", "data.batch_size=2", "data.num_workers=0",
                             "data.persistent_workers=false", "data.pin_memory=false", "evaluation.conf_thres=0.0",
                             "save_txt=true", f"hydra.run.dir={run}")
    assert code == 0, out[-2000:] + err[-2000:]
    labels = sorted(p.relative_to(run / "labels").as_posix() for p in (run / "labels").rglob("*") if p.is_file())
    assert labels == ["sub/x.jpg.txt", "x.jpg.txt"] and "labels/ (2 files)" in out
