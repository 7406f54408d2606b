"""Files of the previous versions still load, with the same weights and outputs: a training checkpoint
as the project wrote it before the format number (and one from before the specs), and a deploy file
of that version. New files carry the format number; a newer format than this code is one line naming
the file."""

from __future__ import annotations

import lightning
import pytest
import torch

from tests.helpers import run_cli
from tests.unit.config.test_specs import SCALING, old_hparams
from yolov7_lightning.assign import Assigner, HeadRule
from yolov7_lightning.cli import export as export_cli
from yolov7_lightning.errors import CheckpointError, ConfigError, UserError
from yolov7_lightning.eval.detector import TorchDetector
from yolov7_lightning.export.deploy import DEPLOY_FORMAT, load_deploy, load_source, save_deploy, source_from_model
from yolov7_lightning.models import ModelSpec
from yolov7_lightning.models.checkpoint_reader import read_checkpoint, recorded_spec
from yolov7_lightning.models.checkpoint_upgrades import FORMAT, FORMAT_KEY, upgrade, upgrade_hparams
from yolov7_lightning.models.fuse import to_deploy
from yolov7_lightning.training.checkpoint import load_module
from yolov7_lightning.specs import to_spec
from yolov7_lightning.training.module import YOLOv7Module

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def randomised(module: YOLOv7Module, seed: int) -> YOLOv7Module:
    """Every float tensor random (BN statistics too), so a tensor loaded from the wrong place shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.2 + 0.9)
    return module.eval()


def previous_version_checkpoint(module: YOLOv7Module, hparams: dict, state: dict | None) -> dict:
    """A Lightning checkpoint the way the previous version wrote it (``on_save_checkpoint``): no format
    number, the training state under ``yolov7``, the weights contiguous, the hyper-parameters as given."""
    ckpt = {"epoch": 4, "global_step": 40, "pytorch-lightning_version": lightning.__version__,
            "state_dict": {k: v.contiguous() for k, v in module.state_dict().items()},
            "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
            "hparams_name": "kwargs", "hyper_parameters": hparams}
    if state is not None:
        ckpt["yolov7"] = state
    return ckpt


@pytest.fixture(scope="module")
def current(tmp_path_factory):
    """(the module, the file) of the previous version's checkpoint with the current hyper-parameters."""
    torch.manual_seed(0)
    module = randomised(YOLOv7Module(model=ModelSpec("yolov7-tiny", num_classes=2), loss={}, assigner={
        "strategy": "lead_only"}, optim={}, schedule={}, image_size=64, batch_size=2, names=["a", "b"],
        category_ids=[3, 7], channels_last=True), seed=2)
    path = tmp_path_factory.mktemp("previous") / "last.ckpt"
    state = {"iteration": 40, "nonfinite_total": 1, "class_maps": [0.5, 0.25], "precision": "32-true"}
    torch.save(previous_version_checkpoint(module, dict(module.hparams), state), path)
    return module, path


def assert_same_network(module: YOLOv7Module, loaded: torch.nn.Module) -> None:
    want, got = module.model.state_dict(), loaded.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(X), module.model.eval()(X))


def test_the_previous_versions_training_checkpoint_loads_the_same(current):
    module, path = current
    ckpt = read_checkpoint(path)
    assert (ckpt.kind, ckpt.raw[FORMAT_KEY], ckpt.names, ckpt.image_size) == ("training", 1, ["a", "b"], 64)
    assert ckpt.hparams == dict(module.hparams)  # the current layout: nothing to change
    assert ckpt.spec == {k: v for k, v in dict(module.hparams)["model"].items() if v is not None}
    assert FORMAT_KEY not in torch.load(path, weights_only=True)  # the file itself is left as it was

    loaded = load_module(path, purpose="yolov7-eval")
    assert dict(loaded.hparams) == dict(module.hparams)
    assert_same_network(module, loaded.model)
    detector = TorchDetector.from_checkpoint(path)
    assert (detector.names, detector.category_ids, detector.channels_last) == (["a", "b"], [3, 7], True)
    assert_same_network(module, detector.model)
    source = load_source(path)
    assert (source.kind, source.names, source.image_size) == ("training", ["a", "b"], 64)
    assert_same_network(module, source.model)

    resumed = YOLOv7Module(**ckpt.hparams)
    resumed.on_load_checkpoint(torch.load(path, weights_only=True))  # as Lightning hands it over, unread by us
    assert (resumed.iteration, resumed.nonfinite_total, resumed.class_maps) == (40, 1, [0.5, 0.25])


