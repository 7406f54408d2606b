"""Official checkpoint import: restricted unpickling, key mapping, form handling and errors.

Synthetic official checkpoints are pickled from fake ``models.yolo`` / ``models.common`` modules
(registered in ``sys.modules`` only while saving), with the official key layout generated from
``key_map`` and random values, so loading must recover exactly those values.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import VARIANTS
from yolov7_lightning.models import build_model
from yolov7_lightning.models.checkpoint_reader import load_official_weights
from yolov7_lightning.models.official_keys import FORMS, key_map
from yolov7_lightning.models.official_weights import OfficialCheckpoint, UnsafeCheckpointError, read_official_checkpoint

FAKE_CLASSES = {"models.yolo": ("Model", "IDetect", "IAuxDetect", "Detect"),
                "models.common": ("Conv", "RepConv", "SPPCSPC", "DownC", "Concat", "ImplicitA", "ImplicitM")}
TORCH_NN = {"conv": nn.Conv2d, "bn": nn.BatchNorm2d, "m": nn.ModuleList, "m2": nn.ModuleList, "ia": nn.ModuleList,
            "im": nn.ModuleList, "rbr_dense": nn.Sequential, "rbr_1x1": nn.Sequential}


# Key -> shape of every tensor of the 14 official configs (training/deploy x 7 variants), measured
# on the official YOLOv7 implementation and shipped compressed.
OFFICIAL_KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "official_keys.json.gz"


def _official_shapes(form: str, variant: str) -> dict[str, tuple[int, ...]]:
    with gzip.open(OFFICIAL_KEYS, "rt") as f:
        table = json.load(f)[f"{form}/{variant}"]
    return {k: tuple(v) for k, v in table.items()}


# --- fake official checkpoints ----------------------------------------------------------------

@contextmanager
def fake_official_modules():
    """Temporary ``models``, ``models.yolo``, ``models.common`` holding nn.Module subclasses."""
    assert not any(n in sys.modules for n in ("models", *FAKE_CLASSES)), "a real 'models' package is imported"
    mods = {"models": types.ModuleType("models")}
    for name, classes in FAKE_CLASSES.items():
        mods[name] = mod = types.ModuleType(name)
        for c in classes:
            setattr(mod, c, type(c, (nn.Module,), {"__module__": name, "__qualname__": c}))
        setattr(mods["models"], name.split(".")[1], mod)
    sys.modules.update(mods)
    try:
        yield {c: getattr(mods[n], c) for n, cs in FAKE_CLASSES.items() for c in cs}
    finally:
        for n in mods:
            sys.modules.pop(n, None)


def _new(cls) -> nn.Module:
    """An instance without running the class's own ``__init__`` (only pickled state matters)."""
    m = cls.__new__(cls)
    nn.Module.__init__(m)
    return m


def _layer_class(keys: list[str], fake: dict) -> type:
    if any(k.startswith("anchors") for k in keys):
        return fake["IAuxDetect" if any(k.startswith("m2.") for k in keys) else
                    "IDetect" if any(k.startswith("ia.") for k in keys) else "Detect"]
    if any(k.startswith("rbr_") for k in keys):
        return fake["RepConv"]
    if any(k.startswith("cv1.") for k in keys):
        return fake["SPPCSPC" if any(k.startswith("cv7.") for k in keys) else "DownC"]
    return fake["Conv"]


def _child_class(parent: str, name: str, fake: dict) -> type:
    if name.isdigit():
        return {"ia": fake["ImplicitA"], "im": fake["ImplicitM"]}.get(
            parent, nn.BatchNorm2d if (parent.startswith("rbr_") and name == "1") else nn.Conv2d)
    return TORCH_NN.get(name, fake["Conv"])  # cv1..cv7 of SPPCSPC / DownC


def _set_tensor(module: nn.Module, name: str, t: torch.Tensor) -> None:
    if name in ("weight", "bias", "implicit"):
        module.register_parameter(name, nn.Parameter(t))
    else:
        module.register_buffer(name, t)


