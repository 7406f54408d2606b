"""``yolov7-predict source=<folder>``: an unreadable image is a counted skip naming the file (the
others are predicted and ``predictions.json`` is written); drawn files keep the source's relative
path and extension (``a.jpg``, ``a.png``, ``sub/a.jpg`` are three outputs)."""

from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import run_cli
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
                             f"hydra.run.dir={run}")
    assert code == 0, out[-2000:] + err[-2000:]
    assert f"skipped 1 unreadable image(s): {src / 'broken.jpg'}: cannot decode image" in out
    records = json.loads((run / "predictions.json").read_text())
    assert sorted(r["file"] for r in records) == sorted(str(src / n) for n in ("a.jpg", "a.png", "sub/a.jpg"))
    drawn = sorted(p.relative_to(run / "images").as_posix() for p in (run / "images").rglob("*") if p.is_file())
    assert drawn == ["a.jpg", "a.png", "sub/a.jpg"]
    assert cv2.imread(str(run / "images" / "a.png")).shape == (48, 64, 3)
    # written files follow the umask (atomic writes used to leave 0600)
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((run / "predictions.json").stat().st_mode) == 0o666 & ~mask