def test_a_checkpoint_from_before_the_specs_loads_the_run_it_recorded(tmp_path):
    """Hyper-parameters with ``_target_`` keys, ``model.weights``, the assigner's ``aux_weight`` /
    ``coarse_bound`` and ``lead_only`` rule, ``evaluation.predict_conf``; a training state without
    ``class_maps`` and ``precision``."""
    hp = {**old_hparams(), "evaluation": {"backend": "torchmetrics", "conf_thres": 0.01, "predict_conf": 0.25,
                                          "predict_iou": 0.45}}
    module = randomised(YOLOv7Module(**hp), seed=3)
    path = tmp_path / "old.ckpt"
    torch.save(previous_version_checkpoint(module, hp, {"iteration": 7, "nonfinite_total": 0}), path)

    ckpt = read_checkpoint(path)
    assert ckpt.spec == {"variant": "yolov7-tiny", "num_classes": 2, "repconv": "planned", "scaling": SCALING}
    assert ckpt.hparams["assigner"] == {"strategy": "lead_only", "lead": {"offset": 0.5, "topk": 10},
                                        "aux": {"offset": 1.0, "topk": 20}, "iou_weight": 3.0, "cls_weight": 1.0,
                                        "anchor_t": 4.0, "cross_gt": True}
    assert ckpt.hparams["loss"] == {"aux_weight": 0.5, "coarse_bound": "distance", "box": 0.05, "obj": 1.0,
                                    "cls": 0.5, "balance": None, "label_smoothing": 0.0}
    assert ckpt.hparams["evaluation"] == {"backend": "torchmetrics", "conf_thres": 0.01}
    assert ckpt.raw["yolov7"] == {"iteration": 7, "nonfinite_total": 0, "class_maps": None, "precision": None}

    loaded = load_module(path)
    assert loaded.loss_fn.assigner == Assigner("lead_only", lead=HeadRule(0.5, 10), aux=HeadRule(1.0, 20))
    assert (loaded.loss_fn.aux_weight, loaded.loss_fn.coarse_bound) == (0.5, "distance")
    assert (loaded.eval_settings.backend, loaded.eval_settings.conf_thres) == ("torchmetrics", 0.01)
    assert_same_network(module, loaded.model)
    assert_same_network(module, TorchDetector.from_checkpoint(path).model)

    # Lightning's own loader (no reader of ours in between): the hyper-parameters and the training state
    again = YOLOv7Module.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert again.loss_fn.assigner == loaded.loss_fn.assigner and (again.iteration, again.class_maps) == (7, None)
    assert_same_network(module, again.model)


def test_the_previous_versions_deploy_file_loads_the_same(current, tmp_path):
    module, _ = current
    fused = to_deploy(module.model)
    path = tmp_path / "deploy.pt"
    torch.save({"format": DEPLOY_FORMAT, "version": 1, "model": {"variant": "yolov7-tiny", "num_classes": 2},
                "names": ["a", "b"], "image_size": 64,
                "state_dict": {k: v.detach().clone() for k, v in fused.state_dict().items()}}, path)
    ckpt = read_checkpoint(path)
    assert (ckpt.kind, ckpt.raw[FORMAT_KEY], ckpt.names, ckpt.spec) == (
        "deploy", 1, ["a", "b"], {"variant": "yolov7-tiny", "num_classes": 2})
    loaded = load_deploy(path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in fused.state_dict().items())
    with torch.no_grad():
        assert torch.equal(loaded(X), fused(X))

    old = torch.load(path, weights_only=True)
    torch.save({**old, "version": 2}, path)
    with pytest.raises(CheckpointError, match=r"deploy.pt: deploy file version 2 is newer than this code \(1\)"):
        read_checkpoint(path)


def test_new_files_carry_the_format_number(current, tmp_path):
    module, _ = current
    written: dict = {}
    module.on_save_checkpoint(written)
    assert written[FORMAT_KEY] == FORMAT == 1
    assert written["yolov7"] == {"iteration": 0, "nonfinite_total": 0, "class_maps": None, "precision": None}
    path = save_deploy(source_from_model(module.model, names=["a", "b"], image_size=64), tmp_path / "deploy.pt")
    raw = torch.load(path, weights_only=True)
    assert (raw[FORMAT_KEY], raw["version"]) == (1, 1)


def test_current_hyper_parameters_pass_unchanged(current):
    module, _ = current
    hp = dict(module.hparams)
    assert upgrade_hparams(hp) == hp
    ckpt = previous_version_checkpoint(module, hp, {"iteration": 1, "nonfinite_total": 0, "class_maps": None,
                                                   "precision": None})
    once = upgrade(ckpt, "training", "x.ckpt")
    assert upgrade(once, "training", "x.ckpt") == once and FORMAT_KEY not in ckpt


def test_a_newer_format_is_one_line_naming_the_file(current, tmp_path):
    module, _ = current
    path = tmp_path / "newer.ckpt"
    state = {"iteration": 1, "nonfinite_total": 0, "class_maps": None, "precision": None}
    torch.save({**previous_version_checkpoint(module, dict(module.hparams), state), FORMAT_KEY: FORMAT + 1}, path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert isinstance(e.value, UserError)
    assert str(e.value) == (f"{path}: checkpoint format 2 is newer than this version of yolov7-lightning reads (up "
                            "to 1); read it with the version that wrote it, or a newer one")
    code, _, err = run_cli(export_cli.main, f"ckpt={path}", f"hydra.run.dir={tmp_path / 'export'}")
    assert (code, err.strip()) == (1, f"error: {e.value}")
    torch.save({"format": DEPLOY_FORMAT, FORMAT_KEY: "1"}, path)
    with pytest.raises(CheckpointError, match=r"newer.ckpt: 'yolov7_format' is '1', not a format number"):
        read_checkpoint(path)


def test_only_the_upgrades_drop_keys(tmp_path):
    """The keys of older files are dropped by name; any other key that is not a spec field is an error
    naming it, in a file's spec as in a config (the spec of a file used to drop it silently)."""
    assert recorded_spec({"_target_": "x", "variant": "yolov7-tiny", "weights": "a.pt", "aux_head": None}) == {
        "variant": "yolov7-tiny"}
    with pytest.raises(ConfigError, match=r"unknown key 'model.scaling.wdth'; valid keys of model.scaling: mode"):
        recorded_spec({"variant": "yolov7-tiny", "scaling": {"mode": "width", "wdth": 2.0}})
    with pytest.raises(ConfigError, match=r"unknown key 'model._target_'"):
        to_spec(ModelSpec, {"_target_": "x", "variant": "yolov7-tiny"}, "model")
    path = tmp_path / "typo.ckpt"
    torch.save({"hyper_parameters": {"model": {"variant": "yolov7-tiny", "num_clases": 2}},
                "state_dict": {"model.w": torch.ones(1)}}, path)
    with pytest.raises(CheckpointError, match=r"typo.ckpt: unknown key 'model.num_clases'"):
        read_checkpoint(path)
