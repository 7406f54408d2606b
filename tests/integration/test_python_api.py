"""The Python API (``from yolov7_lightning import load_detector``) returns the detections of
``yolov7-predict`` for the same images: a training checkpoint and its ONNX export (the walkthrough's,
``conftest.walkthrough``), a deploy file and an official ``.pt``; paths, RGB arrays and tensors
give the same result; unset thresholds are the command's (``conf/standalone/predict.yaml``)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import REPO, run_cli
from yolov7_lightning import Detections, load_detector
from yolov7_lightning.cli import predict as predict_cli

CONF = 0.001  # a one-epoch model: its low-score boxes, so that there is something to compare


def val_images(walkthrough):
    data, _, _ = walkthrough
    return sorted((data / "images" / "val").glob("*.jpg"))


def model_file(walkthrough, backend):
    _, work, _ = walkthrough
    if backend == "onnx":
        return work / "runs" / "export" / "mine" / "model.onnx"
    return work / "runs" / "train" / "mine" / "checkpoints" / "best.ckpt"


def predict_command(tmp, name, backend, model, source):
    """``yolov7-predict`` with YOLO text output (6 decimals of the image size: boxes to 1e-4 px here)."""
    key = "model" if backend == "onnx" else "ckpt"
    run = tmp / name
    code, out, err = run_cli(predict_cli.main, f"backend={backend}", f"{key}={model}", f"source={source}",
                             f"conf_thres={CONF}", "save_txt=true", "save_conf=true", f"hydra.run.dir={run}")
    assert code == 0, out[-3000:] + err[-3000:]
    return run


def assert_same(result: Detections, record: dict, txt):
    """``result`` (the API) against ``yolov7-predict``'s record (boxes rounded to 0.01 px, scores to
    1e-5) and its text file (cx cy w h score, 6 decimals of the image size)."""
    assert result.path == record["file"] and result.image_hw == (record["height"], record["width"])
    assert len(result) == len(record["scores"]) > 0
    assert result.class_ids.tolist() == record["classes"]
    assert result.names == record.get("names", [str(c) for c in record["classes"]])  # no names: the ids
    assert np.allclose(np.round(result.boxes.astype(np.float64), 2), record["boxes"], atol=1e-4, rtol=0)
    assert np.allclose(np.round(result.scores.astype(np.float64), 5), record["scores"], atol=1e-6, rtol=0)
    rows = np.array([[float(v) for v in line.split()] for line in txt.read_text().splitlines()])
    h, w = result.image_hw
    b = result.boxes.astype(np.float64)
    got = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    assert rows[:, 0].tolist() == result.class_ids.tolist()
    assert np.allclose(got, rows[:, 1:5] * [w, h, w, h], atol=1e-4, rtol=0)
    assert np.allclose(result.scores, rows[:, 5], atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", ["pytorch", "onnx"])
def test_api_returns_the_detections_of_yolov7_predict(walkthrough, tmp_path, backend):
    images = val_images(walkthrough)
    data, _, _ = walkthrough
    run = predict_command(tmp_path, backend, backend, model_file(walkthrough, backend), data / "images" / "val")
    records = {r["file"]: r for r in json.loads((run / "predictions.json").read_text())}
    det = load_detector(model_file(walkthrough, backend), conf=CONF)
    results = det([str(p) for p in images])  # a list in, a list out
    assert isinstance(results, list) and len(results) == len(images) == len(records)
    for result, path in zip(results, images):
        assert_same(result, records[str(path)], run / "labels" / f"{path.name}.txt")
        assert set(result.names) == {"car"}
    one = det(images[0])  # one image in, one Detections out
    assert isinstance(one, Detections) and np.array_equal(one.boxes, results[0].boxes)


def test_arrays_tensors_and_batches_give_the_same_detections(walkthrough):
    images = val_images(walkthrough)[:2]
    det = load_detector(model_file(walkthrough, "pytorch"), conf=CONF)
    want = det([str(p) for p in images])
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in images]
    chw = [torch.from_numpy(a).permute(2, 0, 1) for a in rgb]
    for got in (det(rgb), det(np.stack(rgb)), det(torch.stack(chw)), det(torch.stack(chw).float() / 255)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.path is None and g.image_hw == w.image_hw
            assert np.array_equal(g.boxes, w.boxes) and np.array_equal(g.scores, w.scores)
            assert np.array_equal(g.class_ids, w.class_ids) and g.names == w.names
    batched = load_detector(model_file(walkthrough, "pytorch"), conf=CONF, batch_size=2)(rgb)
    for g, w in zip(batched, want):  # one forward pass for the two: the same up to float rounding
        assert len(g) == len(w) and np.allclose(g.scores, w.scores, atol=1e-5)  # same scores, same order
        assert_same_up_to_ties(g, w)


def assert_same_up_to_ties(got: Detections, want: Detections) -> None:
    """Every detection of ``got`` matches one of ``want`` (class, box within 1e-3 px, score within 1e-5):
    float rounding may swap two detections of equal score, so the rows are matched, not compared in order."""
    free = list(range(len(want)))
    for box, score, cls in zip(got.boxes, got.scores, got.class_ids):
        match = next((j for j in free if want.class_ids[j] == cls and abs(want.scores[j] - score) <= 1e-5
                      and np.allclose(want.boxes[j], box, atol=1e-3, rtol=0)), None)
        assert match is not None, f"no match for {cls} {box} {score} in {want}"
        free.remove(match)


def test_unset_settings_are_those_of_yolov7_predict(walkthrough):
    cfg = OmegaConf.load(REPO / "conf" / "standalone" / "predict.yaml")
    det = load_detector(model_file(walkthrough, "pytorch"))
    assert (det.conf, det.iou, det.max_det) == (cfg.conf_thres, cfg.iou_thres, cfg.max_det)
    assert det.size == (64, 64) and det.names == ["car"]  # img_size null: the size the model was trained at


def test_bad_inputs_are_named(walkthrough):
    det = load_detector(model_file(walkthrough, "pytorch"))
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\] RGB .* got float32 \(8, 8, 3\)"):
        det(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"float image tensor must lie in \[0, 1\], got values in \[255, 255\]"):
        det(torch.full((3, 8, 8), 255.0))
    with pytest.raises(TypeError, match="cannot predict on int"):
        det(3)
    with pytest.raises(ValueError, match="unknown class name 'dog'; the model's classes: car"):
        load_detector(model_file(walkthrough, "pytorch"), classes=["dog"])


@pytest.fixture(scope="module")
def other_files(tmp_path_factory, walkthrough):
    """The walkthrough's checkpoint as a deploy file, and an official yolov7-tiny ``.pt`` (random weights)."""
    from tests.unit.models.test_official_weights import random_official, save_official
    from yolov7_lightning.export.deploy import load_source, save_deploy
    from yolov7_lightning.models import build_model

    tmp = tmp_path_factory.mktemp("api_files")
    deploy = save_deploy(load_source(model_file(walkthrough, "pytorch")), tmp / "deploy.pt")
    official = save_official(tmp / "yolov7-tiny.pt", random_official(build_model("yolov7-tiny", num_classes=2),
                                                                      "training", seed=3), 2)
    return {"deploy": deploy, "official": official}


