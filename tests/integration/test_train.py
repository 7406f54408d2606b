"""Short real training runs on CPU: the loss goes down, checkpoints load with weights_only=True,
a resumed run ends with exactly the EMA weights of a straight run, metrics.json is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolov7_lightning.training.precision import ENV

SMALL = [  # the quick recipe (yolov7-tiny, SGD), made small
    "recipe=quick", "data.source.num_train=24", "data.source.num_val=8", "data.source.image_size=128", "data.img_size=128",
    "data.batch_size=8", "data.num_workers=0", "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0",
    "optim.nominal_batch=8", "trainer.log_every_n_steps=1",
]


def train(tmp: Path, name: str, *overrides: str, env: dict | None = None) -> Path:
    out = tmp / name
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={out}",
           f"data.source.root={tmp / 'shapes'}", *SMALL, *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"outputs: {out}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    return tmp, train(tmp, "straight", "schedule.epochs=2")


def test_metrics_and_checkpoints(straight):
    _, out = straight
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["train_seconds"] > 0
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(out / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert any(k.startswith("model.detect.m.0") for k in ckpt["state_dict"])
        assert ckpt["hyper_parameters"]["model"]["variant"] == "yolov7-tiny"
        # the recorded config is what ran: yolov7-tiny has no aux head, so the lead-only OTA
        hp = ckpt["hyper_parameters"]
        assert (hp["model"]["aux_head"], hp["assigner"]["strategy"]) == (False, "lead_only")
        assert ckpt["yolov7"]["precision"] == os.environ[ENV]  # the precision it trained in (kept on resume)
    assert not list((out / "checkpoints").glob("*.tmp"))  # atomic writes leave no temp files
    report = json.loads((out / "checkpoints" / "export_report.json").read_text())  # the deploy export callback
    assert (out / "checkpoints" / "deploy.pt").is_file() and (out / "checkpoints" / "model.onnx").is_file()
    # a 2-epoch model predicts boxes of ~1,000 px: the box tolerance grows with the box size
    assert report["passed"] and report["checks"]["fused_vs_unfused"]["scores"] <= 1e-4
    assert report["checks"]["onnx_vs_pytorch"]["boxes_vs_tolerance"] <= 1


def test_time_breakdown_adds_up_to_the_fit(straight):
    _, out = straight
    metrics = json.loads((out / "metrics.json").read_text())
    t = metrics["time"]
    parts = [t[f"{p}_s"] for p in ("data", "forward", "loss", "backward", "step", "validation", "other")]
    assert min(parts) >= 0 and t["forward_s"] > 0 and t["backward_s"] > 0 and t["validation_s"] > 0
    assert abs(sum(parts) - t["total_s"]) <= 0.05
    # the fit's own clock (train_seconds) brackets the callback's (on_fit_start .. on_fit_end)
    assert 0.5 * metrics["train_seconds"] <= t["total_s"] <= metrics["train_seconds"] + 0.1


def test_precision_and_channels_last_leave_checkpoints_as_before(straight):
    _, out = straight
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    log = (out / "app.log").read_text()
    assert "precision 32-true (chosen for this CPU" in log or "precision bf16-mixed (chosen for this CPU" in log
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        assert "precision 32-true (chosen for this CPU: the CPU has none of" in log
    # the choice and its reason, recorded with the run
    recorded = json.loads((out / "metrics.json").read_text())["cpu_precision"]
    assert recorded["precision"] == os.environ[ENV]
    assert f"precision {recorded['precision']} ({recorded['reason']})" in log
    hparams = (out / "logs" / "version_0" / "hparams.yaml").read_text()
    assert "cpu_precision:" in hparams and recorded["reason"][:40] in hparams
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["channels_last"] is True  # the default
    from yolov7_lightning.training.module import YOLOv7Module

    plain = YOLOv7Module(**{**ckpt["hyper_parameters"], "channels_last": False}).state_dict()
    for key in ("state_dict", "current_model_state"):  # EMA and live weights: same keys, fp32, default layout
        assert list(ckpt[key]) == list(plain)
        assert all(v.dtype == plain[k].dtype and v.is_contiguous() for k, v in ckpt[key].items())


def test_compiled_forward_trains_the_same_model(straight):
    """``compile=aot_eager``: the training forward through torch.compile's graph capture and AOT
    autograd (no code generation, seconds instead of minutes); the run must end with the straight
    run's weights and the plain model's state-dict keys."""
    tmp, out = straight
    compiled = train(tmp, "compiled", "schedule.epochs=2", "compile=aot_eager", "export.enabled=false")
    a = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(compiled / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["hyper_parameters"]["compile"] == "aot_eager" and b["global_step"] == a["global_step"] > 0
    assert "compiled training forward: 1 graph(s) captured, 0 graph break(s)" in (compiled / "app.log").read_text()
    t = json.loads((compiled / "metrics.json").read_text())["time"]  # no hooks in the graph: forward and loss as one
    assert t["loss_s"] is None and t["forward_s"] > 0 and t["backward_s"] > 0
    for key in ("state_dict", "current_model_state"):
        assert list(a[key]) == list(b[key])  # no "_orig_mod." prefixes: the plain model is what is saved
        diffs = {k: (a[key][k].float() - b[key][k].float()).abs().max().item() for k in a[key]}
        assert max(diffs.values()) <= 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]


def test_unknown_compile_backend_stops_at_start(tmp_path):
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={tmp_path / 'run'}",
           f"data.source.root={tmp_path / 'shapes'}", *SMALL, "compile=inductr"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "compile='inductr': not a torch.compile backend" in proc.stderr


def test_loss_goes_down(straight):
    tmp, _ = straight
    out = train(tmp, "down", "export.enabled=false", "augment=none", "schedule.epochs=30", "data.source.num_train=8", "ema=false",
                "trainer.check_val_every_n_epoch=30")
    rows = [r.split(",") for r in (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    col = header.index("train/total_step")
    values = [float(r[col]) for r in rows if len(r) > col and r[col]]
    assert len(values) == 30  # 30 epochs of one batch
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < 0.85 * first, (first, last)


def test_resume_gives_the_same_ema_weights(straight):
    tmp, out = straight
    # ckpt_path=auto: a fresh start in an empty folder, then (the same folder again) from its last.ckpt
    half = train(tmp, "half", "schedule.epochs=2", "trainer.max_epochs=1", "export.enabled=false", "ckpt_path=auto")
    assert torch.load(half / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    # a process tree that has not chosen a CPU precision yet: the resumed run keeps the checkpoint's
    fresh = {k: v for k, v in os.environ.items() if k != ENV}
    resumed = train(tmp, "half", "schedule.epochs=2", "ckpt_path=auto", "export.enabled=false", env=fresh)
    kept = torch.load(half / "checkpoints" / "last.ckpt", weights_only=True)["yolov7"]["precision"]
    assert f"precision {kept} (kept from the checkpoint being resumed" in (resumed / "app.log").read_text()
    a = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"] > 0
    for key in ("state_dict", "current_model_state"):
        diffs = {k: (a[key][k].float() - b[key][k].float()).abs().max().item() for k in a[key]}
        assert max(diffs.values()) <= 1e-6, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    assert a["yolov7"] == b["yolov7"]


def run_cli(module: str, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"yolov7_lightning.cli.{module}", f"hydra.run.dir={out}", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_eval_reproduces_the_last_validation(straight):
    tmp, out = straight
    data = [o for o in SMALL if o.startswith("data.")] + [f"data.source.root={tmp / 'shapes'}"]
    proc = run_cli("eval", tmp / "eval", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", *data)
    assert "Average Precision" in proc.stdout and "outputs:" in proc.stdout
    got = json.loads((tmp / "eval" / "metrics.json").read_text())
    trained = json.loads((out / "metrics.json").read_text())
    assert got["map"] == pytest.approx(trained["map"], abs=1e-9)
    assert got["map50"] == pytest.approx(trained["map50"], abs=1e-9)
    results = json.loads((tmp / "eval" / "predictions_coco.json").read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])


def test_predict_draws_and_writes_json(straight):
    tmp, out = straight
    images = next((tmp / "shapes").glob("*/images/val"))
    run_cli("predict", tmp / "predict", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", f"source={images}",
            "conf_thres=0.001")
    records = json.loads((tmp / "predict" / "predictions.json").read_text())
    files = sorted(images.glob("*.jpg"))
    assert len(records) == len(files) == len(list((tmp / "predict" / "images").glob("*.jpg")))
    some = next(r for r in records if r["scores"])
    assert all(0 <= b[0] <= b[2] <= some["width"] and 0 <= b[1] <= b[3] <= some["height"] for b in some["boxes"])
    assert set(some["names"]) <= {"circle", "square", "triangle", "star", "cross"}


@pytest.mark.parametrize("overrides, message", [
    (["model.aux_head=true"], "assigner 'lead_only' assigns the lead head only, but yolov7-tiny has the auxiliary head"),
    (["assigner=coarse_to_fine", "model.aux_head=false"], "assigner 'coarse_to_fine' needs the auxiliary head"),
])
def test_model_and_assigner_that_disagree_stop_before_training(tmp_path, overrides, message):
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={tmp_path / 'run'}",
           f"data.source.root={tmp_path / 'never_generated'}", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "never_generated").exists()  # stopped before any data work


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}}, bad)
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.predict", f"hydra.run.dir={tmp_path / 'p'}", f"ckpt={bad}",
           f"source={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: {bad}: not a YOLOv7 checkpoint (a dict with keys ['state_dict']); expected a training checkpoint, "
        "a deploy file, an official YOLOv7 .pt or a state dict"], proc.stderr


@pytest.fixture(scope="module")
def easy(straight):
    """Memorise 24 training images (the easy subset: evaluated on themselves), COCO reader path."""
    tmp, _ = straight
    root = next((tmp / "shapes").glob("shapes-*"))
    split = ["data.source.splits.{s}.images=images/train",
             "data.source.splits.{s}.annotations=annotations/instances_train.json"]
    out = tmp / "easy"
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={out}", "recipe=quick", "data=coco",
           f"data.source.root={root}", *[o.format(s=s) for s in ("train", "val") for o in split],
           "data.img_size=128", "data.batch_size=8", "data.num_workers=0", "data.persistent_workers=false",
           "data.pin_memory=false", "augment=none", "schedule.epochs=40", "schedule.warmup_epochs=0",
           "schedule.warmup_min_iters=0", "trainer.check_val_every_n_epoch=40", "optim.nominal_batch=8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, out


def test_map_well_above_zero_on_an_easy_subset(straight, easy):
    _, barely_trained = straight
    _, out = easy
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 40
    baseline = json.loads((barely_trained / "metrics.json").read_text())["map50"]  # 2 epochs: ~1e-4
    assert metrics["map50"] > 0.05 and metrics["map50"] > 100 * baseline, (metrics, baseline)


def test_onnx_predict_draws_the_same_boxes(straight, easy):
    tmp, _ = straight
    root, out = easy
    images = root / "images" / "train"
    # a threshold well below this 40-epoch model's top scores (~0.15-0.4, depending on numerics): the test
    # compares the two backends, so it needs detections, not a confident model
    common = [f"source={images}", "conf_thres=0.05"]
    run_cli("predict", tmp / "pt", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", *common)
    proc = run_cli("predict", tmp / "onnx", "backend=onnx", f"model={out / 'checkpoints' / 'model.onnx'}", *common)
    assert "(onnx)" in proc.stdout
    pt = json.loads((tmp / "pt" / "predictions.json").read_text())
    ort = json.loads((tmp / "onnx" / "predictions.json").read_text())
    assert [r["file"] for r in pt] == [r["file"] for r in ort]
    assert sum(len(r["scores"]) for r in pt) > 0
    def rows(record):  # order-free: equal scores may come out in either order
        return sorted((c, round(s, 2), *(round(v) for v in b)) for c, s, b in
                      zip(record["classes"], record["scores"], record["boxes"]))

    same = sum(rows(a) == rows(b) for a, b in zip(pt, ort))
    assert same == len(pt), f"{len(pt) - same} of {len(pt)} images differ"
