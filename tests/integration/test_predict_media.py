"""``yolov7-predict`` on videos (frame by frame: one JSON line per frame, an annotated video out),
with the official ``detect.py`` options: ``classes``, ``agnostic_nms``, ``save_txt``/``save_conf``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from tests.helpers import run_cli
from tests.integration.test_predict_folders import deploy_file  # noqa: F401  (module fixture)
from yolov7_lightning.cli import predict as predict_cli


def scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((48, 64, 3), 90, np.uint8)
    for _ in range(3):
        x, y = rng.integers(0, 44), rng.integers(0, 28)
        img[y:y + 16, x:x + 16] = rng.integers(0, 255, 3)
    return img


def predict(tmp_path, name, *args):
    run = tmp_path / name
    code, out, err = run_cli(predict_cli.main, *args, f"hydra.run.dir={run}")
    return code, out + err, run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(10):
        writer.write(scene(i))
    writer.release()
    return path


def test_a_ten_frame_video_gives_ten_json_lines_and_a_ten_frame_video(deploy_file, clip, tmp_path):  # noqa: F811
    code, out, run = predict(tmp_path, "video", f"ckpt={deploy_file}", f"source={clip}", "conf_thres=0.0",
                             "save_txt=true")
    assert code == 0, out[-3000:]
    lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(10)) and {x["source"] for x in lines} == {str(clip)}
    assert all(len(x["boxes"]) == len(x["scores"]) > 0 for x in lines)
    assert all(0 <= b[0] <= b[2] <= 64 and 0 <= b[1] <= b[3] <= 48 for x in lines for b in x["boxes"])
    video = cv2.VideoCapture(str(run / "videos" / "clip.avi"))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame.shape)
    assert frames == [(48, 64, 3)] * 10
    txts = sorted(p.name for p in (run / "labels").iterdir())
    assert txts == sorted(f"clip_{i}.txt" for i in range(10))  # the official <stem>_<frame>.txt
    assert len((run / "labels" / "clip_3.txt").read_text().splitlines()) == len(lines[3]["scores"])


def test_class_filter_agnostic_nms_and_save_txt_on_an_image(deploy_file, tmp_path):  # noqa: F811
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), scene(0))
    common = [f"ckpt={deploy_file}", f"source={image}", "conf_thres=0.0", "iou_thres=0.3"]
    code, out, run = predict(tmp_path, "all", *common, "save_txt=true", "save_conf=true")
    assert code == 0, out[-3000:]
    (rec,) = json.loads((run / "predictions.json").read_text())
    assert set(rec["classes"]) == {0, 1}  # a random 2-class model: both classes at conf 0
    rows = [list(map(float, line.split())) for line in (run / "labels" / "a.png.txt").read_text().splitlines()]
    assert len(rows) == len(rec["scores"]) and all(len(r) == 6 for r in rows)
    for (cls, cx, cy, w, h, score), box, c, s in zip(rows, rec["boxes"], rec["classes"], rec["scores"]):
        assert cls == c and score == pytest.approx(s, abs=1e-5)
        assert [cx * 64, cy * 48, w * 64, h * 48] == pytest.approx(
            [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]], abs=0.02)

    for classes in ("[1]", "[b]"):  # by id or by name
        code, out, run = predict(tmp_path, f"only_{classes.strip('[]')}", *common, f"classes={classes}")
        assert code == 0, out[-3000:]
        (only,) = json.loads((run / "predictions.json").read_text())
        assert set(only["classes"]) == {1} and len(only["scores"]) == rec["classes"].count(1)

    code, out, run = predict(tmp_path, "agnostic", *common, "agnostic_nms=true")
    assert code == 0, out[-3000:]
    (agn,) = json.loads((run / "predictions.json").read_text())
    assert 0 < len(agn["scores"]) < len(rec["scores"])

    def inner(record):  # boxes clipped to the image border may coincide after clipping: leave them out
        b = torch.tensor(record["boxes"])
        return b[(b[:, 0] > 0.5) & (b[:, 1] > 0.5) & (b[:, 2] < 63.5) & (b[:, 3] < 47.5)]

    kept = inner(agn)
    assert len(kept) > 1 and float(box_iou(kept, kept).fill_diagonal_(0).max()) <= 0.3 + 1e-3  # any classes

    code, out, _ = predict(tmp_path, "bad", *common, "classes=[dog]")
    assert code != 0 and "unknown class name 'dog'" in out


def read_video(path) -> list[tuple[int, ...]]:
    video = cv2.VideoCapture(str(path))
    shapes = []
    while True:
        ok, frame = video.read()
        if not ok:
            return shapes
        shapes.append(frame.shape)


def test_an_image_sequence_is_a_video(deploy_file, tmp_path):  # noqa: F811
    """``source=frames/%06d.jpg`` and a folder of frames with ``as_video=true`` (natural name order:
    frame_2 before frame_10) give what a video gives: one JSON line per frame, in order, each the
    detections of that frame as an image, and an annotated video of every frame."""
    numbered, named = tmp_path / "frames", tmp_path / "clip"
    numbered.mkdir()
    named.mkdir()
    for i in range(4):
        cv2.imwrite(str(numbered / f"{i:06d}.png"), scene(i))
        cv2.imwrite(str(named / f"frame_{[1, 2, 10, 11][i]}.png"), scene(i))
    (numbered / "notes.txt").write_text("not a frame")
    common = [f"ckpt={deploy_file}", "conf_thres=0.0", "save_txt=true"]
    code, out, run = predict(tmp_path, "as_images", *common, f"source={numbered}")
    assert code == 0, out[-3000:]
    per_image = {r["file"]: r for r in json.loads((run / "predictions.json").read_text())}

    code, out, pattern_run = predict(tmp_path, "pattern", *common, f"source={numbered / '%06d.png'}")
    assert code == 0, out[-3000:]
    code, out, folder_run = predict(tmp_path, "folder", *common, f"source={named}", "as_video=true", "fps=5")
    assert code == 0, out[-3000:]
    for run, source, files in ((pattern_run, numbered / "%06d.png", [numbered / f"{i:06d}.png" for i in range(4)]),
                               (folder_run, named, [named / f"frame_{n}.png" for n in (1, 2, 10, 11)])):
        lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
        assert [x["frame"] for x in lines] == [0, 1, 2, 3] and {x["source"] for x in lines} == {str(source)}
        assert [x["file"] for x in lines] == [str(f) for f in files]
        for i, line in enumerate(lines):  # frame i is scene(i): the detections of that image
            want = per_image[str(numbered / f"{i:06d}.png")]
            assert line["boxes"] == want["boxes"] and line["scores"] == want["scores"] and len(want["scores"]) > 0
        video = run / "videos" / f"{Path(str(source)).parent.name if run == pattern_run else named.name}.mp4"
        assert read_video(video) == [(48, 64, 3)] * 4
        assert sorted(p.name for p in (run / "labels").iterdir()) == sorted(f"{video.stem}_{i}.txt" for i in range(4))
        assert not (run / "predictions.json").exists()
    capture = cv2.VideoCapture(str(folder_run / "videos" / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)


def test_an_image_sequence_without_frames_is_one_error_line(deploy_file, tmp_path):  # noqa: F811
    (tmp_path / "empty").mkdir()
    for source, extra, message in ((tmp_path / "empty" / "%06d.jpg", [], "no file matches this image sequence"),
                                   (tmp_path / "empty", ["as_video=true"], "no images"),
                                   (tmp_path / "missing", ["as_video=true"], "no such folder")):
        run = tmp_path / f"run{len(extra)}{source.name}"
        code, out, err = run_cli(predict_cli.main, f"ckpt={deploy_file}", f"source={source}", *extra,
                                 f"hydra.run.dir={run}")
        assert code == 1 and err.startswith(f"error: {source}: ") and message in err, out[-2000:] + err[-2000:]
        assert len(err.strip().splitlines()) == 1


def test_a_gap_and_an_unreadable_frame_in_a_sequence_are_reported(deploy_file, tmp_path):  # noqa: F811
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (0, 1, 3):
        cv2.imwrite(str(frames / f"f{i:03d}.png"), scene(i))
    (frames / "f004.png").write_bytes(b"")
    code, out, run = predict(tmp_path, "gap", f"ckpt={deploy_file}", f"source={frames / 'f%03d.png'}", "conf_thres=0.0")
    assert code == 0, out[-3000:]
    lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines] == [str(frames / f"f{i:03d}.png") for i in (0, 1, 3)]
    assert f"{frames / 'f%03d.png'}: 1 frame number(s) missing between 0 and 4 (first: 2)" in out
    assert f"skipped 1 unreadable image(s): {frames / 'f004.png'}: cannot decode image" in out
    assert read_video(run / "videos" / "frames.mp4") == [(48, 64, 3)] * 3