@pytest.mark.parametrize("kind", ["deploy", "official"])
def test_deploy_file_and_official_pt(walkthrough, other_files, tmp_path, kind):
    image = val_images(walkthrough)[0]
    run = predict_command(tmp_path, kind, "pytorch", other_files[kind], image)
    (record,) = json.loads((run / "predictions.json").read_text())
    result = load_detector(other_files[kind], conf=CONF)(image)
    assert_same(result, record, run / "labels" / f"{image.name}.txt")


def test_the_package_import_stays_light():
    """``import yolov7_lightning`` loads neither PyTorch nor Lightning; the API comes on first use."""
    code = ("import sys, yolov7_lightning; "
            "print(sorted(m for m in ('torch', 'lightning', 'hydra', 'cv2') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "[]"
    assert load_detector.__module__ == Detections.__module__ == "yolov7_lightning.api"


def test_the_documented_example_runs(walkthrough, capsys, monkeypatch):
    """The example of ``docs/python_api.md`` as written (the data path replaced), in the walkthrough's folder."""
    from tests.integration.walkthrough import DATA_PATH

    text = (REPO / "docs" / "python_api.md").read_text()
    block = text.split("<!-- example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    data, work, _ = walkthrough
    monkeypatch.chdir(work)
    exec(compile(block.replace(DATA_PATH, str(data)), "docs/python_api.md", "exec"), {"__name__": "example"})
    out = capsys.readouterr().out
    first = sorted((data / "images" / "val").glob("*.jpg"))[0]
    assert out.startswith(f"{first} (64, 64) ") and out.rstrip().endswith(
        f"detections with ONNX Runtime on {len(val_images(walkthrough))} images")
