"""Problems found at start-up, through the real commands: a wrong type in a config group fails at
composition naming the key; an output folder that cannot be written fails before any data or model
work; a COCO image entry without ``width`` says the key is missing; ``model.weights`` with a plain
state dict (official ``model.N.*`` keys or this project's own) loads it and reports the counts."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.helpers import run_cli
from tests.integration.test_class_lists import TINY, TRAIN_CATS, coco_args, write_coco
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.models import build_model
from yolov7_lightning.models.official_keys import key_map


@pytest.mark.parametrize("override,key", [("schedule.epochs=abc", "schedule.epochs"), ("optim.lr0=fast", "optim.lr0"),
                                          ("trainer.max_epochs=x", "trainer.max_epochs"),
                                          ("assigner.lead.topk=1.5", "assigner.lead.topk"),
                                          ("loss.box=no", "loss.box"), ("optim.nesterov=maybe", "optim.nesterov"),
                                          # the command's own keys are typed too (config.py TrainConfig)
                                          ("overwrite=maybe", "overwrite"), ("save_period=often", "save_period"),
                                          ("export.enabled=perhaps", "export.enabled")])
def test_wrong_type_fails_at_composition(tmp_path, override, key):
    code, _, err = run_cli(train_cli.main, override, f"hydra.run.dir={tmp_path}", f"data.source.root={tmp_path / 'd'}")
    assert code == 1
    assert f"Error merging override {override}" in err and f"full_key: {key}" in err, err
    assert not (tmp_path / "d").exists()  # nothing ran


def test_unwritable_checkpoint_folder_fails_at_start(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the folder should be")  # unwritable even for root
    code, _, err = run_cli(train_cli.main, f"hydra.run.dir={run}", f"data.source.root={tmp_path / 'd'}")
    assert code == 1
    assert err.strip() == (f"error: {run / 'checkpoints'}: output folder is not writable (File exists); "
                           "fix its permissions or choose another hydra.run.dir"), err
    assert not (tmp_path / "d").exists()  # failed before the data was generated


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_checkpoint_folder_fails_at_start(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints").chmod(0o555)
    code, _, err = run_cli(train_cli.main, f"hydra.run.dir={run}", f"data.source.root={tmp_path / 'd'}")
    assert code == 1 and f"error: {run / 'checkpoints'}: output folder is not writable" in err


def test_plain_state_dicts_as_weights_and_coco_entry_without_width(tmp_path):
    """One fast_dev_run: official-key state dict for 80 classes into a 3-class model (the head stays at
    init, everything else loads); a val image entry without 'width' is a counted skip naming the key."""
    write_coco(tmp_path, "train", TRAIN_CATS)
    val = write_coco(tmp_path, "val", TRAIN_CATS)
    data = json.loads(val.read_text())
    del data["images"][1]["width"]
    val.write_text(json.dumps(data))
    source = build_model("yolov7-tiny", num_classes=80)
    official = {ok: source.state_dict()[k] for ok, k in key_map(source, "training").items()}
    weights = tmp_path / "official_state_dict.pt"
    torch.save(official, weights)
    run = tmp_path / "run"
    code, out, err = run_cli(train_cli.main, *coco_args(tmp_path), *TINY, "model=yolov7-tiny", f"model.weights={weights}",
                             f"hydra.run.dir={run}")
    assert code == 0, out[-3000:] + err[-3000:]
    assert (f"{weights} (official YOLOv7 checkpoint): 335 tensors loaded, 9 shape-mismatched, 0 missing, "
            "0 unexpected") in out
    assert "the detection head (built for 3 classes) keeps its initialisation" in out
    assert "skipped 1 x image entry without its 'width' key" in out and "1.jpg" in out
