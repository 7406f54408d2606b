"""``logger=wandb`` (offline) and the other loggers, from real short runs of ``yolov7-train``.

Two multiruns (one process each, 1 epoch per job): ``-m seed=1,2 logger=wandb`` (aux head on, so the
objectness figures show lead vs aux), read back from the offline ``.wandb`` files; and ``-m
logger=csv,tensorboard``, whose scalars must be the same and whose pictures must exist.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.test_train import SMALL
from yolov7_lightning.models import build_model
from yolov7_lightning.models.summary import summarize

NUM_IMAGES = 3


def multirun(tmp: Path, name: str, *overrides: str) -> Path:
    sweep = tmp / name
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", "-m", f"hydra.sweep.dir={sweep}",
           f"data.source.root={tmp / 'shapes'}", *SMALL, "export.enabled=false", "schedule.epochs=1",
           f"visuals.num_images={NUM_IMAGES}", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp / "wandb_home"),
           "WANDB_CACHE_DIR": str(tmp / "wandb_home" / "cache"), "WANDB_DATA_DIR": str(tmp / "wandb_home" / "data")}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return sweep


# ---- reading an offline run (the .wandb file: W&B's LevelDB-style log of protobuf records) ------------
def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, buf, off, block = [], b"", 7, 32768
    while off + 7 <= len(data):
        if block - off % block < 7:  # block trailer
            off += block - off % block
            continue
        _, length, kind = struct.unpack("<IHB", data[off:off + 7])
        chunk, off = data[off + 7:off + 7 + length], off + 7 + length
        if kind == 0 and length == 0:
            break
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):  # full or last
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(run_dir: Path) -> dict:
    """config, summary, history rows, name, group, exit code of an offline run folder."""
    (wandb_file,) = run_dir.glob("run-*.wandb")
    run = {"config": {}, "summary": {}, "history": [], "exit_code": None, "dir": run_dir, "file": wandb_file}
    for r in records(wandb_file):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.update(name=r.run.display_name, group=r.run.run_group, id=r.run.run_id,
                       start=r.run.start_time.seconds + r.run.start_time.nanos / 1e9)
            run["config"].update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "config":
            run["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "summary":
            run["summary"].update({_key(u): json.loads(u.value_json) for u in r.summary.update})
        elif kind == "history":
            run["history"].append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "exit":
            run["exit_code"] = r.exit.exit_code
    return run


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("loggers")


@pytest.fixture(scope="module")
def wandb_sweep(tmp):
    sweep = multirun(tmp, "wandb_sweep", "seed=1,2", "logger=wandb", "assigner=coarse_to_fine")  # with the aux head
    runs = []
    for job in ("0", "1"):
        found = list((sweep / job / "wandb").glob("offline-run-*"))
        assert len(found) == 1, found  # one run per job, in the job's folder
        runs.append(read_run(found[0]))
    return sweep, runs


@pytest.fixture(scope="module")
def csv_tb_sweep(tmp):
    return multirun(tmp, "csv_tb_sweep", "logger=csv,tensorboard")


def test_one_run_per_job_grouped_by_sweep_and_named_by_overrides(wandb_sweep):
    sweep, runs = wandb_sweep
    assert runs[0]["id"] != runs[1]["id"]
    assert [r["group"] for r in runs] == [sweep.name, sweep.name]
    assert [r["name"] for r in runs] == ["seed=1", "seed=2"]  # the swept key only, not the fixed overrides
    assert [r["config"]["seed"] for r in runs] == [1, 2]
    assert [r["exit_code"] for r in runs] == [0, 0]
    # job 0's run was finished (its file closed) before job 1's run started, not at the process exit
    assert runs[0]["file"].stat().st_mtime <= runs[1]["start"]


def test_config_summary_and_history(wandb_sweep):
    _, runs = wandb_sweep
    run = runs[0]
    config = run["config"]
    assert config["model"]["variant"] == "yolov7-tiny" and config["model"]["aux_head"] is True
    assert config["data"]["img_size"] == 128 and config["optim"]["nominal_batch"] == 8  # the resolved job config
    names = config["names"]
    expected = summarize(build_model("yolov7-tiny", num_classes=len(names), aux_head=True))
    for key in ("params_train", "params_deploy", "gflops_train", "gflops_deploy"):
        assert run["summary"][f"model/{key}"] == expected[key], key
        assert config["model_summary"][key] == expected[key], key
    keys = set().union(*run["history"])
    for component in ("lead/box", "lead/obj", "lead/cls", "aux/box", "aux/obj", "aux/cls"):
        assert f"train/{component}_step" in keys and f"train/{component}_epoch" in keys, component
        assert f"val/loss_{component}" in keys, component
    for key in ("val/map", "val/map50", "val/map75", "val/fitness", "lr", "trainer/global_step"):
        assert key in keys, key
    assert 0.0 <= run["summary"]["val/map"] <= run["summary"]["val/map50"] <= 1.0
    assert run["summary"]["lr"] > 0


def test_per_class_table(wandb_sweep):
    _, runs = wandb_sweep
    run = runs[0]
    (table,) = (run["dir"] / "files" / "media" / "table" / "val").glob("per_class_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["class", "AP", "AP50"]
    assert [row[0] for row in content["data"]] == run["config"]["names"]  # one row per class, in class order
    # the values of the job's own evaluation (one epoch: one validation), not merely numbers in range
    sweep, _ = wandb_sweep
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    expected = {name: round(ap, 5) for name, ap in metrics["per_class"].items()}  # the table rounds to 5 places
    assert {name: ap for name, ap, _ in content["data"]} == pytest.approx(expected, abs=1e-9)
    assert any(ap > 0 for _, ap, _ in content["data"])
    assert all(ap50 >= ap for _, ap, ap50 in content["data"] if ap >= 0)
    assert all(ap50 == -1.0 for _, ap, ap50 in content["data"] if ap == -1.0)  # no ground truth: both -1
    assert run["summary"]["val/map"] == pytest.approx(metrics["map"], abs=1e-6)


def test_summary_takes_the_epoch_metrics_json_reports(wandb_sweep):
    """The run summary: the numbers of the epoch metrics.json's ``top_level`` names, and both records."""
    sweep, runs = wandb_sweep
    for job, run in zip(("0", "1"), runs):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        chosen, summary = metrics[metrics["top_level"]], run["summary"]
        assert summary["top_level"] == metrics["top_level"] == "last"
        for key in ("map", "map50", "fitness", "epoch"):
            assert summary[key] == chosen[key], key
        for name in ("best", "last"):
            for key in ("epoch", "map", "map50", "map75", "fitness", "num_images"):
                assert summary[f"{name}/{key}"] == metrics[name][key], (name, key)