def _fake_layer(keys: dict[str, torch.Tensor], fake: dict) -> nn.Module:
    layer = _new(_layer_class(list(keys), fake))
    for path, t in keys.items():
        *parts, leaf = path.split(".")
        node, parent = layer, ""
        for part in parts:
            if part not in node._modules:
                node.add_module(part, _new(_child_class(parent, part, fake)))
                if part in ("conv", "0") and type(node) is fake["Conv"]:
                    node.add_module("act", nn.SiLU())
            node, parent = node._modules[part], part
        _set_tensor(node, leaf, t)
    return layer


def fake_official_model(official_sd: dict[str, torch.Tensor], fake: dict, nc: int) -> nn.Module:
    """``Model`` whose ``state_dict()`` is ``official_sd`` (layers without tensors become Concat)."""
    by_layer: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in official_sd.items():
        _, idx, rest = key.split(".", 2)
        by_layer.setdefault(int(idx), {})[rest] = t
    seq = nn.Sequential(*(_fake_layer(by_layer[i], fake) if i in by_layer else _new(fake["Concat"])
                          for i in range(max(by_layer) + 1)))
    root = _new(fake["Model"])
    root.add_module("model", seq)
    root.nc, root.names, root.gr = nc, [f"class{i}" for i in range(nc)], 1.0
    root.yaml, root.hyp = {"nc": nc, "depth_multiple": 1.0}, {"lr0": 0.01, "box": 0.05}
    root.stride, root.class_weights = torch.tensor([8.0, 16.0, 32.0]), torch.ones(nc)
    seq[-1].grid = [torch.zeros(1)] * 3
    assert set(root.state_dict()) == set(official_sd)
    return root


def save_official(path: Path, official_sd: dict[str, torch.Tensor], nc: int, **extra) -> Path:
    with fake_official_modules() as fake:
        model = fake_official_model(official_sd, fake, nc).half()
        ckpt = {"epoch": -1, "best_fitness": None, "training_results": None, "model": model, "ema": None,
                "updates": None, "optimizer": None, "wandb_id": None, **extra}
        torch.save(ckpt, path)
    assert "models" not in sys.modules
    return path


