"""Every error a user can cause, through the real commands: exit status 1 and one line on stderr,
``error: <message>`` naming the bad value or file, no traceback (``HYDRA_FULL_ERROR=1`` keeps it). A
bug keeps its traceback. One tiny 2-class checkpoint (an untrained yolov7-tiny saved as a training
checkpoint) and one tiny shapes dataset serve every case."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import run_cli, save_tiny_checkpoint
from tests.integration.test_class_lists import write_yolo
from yolov7_lightning.cli import eval as eval_cli
from yolov7_lightning.cli import export as export_cli
from yolov7_lightning.cli import predict as predict_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.cli.app import user_error_message
from yolov7_lightning.errors import ConfigError



@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("user_errors")
    image = tmp / "scene.jpg"
    cv2.imwrite(str(image), np.full((48, 64, 3), 120, np.uint8))
    (tmp / "empty").mkdir()
    (tmp / "a_file").write_text("a file where a folder should be")
    stray = tmp / "stray"
    write_yolo(stray, "train", list(range(10)))
    write_yolo(stray, "val", [0, 1000])  # one stray index: would build a 1001-class model
    return {"tmp": tmp, "ckpt": save_tiny_checkpoint(tmp / "tiny.ckpt"), "image": image, "empty": tmp / "empty",
            "file": tmp / "a_file", "shapes": tmp / "shapes", "stray": stray}


def shapes(p) -> list[str]:
    return [f"data.source.root={p['shapes']}", "data.source.num_train=4", "data.source.num_val=4",
            "data.source.image_size=64", "data.img_size=64", "data.batch_size=2", "data.num_workers=0",
            "data.persistent_workers=false", "export.enabled=false", "visuals.enabled=false",
            "+trainer.fast_dev_run=true"]  # bounds the run where the error is not caught


def shapes_eval(p) -> list[str]:
    return [a for a in shapes(p) if not a.startswith(("export.", "visuals.", "+trainer."))]


ANCHORS_NEGATIVE = "anchors=[[-10,13,16,30,33,23],[30,61,62,45,59,119],[116,90,156,198,373,326]]"

# id: (command, arguments from the inputs, what the one line must hold)
CASES = {
    "export_unknown_format": (export_cli, lambda p: [f"ckpt={p['ckpt']}", "format=tflite"],
                              ["unknown export format(s) ['tflite']; valid: deploy, onnx, torchscript"]),
    "export_size_not_multiple_of_stride": (export_cli, lambda p: [f"ckpt={p['ckpt']}", "image_size=100"],
                                           ["image size 100x100 is not a positive multiple of the max stride 32"]),
    "predict_unknown_class_name": (predict_cli, lambda p: [f"ckpt={p['ckpt']}", f"source={p['image']}",
                                                           "classes=[zebra]"],
                                   ["classes: unknown class name 'zebra'; the model's classes: a, b"]),
    "predict_class_id_out_of_range": (predict_cli, lambda p: [f"ckpt={p['ckpt']}", f"source={p['image']}",
                                                              "classes=[7]"],
                                      ["classes: ids [7] are outside the model's 2 classes (0..1)"]),
    "predict_missing_source": (predict_cli, lambda p: [f"ckpt={p['ckpt']}", f"source={p['tmp'] / 'nope.jpg'}"],
                               ["source not found: ", "nope.jpg"]),
    "predict_empty_folder": (predict_cli, lambda p: [f"ckpt={p['ckpt']}", f"source={p['empty']}"],
                             ["empty: no images or videos (", ") in this folder"]),
    "predict_run_folder_under_a_file": (predict_cli, lambda p: [f"ckpt={p['ckpt']}", f"source={p['image']}",
                                                                f"hydra.run.dir={p['file'] / 'run'}"],
                                        ["a_file/run: output folder is not writable (Not a directory)"]),
    "eval_other_class_list": (eval_cli, lambda p: [f"ckpt={p['ckpt']}", *shapes_eval(p)],
                              ["tiny.ckpt was trained on classes ['a', 'b'], but the data's own class list",
                               "give data.source.names=[a,b]"]),
    "eval_split_typo": (eval_cli, lambda p: [f"ckpt={p['ckpt']}", "split=tset"],
                        ["unknown split 'tset'; valid: val, test"]),
    "resume_other_class_list": (train_cli, lambda p: [f"ckpt_path={p['ckpt']}", *shapes(p)],
                                ["tiny.ckpt: trained on 2 classes ['a', 'b'], the data has ", "model.weights=<file>"]),
    "train_run_folder_under_a_file": (train_cli, lambda p: [f"hydra.run.dir={p['file'] / 'run'}"],
                                      ["a_file/run: output folder is not writable (Not a directory)"]),
    "aux_head_strategy_mismatch": (train_cli, lambda p: ["assigner=lead_only", "model.aux_head=true", *shapes(p)],
                                   ["assigner 'lead_only' assigns the lead head only, but yolov7-tiny has the "
                                    "auxiliary head (model.aux_head=true)"]),
    "anchors_malformed": (train_cli, lambda p: ["anchors=[1,2,3]", *shapes(p)], ["anchors: expected auto, keep or a list of 3 levels of 6 numbers (w,h pairs in pixels), got [1, 2, 3]"]),
    "anchors_negative": (train_cli, lambda p: [ANCHORS_NEGATIVE, *shapes(p)],
                         ["anchors: every anchor side must be a positive number, got [[-10.0"]),
    "freeze_too_many_layers": (train_cli, lambda p: ["freeze=999", "model=yolov7-tiny", *shapes(p)],
                               ["freeze: 999 layers asked, yolov7-tiny has "]),
    "freeze_misspelt_part": (train_cli, lambda p: ["freeze=[bakbone]", *shapes(p)],
                             ["freeze: 'bakbone' is not a module of yolov7-tiny"]),
    "batch_size_zero": (train_cli, lambda p: [*shapes(p), "data.batch_size=0"], ["data.batch_size=0: must be >= 1"]),
    "batch_size_negative": (eval_cli, lambda p: [f"ckpt={p['ckpt']}", *shapes_eval(p), "data.batch_size=-2"],
                            ["data.batch_size=-2: must be >= 1"]),
    "workers_negative": (train_cli, lambda p: [*shapes(p), "data.num_workers=-1"],
                         ["data.num_workers=-1: must be >= 0"]),
    "img_size_not_multiple_of_stride": (train_cli, lambda p: [*shapes(p), "data.img_size=100"],
                                        ["data.img_size=100: must be a positive multiple of the max stride 32"]),
    "yolo_stray_class_index": (train_cli, lambda p: ["data=yolo", f"data.source.root={p['stray']}", "data.img_size=64",
                                                     "data.num_workers=0", "data.persistent_workers=false",
                                                     "data.pin_memory=false", "+trainer.fast_dev_run=true"],
                               ["stray/labels/val/1.txt, line 1: class 1000 would make 1001 classes, but only 11 of "
                                "them have boxes (the others used: 0..9)", "data.source.names=["]),
}


def assert_one_line(code: int, out: str, err: str, expected: list[str]) -> None:
    assert code == 1, out[-2000:] + err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert "Traceback" not in err + out
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line(inputs, case, tmp_path):
    command, args, expected = CASES[case]
    args = args(inputs)
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    code, out, err = run_cli(command.main, *args)
    assert_one_line(code, out, err, expected)


def test_full_disk_names_the_file(inputs, tmp_path):
    """A write the disk refuses (here a file-size limit, EFBIG, the same path as a full disk's ENOSPC):
    one line naming the file; the partial file is not left behind."""
    run = tmp_path / "run"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # deploy.pt of yolov7-tiny: ~24 MB
    try:
        code, out, err = run_cli(export_cli.main, f"ckpt={inputs['ckpt']}", "format=deploy", f"hydra.run.dir={run}")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert_one_line(code, out, err, [f"error: {run / 'deploy.pt'}: File too large"])
    assert not list(run.glob("*deploy.pt*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_folder(inputs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    code, out, err = run_cli(predict_cli.main, f"ckpt={inputs['ckpt']}", f"source={inputs['image']}",
                             f"hydra.run.dir={run}")
    assert_one_line(code, out, err, [f"error: {run}: output folder is not writable (Permission denied)"])


def test_full_traceback_with_hydra_full_error(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="unknown split 'tset'"):
        run_cli(eval_cli.main, f"ckpt={inputs['ckpt']}", "split=tset", f"hydra.run.dir={tmp_path}")


def test_a_bug_keeps_its_traceback():
    """Only errors about the user's input become one line: a plain ValueError or an OSError that is not
    about the disk or permissions is a bug, shown in full."""
    assert user_error_message(ValueError("x")) is None
    assert user_error_message(FileNotFoundError(2, "No such file or directory", "/x")) is None
    assert user_error_message(ConfigError("data.batch_size=0: must be >= 1")) == "data.batch_size=0: must be >= 1"
    assert user_error_message(OSError(28, "No space left on device", "/r/a.json")) == "/r/a.json: No space left on device"