def test_images_with_boxes_and_objectness_maps(wandb_sweep):
    _, runs = wandb_sweep
    run = runs[0]
    names = run["config"]["names"]
    (row,) = [h for h in run["history"] if "val/images/_type" in h]
    assert row["val/images/_type"] == "images/separated" and row["val/images/count"] == NUM_IMAGES
    assert row["val/objectness/count"] == NUM_IMAGES
    media = run["dir"] / "files" / "media"
    assert len(list((media / "images" / "val").glob("images_*.png"))) == NUM_IMAGES
    assert len(list((media / "images" / "val").glob("objectness_*.png"))) == NUM_IMAGES
    width, height = row["val/images/width"], row["val/images/height"]
    assert len(row["val/images/all_boxes"]) == NUM_IMAGES
    for layers in row["val/images/all_boxes"]:  # every image has both box layers, with the class labels
        assert set(layers) == {"predictions", "ground_truth"}
        for layer, ref in layers.items():
            boxes = json.loads((run["dir"] / "files" / ref["path"]).read_text())
            assert {int(k): v for k, v in boxes["class_labels"].items()} == dict(enumerate(names))
            if layer == "ground_truth":
                assert boxes["box_data"], "every validation image of the shapes data has objects"
            for box in boxes["box_data"]:
                p, name = box["position"], names[box["class_id"]]
                assert -1 <= p["minX"] < p["maxX"] <= width + 1 and -1 <= p["minY"] < p["maxY"] <= height + 1
                if layer == "ground_truth":
                    assert box["box_caption"] == name and "scores" not in box
                else:
                    assert box["box_caption"].startswith(name) and 0.25 < box["scores"]["score"] <= 1.0


def csv_columns(run: Path) -> set[str]:
    with (run / "logs" / "version_0" / "metrics.csv").open() as f:
        return set(next(csv.reader(f))) - {"step"}


def tensorboard_tags(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (run / "tensorboard" / "version_0").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc.Tags()


def test_csv_and_tensorboard_get_the_same_scalars(csv_tb_sweep):
    columns = csv_columns(csv_tb_sweep / "0")
    tags = tensorboard_tags(csv_tb_sweep / "1")
    assert set(tags["scalars"]) == columns
    for key in ("val/map", "val/map50", "val/fitness", "lr", "train/lead/box_step", "val/loss_lead/obj", "epoch"):
        assert key in columns, key


def test_pictures_for_csv_and_tensorboard(csv_tb_sweep):
    tags = tensorboard_tags(csv_tb_sweep / "1")
    assert sorted(tags["images"]) == sorted([f"val/images/{i}" for i in range(NUM_IMAGES)]
                                            + [f"val/objectness/{i}" for i in range(NUM_IMAGES)])
    assert "val/per_class/text_summary" in tags["tensors"]
    assert not (csv_tb_sweep / "1" / "visuals").exists()  # TensorBoard takes the pictures itself
    folder = csv_tb_sweep / "0" / "visuals" / "epoch_000"
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(
        [f"boxes_{i}.png" for i in range(NUM_IMAGES)] + [f"objectness_{i}.png" for i in range(NUM_IMAGES)])
    hparams = yaml.safe_load((csv_tb_sweep / "0" / "logs" / "version_0" / "hparams.yaml").read_text())
    with (folder / "per_class.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "AP", "AP50"] and [r[0] for r in rows[1:]] == hparams["names"]
    expected = summarize(build_model("yolov7-tiny", num_classes=len(hparams["names"])))
    assert hparams["model_summary"]["params_train"] == expected["params_train"]
    assert hparams["seed"] == 0 and hparams["data"]["img_size"] == 128