def random_official(model: nn.Module, form: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The official ``form`` state dict of ``model``'s variant, filled with random (sane) values that
    are exact in fp16 (so a loaded model must equal them exactly)."""
    g = torch.Generator().manual_seed(seed)
    ours = model.state_dict()
    out = {}
    for ok, k in key_map(model, form).items():
        t = ours[k]
        if not t.is_floating_point():
            out[ok] = torch.randint(1, 10_000, t.shape, generator=g)
        elif k.endswith("running_var"):
            out[ok] = 0.5 + torch.rand(t.shape, generator=g)
        elif "anchor" in k or k.endswith(".implicit"):
            out[ok] = t * (1 + 0.1 * torch.rand(t.shape, generator=g)) + 0.05 * torch.randn(t.shape, generator=g)
        else:
            out[ok] = t + 0.05 * torch.randn(t.shape, generator=g)
    return {k: fp16(v) for k, v in out.items()}


def fp16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float() if t.is_floating_point() else t


def assert_loaded(model: nn.Module, official_sd: dict[str, torch.Tensor], form: str) -> None:
    ours = model.state_dict()
    for ok, k in key_map(model, form).items():
        assert torch.equal(ours[k], official_sd[ok]), f"{ok} -> {k}"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    model = build_model("yolov7-tiny", num_classes=80)
    sd = random_official(model, "training", seed=1)
    return save_official(tmp_path_factory.mktemp("tiny") / "yolov7-tiny.pt", sd, 80), sd


# --- key layout against the official lists -----------------------------------------------------

@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("variant", VARIANTS)  # the official ones: a new variant of your own has no official layers
def test_official_layer_files_match_key_map(variant, form):
    official = _official_shapes(form, variant)
    with torch.device("meta"):
        model = build_model(variant, num_classes=80)
    ours = model.state_dict()
    kmap = key_map(model, form)
    assert set(kmap) == set(official)
    assert {ok: tuple(ours[k].shape) for ok, k in kmap.items()} == official
    assert len(set(kmap.values())) == len(kmap)  # injective: maps back
    if form == "training":
        assert set(kmap.values()) == set(ours)


# --- round trips -------------------------------------------------------------------------------

def test_yolov7_tiny_training_roundtrip(tiny_ckpt):
    path, sd = tiny_ckpt
    ckpt = read_official_checkpoint(path)
    assert (ckpt.form, ckpt.num_classes, ckpt.path) == ("training", 80, str(path))
    assert set(ckpt.state_dict) == set(sd)
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in sd.items())
    assert ckpt.state_dict["model.77.m.0.weight"].dtype == torch.float32
    model = build_model("yolov7-tiny", num_classes=80)
    report = load_official_weights(model, path)
    assert_loaded(model, sd, "training")
    assert (report.missing, report.unexpected, report.implicit_reset) == ([], [], [])
    assert len(report.loaded) == len(model.state_dict()) == 344


def _fold_deploy(model: nn.Module, training_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official deploy state dict: drop ``ia``/``im``, fold them into the head convs (W'=W*im, b'=(b+W@ia)*im)."""
    ours = {k: fp16(training_sd[ok]).double() for ok, k in key_map(model, "training").items()}
    for i in range(model.detect.nl):
        w, b = ours[f"detect.m.{i}.weight"], ours[f"detect.m.{i}.bias"]
        ia, im = ours[f"detect.ia.{i}.implicit"].flatten(), ours[f"detect.im.{i}.implicit"].flatten()
        ours[f"detect.m.{i}.bias"] = (b + w.flatten(1) @ ia) * im
        ours[f"detect.m.{i}.weight"] = w * im.view(-1, 1, 1, 1)
    return {ok: ours[k].to(training_sd[ok].dtype) for ok, k in key_map(model, "deploy").items()}


def _fold_exact_head(model: nn.Module, training_sd: dict[str, torch.Tensor]) -> None:
    """Head values on coarse grids (W, b: /32, ia: /4 on 4 channels, im: 0.5/1/2) so that the folded
    tensors are exact in fp16 and the deploy model must match the training one to float32 rounding."""
    g = torch.Generator().manual_seed(5)
    for ok, k in key_map(model, "training").items():
        shape = training_sd[ok].shape
        if k.startswith("detect.m.") and k.endswith("weight"):
            training_sd[ok] = torch.randint(-2, 3, shape, generator=g) / 32
        elif k.startswith("detect.m."):
            training_sd[ok] = torch.randint(-64, 65, shape, generator=g) / 32
        elif k.startswith("detect.ia."):
            training_sd[ok] = torch.zeros(shape)
            training_sd[ok].view(-1)[torch.randperm(shape[1], generator=g)[:4]] = torch.tensor([0.25, -0.5, 0.75, 1.0])
        elif k.startswith("detect.im."):
            training_sd[ok] = torch.tensor([0.5, 1.0, 2.0])[torch.randint(0, 3, shape, generator=g)]


def test_yolov7_deploy_form_folds_implicit(tmp_path):
    model = build_model("yolov7", num_classes=80)
    training_sd = random_official(model, "training", seed=2)
    _fold_exact_head(model, training_sd)
    deploy_sd = _fold_deploy(model, training_sd)
    assert len(training_sd) == 566 and len(deploy_sd) == 560
    deploy = read_official_checkpoint(save_official(tmp_path / "deploy.pt", deploy_sd, 80))
    assert (deploy.form, deploy.num_classes) == ("deploy", 80)
    report = load_official_weights(model, deploy)
    assert_loaded(model, deploy_sd, "deploy")
    assert sorted(report.implicit_reset) == sorted(k for k in model.state_dict() if k.startswith(("detect.i")))
    assert report.missing == [] and len(report.implicit_reset) == 6
    for ia, im in zip(model.detect.ia, model.detect.im):
        assert torch.equal(ia.implicit, torch.zeros_like(ia.implicit))
        assert torch.equal(im.implicit, torch.ones_like(im.implicit))

    reference = build_model("yolov7", num_classes=80)
    load_official_weights(reference, save_official(tmp_path / "training.pt", training_sd, 80))
    assert not torch.equal(reference.detect.m[0].weight, model.detect.m[0].weight)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = model.eval()(x), reference.eval()(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_yolov7_w6_training_roundtrip(tmp_path):
    model = build_model("yolov7-w6", num_classes=80)
    sd = random_official(model, "training", seed=3)
    path = save_official(tmp_path / "w6.pt", sd, 80, best_fitness=np.array([0.51]), epoch=np.int64(299))
    ckpt = read_official_checkpoint(path)
    assert (ckpt.form, ckpt.num_classes, len(ckpt.state_dict)) == ("training", 80, 668)
    report = load_official_weights(model, ckpt)
    assert_loaded(model, sd, "training")
    assert report.missing == [] and len(report.loaded) == 668
    assert torch.equal(model.detect.anchor_grid, sd["model.122.anchor_grid"])

    no_aux = build_model("yolov7-w6", num_classes=80, aux_head=False)
    report = load_official_weights(no_aux, ckpt)
    assert sorted(report.unexpected) == sorted(k for k in sd if k.startswith(
        ("model.118.", "model.119.", "model.120.", "model.121.", "model.122.m2.")))
    assert_loaded(no_aux, sd, "training")

    deploy_sd = {ok: sd[ot] for ok, ot in zip(key_map(model, "deploy"), _training_keys_of_deploy(model))}
    report = load_official_weights(build_model("yolov7-w6", num_classes=80),
                                   OfficialCheckpoint(deploy_sd, "deploy", 80))
    assert sorted(report.missing) == sorted(k for k in model.state_dict() if k.startswith(("aux_convs.", "detect.m2.")))


def _training_keys_of_deploy(model: nn.Module) -> list[str]:
    """For each deploy key (in order), the training key of the same tensor of ours."""
    back = {k: ok for ok, k in key_map(model, "training").items()}
    return [back[k] for k in key_map(model, "deploy").values()]


# --- refusals and errors -----------------------------------------------------------------------

class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused(tmp_path, zipfile):
    target, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"epoch": -1, "model": _Evil(target)}, path, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(UnsafeCheckpointError, match="system") as err:
        read_official_checkpoint(path)
    assert str(path) in str(err.value)
    assert not target.exists()


def test_wrong_class_count_names_both(tiny_ckpt):
    path, _ = tiny_ckpt
    model = build_model("yolov7-tiny", num_classes=20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"checkpoint has 80 classes, model yolov7-tiny has 20"):
        load_official_weights(model, path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched


def test_wrong_variant_names_both(tiny_ckpt):
    path, _ = tiny_ckpt
    with pytest.raises(ValueError, match=r"checkpoint is yolov7-tiny \(training form.*model is yolov7 \("):
        load_official_weights(build_model("yolov7", num_classes=80), path)
    with pytest.raises(ValueError, match=r"checkpoint is yolov7-tiny .*model is yolov7-w6"):
        with torch.device("meta"):
            load_official_weights(build_model("yolov7-w6", num_classes=5), read_official_checkpoint(path))


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_official_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="garbage.pt: not a readable PyTorch checkpoint"):
        read_official_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2)}}, plain)
    with pytest.raises(ValueError, match=r"plain.pt: not an official YOLOv7 checkpoint.*'model'"):
        read_official_checkpoint(plain)
