"""The DataModule composed from the real Hydra config, shrunk: contract, reproducibility, workers,
cache, and the yolov7-data command."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from yolov7_lightning.cli.data import run as data_run
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.data import YoloDataModule, register_data_configs


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    register_data_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=None, overrides=[
            "+data=shapes", "+augment=scratch_tiny", f"data.source.root={root}", "data.source.num_train=24",
            "data.source.num_val=10", "data.source.image_size=96", "data.img_size=[64,96]", "data.batch_size=4",
            "data.num_workers=0"])


def _dm(cfg, **kw) -> YoloDataModule:
    return instantiate(cfg.data, augment=cfg.augment, **kw)


def _first(loader, n=2):
    out = []
    for i, b in enumerate(loader):
        out.append(b)
        if i + 1 == n:
            break
    return out


def test_config_groups_compose_with_schemas():
    register_data_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for aug in ("scratch_p5", "scratch_p6", "scratch_tiny", "none"):
            c = compose(config_name=None, overrides=["+data=coco", f"+augment={aug}"])
            assert c.data.source.kind == "coco" and "enabled" in c.augment
        c = compose(config_name=None, overrides=["+data=yolo", "+augment=scratch_p5"])
        assert c.augment.scale == 0.9 and c.augment.mixup == 0.15
        with pytest.raises(ConfigCompositionException, match=r"Could not override 'augment.mosiac'"):
            compose(config_name=None, overrides=["+data=shapes", "+augment=none", "augment.mosiac=1"])


def test_train_and_val_batches_honour_the_contract(cfg):
    dm = _dm(cfg)
    dm.setup("fit")
    assert dm.names == ["circle", "square", "triangle", "star", "cross"] and dm.category_ids == [1, 2, 3, 4, 5]
    for b in _first(dm.train_dataloader()):
        assert b["images"].shape == (4, 3, 64, 96) and b["images"].dtype == torch.float32
        assert 0 <= b["images"].min() and b["images"].max() <= 1
        t = b["targets"]
        assert t.shape[1] == 6 and t[:, 0].max() < 4
        assert (t[:, 2] <= 96).all() and (t[:, 3] <= 64).all() and (t[:, 4:] > 2).all()  # pixels, not normalised
    val = list(dm.val_dataloader())
    assert sum(len(b["meta"]) for b in val) == 10
    for b in val:
        m = b["meta"][0]
        assert m.ratio_hw is not None and b["images"].shape[2:] == m.input_hw
        rec = next(r for r in dm.dataset("val").index.records if r.image_id == m.image_id)
        t = b["targets"][b["targets"][:, 0] == 0, 2:]
        xyxy = torch.cat([t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2], 1)
        assert torch.allclose(m.to_original(xyxy), torch.from_numpy(rec.boxes), atol=1e-3)  # exact way back


def test_reproducible_by_seed_and_same_with_workers(cfg):
    base = _first(_dm(cfg, seed=1).train_dataloader())
    again = _first(_dm(cfg, seed=1, num_workers=2, persistent_workers=True).train_dataloader())
    other = _first(_dm(cfg, seed=2).train_dataloader())
    for a, b in zip(base, again):
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["targets"], b["targets"])
    assert not torch.equal(base[0]["images"], other[0]["images"])


def test_cache_is_bounded_and_changes_nothing(cfg):
    dm = _dm(cfg, cache_gb=20_000 / 2**30)  # room for only a couple of 64x96 images
    dm.setup("fit")
    cache = dm.dataset("train").pipeline.cache
    assert 0 < len(cache) < 24 and cache.nbytes <= 20_000
    plain = _first(_dm(cfg).train_dataloader())
    cached = _first(dm.train_dataloader())
    assert torch.equal(plain[0]["images"], cached[0]["images"])


def test_uint8_transfer_converts_after_transfer(cfg):
    dm = _dm(cfg, transfer_uint8=True)
    b = _first(dm.val_dataloader(), 1)[0]
    assert b["images"].dtype == torch.uint8
    assert dm.on_after_batch_transfer(b, 0)["images"].dtype == torch.float32


def test_data_cli_generates_and_converts(cfg, tmp_path, capsys):
    register_configs()  # as the command does (hydra_app): data_tool.yaml selects the project's hydra/help
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        c = compose(config_name="data_tool", overrides=[f"out={tmp_path}", "source.num_train=3", "source.num_val=2"])
        folder = data_run(c)
        assert len(list((folder / "images/train").glob("*.jpg"))) == 3
        imgs = tmp_path / "y" / "images"
        imgs.mkdir(parents=True)
        (tmp_path / "y/labels").mkdir()
        for p in (folder / "images/val").glob("*.jpg"):
            (imgs / p.name).write_bytes(p.read_bytes())
        (tmp_path / "y/labels/000000.txt").write_text("2 0.5 0.5 0.25 0.5\n")
        c = compose(config_name="data_tool", overrides=["action=yolo2coco", f"images={imgs}",
                                                        f"out={tmp_path}/o.json", "names=[a,b,c]"])
        data_run(c)
    coco = json.loads((tmp_path / "o.json").read_text())
    assert len(coco["images"]) == 2 and coco["annotations"][0]["bbox"] == [120.0, 80.0, 80.0, 160.0]
    assert "-> " in capsys.readouterr().out
