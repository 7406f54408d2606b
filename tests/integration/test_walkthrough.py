"""The own-data walkthrough of ``docs/own_data.md`` runs as written (only the data path replaced,
small sizes appended) on a YOLO-format folder of one class, ``car``: anchors, train, eval, export,
predict with PyTorch and with ONNX Runtime. ``yolov7-eval`` takes the class names from the
checkpoint when the data does not name its classes (``data=yolo`` without ``names`` used to stop
with a traceback: trained on ['car'], data has ['class0']); a real mismatch is one error line."""

from __future__ import annotations

import json
import shutil

from tests.helpers import run_cli
from tests.integration import walkthrough as w
from yolov7_lightning.cli import eval as eval_cli

STEPS = ["data", "train", "eval", "export", "predict", "predict"]


def step(steps, index):
    s = steps[index]
    assert s.code == 0, f"yolov7-{s.name} {' '.join(s.args)}\n{s.out[-3000:]}\n{s.err[-3000:]}"
    return s


def test_the_doc_holds_the_walkthrough():
    argvs = w.commands()
    assert [a[0] for a in argvs] == [f"yolov7-{n}" for n in STEPS]
    assert all(any(w.DATA_PATH in x for x in a) for i, a in enumerate(argvs) if STEPS[i] != "export")
    train = argvs[1]
    assert "data.source.names=[car]" in train and "experiment=recipe_small" in train


def test_anchors_step_prints_the_fit(walkthrough):
    _, _, steps = walkthrough
    fit = json.loads(step(steps, 0).out.strip().splitlines()[-1])
    assert fit["img_size"] == w.IMAGE_SIZE and fit["variant"] == "yolov7-tiny" and fit["num_boxes"] > 0
    assert 0.0 < fit["bpr_before"] <= 1.0 and len(fit["anchors_after"]) == 3


def test_train_step_writes_checkpoints_with_the_class_names(walkthrough):
    import torch

    _, work, steps = walkthrough
    step(steps, 1)
    run = work / "runs" / "train" / "mine"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    hp = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["names"] == ["car"] and hp["model"]["num_classes"] == 1


def test_eval_step_takes_the_names_from_the_checkpoint(walkthrough):
    _, work, steps = walkthrough
    s = step(steps, 2)
    assert "data.source.names" not in " ".join(s.args)  # the walkthrough's eval does not repeat the names
    metrics = json.loads((work / "runs" / "eval" / "mine" / "metrics.json").read_text())
    for key in ("map", "map50", "map75", "map_small", "mar_100"):
        assert isinstance(metrics[key], float) and -1.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert list(metrics["per_class"]) == ["car"]
    assert "\ncar " in s.out  # the per-class table


def test_export_and_predict_steps(walkthrough):
    data, work, steps = walkthrough
    step(steps, 3)
    report = json.loads((work / "runs" / "export" / "mine" / "export_report.json").read_text())
    assert report["passed"] and (work / "runs" / "export" / "mine" / "model.onnx").is_file()
    val = sorted((data / "images" / "val").glob("*.jpg"))
    for index, folder in ((4, "mine"), (5, "mine_onnx")):
        step(steps, index)
        run = work / "runs" / "predict" / folder
        records = json.loads((run / "predictions.json").read_text())
        assert sorted(r["file"] for r in records) == [str(p) for p in val]
        names = [n for r in records for n in r["names"]]
        assert names and set(names) == {"car"} and all(len(r["names"]) == len(r["boxes"]) for r in records)
        assert sorted(p.name for p in (run / "images").glob("*.jpg")) == [p.name for p in val]


def eval_args(walkthrough, root, *extra):
    _, work, _ = walkthrough
    return [f"ckpt={work / 'runs' / 'train' / 'mine' / 'checkpoints' / 'best.ckpt'}", "data=yolo",
            f"data.source.root={root}", *w.SMALL["eval"], *extra]


def test_eval_with_other_class_names_is_one_error_line(walkthrough, tmp_path):
    data, work, _ = walkthrough
    code, out, err = run_cli(eval_cli.main, *eval_args(walkthrough, data, "data.source.names=[truck]",
                                                       f"hydra.run.dir={tmp_path / 'eval'}"))
    assert code == 1, out[-2000:] + err[-2000:]
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "best.ckpt was trained on classes ['car'], but data.source.names gives ['truck']" in err
    assert "give data.source.names=[car]" in err and "Traceback" not in err


def test_eval_with_labels_beyond_the_checkpoint_classes_is_an_error(walkthrough, tmp_path):
    data, _, _ = walkthrough
    root = tmp_path / "two"
    shutil.copytree(data, root)
    label = root / "labels" / "val" / "000001.txt"
    label.write_text(label.read_text() + "1 0.5 0.5 0.2 0.2\n")
    code, out, err = run_cli(eval_cli.main, *eval_args(walkthrough, root, f"hydra.run.dir={tmp_path / 'eval'}"))
    assert code == 1 and len(err.strip().splitlines()) == 1, out[-2000:] + err[-2000:]
    assert err.startswith(f"error: the labels under {root} have class ids up to 1") and "1 class(es) ['car']" in err
