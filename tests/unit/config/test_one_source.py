"""Each default is written once: the dataclass a config group is built from (its Hydra schema) holds
the defaults, the group's YAML files only what differs from them, and the NMS thresholds come from
the presets of ``eval/nms.py`` (``${nms:<preset>.<field>}``)."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.eval.nms import PREDICT, TEST

CONF = Path(CONFIG_DIR)
NMS_KEYS = ("conf_thres", "iou_thres", "max_det", "multi_label")
# (file, key) restating the schema's default on purpose; each with why. Empty: none needed so far.
ALLOWED: dict[tuple[str, str], str] = {}


# command configs typed by a schema in the ConfigStore (not a group)
COMMAND_SCHEMAS = {"data_tool.yaml": "data_tool_schema", "train.yaml": "train_schema"}


def schema_defaults(group: str) -> DictConfig | None:
    """The defaults of ``group``'s schema (``schema/<group>`` in the ConfigStore), None without one."""
    return stored(f"schema/{group}.yaml")


def stored(name: str) -> DictConfig | None:
    register_configs()
    try:
        return ConfigStore.instance().load(name).node
    except Exception:
        return None


def restated(values: Any, defaults: Any, where: str) -> list[str]:
    """Keys of ``values`` (a YAML file's mapping) equal to the schema's ``defaults``, as ``where.key``."""
    found = []
    for key in values.keys():
        if key == "defaults" or key not in defaults:
            continue
        value, default = values._get_node(key), defaults._get_node(key)
        if isinstance(value, DictConfig) and isinstance(default, DictConfig):
            found += restated(value, default, f"{where}.{key}")
        elif not OmegaConf.is_config(value) and value._value() == default._value():
            found.append(f"{where}.{key}")
    return found


def inherited(path: Path) -> DictConfig:
    """What ``path`` (a group option) gets from its defaults list: the schema and the sibling options
    it extends, in order, before its own keys."""
    base = OmegaConf.create({})
    for entry in OmegaConf.load(path).get("defaults", []):
        if not isinstance(entry, str) or entry == "_self_":  # {override /group: option}: another group's
            continue
        if str(entry).startswith("/schema/"):
            parent = schema_defaults(path.parent.name)
        else:
            parent = OmegaConf.merge(inherited(path.parent / f"{entry}.yaml"),
                                     own_keys(path.parent / f"{entry}.yaml"))
        base = OmegaConf.merge(base, parent)
    return base


def own_keys(path: Path) -> DictConfig:
    raw = OmegaConf.load(path)
    return OmegaConf.create({k: raw._get_node(k) for k in raw.keys() if k != "defaults"})


def group_files() -> list[Path]:
    return sorted(p for p in CONF.glob("*/*.yaml") if schema_defaults(p.parent.name) is not None)


def test_every_group_with_a_schema_is_checked():
    groups = {p.parent.name for p in group_files()}
    assert {"assigner", "augment", "data", "loss", "model", "optim", "scaling", "schedule", "trainer"} <= groups


def test_no_group_file_restates_its_schema_default():
    found = []
    for path in group_files():
        raw = OmegaConf.load(path)
        where = f"{path.relative_to(CONF)}:"
        found += [k for k in restated(raw, inherited(path), where)
                  if (k.split(":", 1)[0], k.split(":", 1)[1].lstrip(".")) not in ALLOWED]
    for name, schema in COMMAND_SCHEMAS.items():
        found += restated(OmegaConf.load(CONF / name), stored(f"{schema}.yaml"), f"{name}:")
    assert not found, "these keys restate the default they inherit (the schema's or the option they extend; delete them): " + ", ".join(found)


def test_the_check_catches_a_restated_default():
    defaults = schema_defaults("optim")
    raw = OmegaConf.create({"defaults": ["sgd"], "lr0": defaults.lr0, "nesterov": not defaults.nesterov})
    assert restated(raw, defaults, "optim/x.yaml:") == ["optim/x.yaml:.lr0"]
    nested = OmegaConf.create({"lead": {"offset": schema_defaults("assigner").lead.offset, "topk": 10}})
    assert restated(nested, schema_defaults("assigner"), "a:") == ["a:.lead.offset"]


def nms_keys(node: Any, where: str) -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            value = node._get_node(key)
            if key in NMS_KEYS:
                found.append((f"{where}.{key}", value._value()))
            found += nms_keys(value, f"{where}.{key}")
    return found


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_nms_thresholds_in_configs_come_from_the_presets(path):
    for where, value in nms_keys(OmegaConf.load(path), str(path.relative_to(CONF))):
        assert isinstance(value, str) and value.startswith("${nms:"), f"{where}={value}: use ${{nms:<preset>.<key>}}"


def test_the_presets_are_the_official_protocols():
    # official test.py (COCO mAP) and detect.py (prediction) defaults
    assert (TEST.conf_thres, TEST.iou_thres, TEST.max_det, TEST.multi_label) == (0.001, 0.65, 300, True)
    assert (PREDICT.conf_thres, PREDICT.iou_thres, PREDICT.max_det, PREDICT.multi_label) == (0.25, 0.45, 300, False)


def test_commands_compose_the_presets(hydra_ctx):
    from hydra import compose

    for name, preset, overrides in (("train", TEST, []), ("eval", TEST, ["ckpt=x"])):
        cfg = compose(name, overrides=overrides)
        assert {k: cfg.evaluation[k] for k in NMS_KEYS} == preset.kwargs()
    cfg = compose("export", overrides=["ckpt=x"])
    assert {k: cfg[k] for k in NMS_KEYS} == PREDICT.kwargs()
    predict = OmegaConf.load(CONF / "standalone" / "predict.yaml")
    assert {k: predict[k] for k in ("conf_thres", "iou_thres", "max_det")} == {
        k: v for k, v in PREDICT.kwargs().items() if k != "multi_label"}


def test_data_has_no_key_the_commands_override(hydra_ctx):
    from hydra import compose
    from hydra.errors import ConfigCompositionException

    cfg = compose("train")
    assert "seed" not in cfg.data and "stride" not in cfg.data  # the run's seed, the network's stride
    with pytest.raises(ConfigCompositionException):
        compose("train", overrides=["data.stride=64"])  # was silently replaced by the network's stride


def literal_defaults(func, schema) -> list[str]:
    """Parameters of ``func`` that are fields of ``schema`` (a dataclass) and whose default is written
    as a value in the source instead of the schema's (``DataConfig.batch_size``)."""
    names = {f.name for f in fields(schema)}
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    args = tree.body[0].args
    positional = args.args[len(args.args) - len(args.defaults):]
    pairs = [*zip(positional, args.defaults), *((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d)]
    return [a.arg for a, d in pairs if a.arg in names and isinstance(d, ast.Constant) and d.value is not None]


def test_the_objects_a_group_builds_take_its_defaults():
    from yolov7_lightning.config import ExportConfig, VisualsConfig
    from yolov7_lightning.data import YoloDataModule
    from yolov7_lightning.data.config import DataConfig
    from yolov7_lightning.training.callbacks import DeployExport, ValidationVisuals

    for func, schema in ((YoloDataModule.__init__, DataConfig), (ValidationVisuals.__init__, VisualsConfig),
                         (DeployExport.__init__, ExportConfig)):
        assert not literal_defaults(func, schema), f"{func.__qualname__} restates {schema.__name__}: " \
            f"{literal_defaults(func, schema)} (write {schema.__name__}.<field>)"
    assert YoloDataModule(img_size=64).batch_size == DataConfig.batch_size
    assert DeployExport().options.formats == tuple(ExportConfig().formats)


def test_the_check_catches_a_literal_default():
    from yolov7_lightning.data.config import DataConfig

    def restating(self, img_size=640, batch_size: int = DataConfig.batch_size, seed: int = 0, *, rect: bool = False):
        pass

    assert literal_defaults(restating, DataConfig) == ["img_size", "rect"]


def test_callback_entries_do_not_restate_their_callbacks_defaults(hydra_ctx):
    """conf/callbacks/*.yaml: an option written as a value differs from the callback's own default
    (interpolations follow the command's keys)."""
    from hydra.utils import get_class

    found = []
    for path in sorted((CONF / "callbacks").glob("*.yaml")):
        for name, entry in OmegaConf.load(path).items():
            if not isinstance(entry, DictConfig):
                continue
            params = inspect.signature(get_class(entry._target_).__init__).parameters
            for key in entry:
                node = entry._get_node(key)
                if key in params and not OmegaConf.is_interpolation(entry, key) and not OmegaConf.is_missing(entry, key) \
                        and params[key].default is not inspect.Parameter.empty and node._value() == params[key].default:
                    found.append(f"{path.name}:{name}.{key}")
    assert not found, "these options restate the callback's default (delete them): " + ", ".join(found)


def test_export_tolerances_come_from_the_code(hydra_ctx):
    from hydra import compose

    from yolov7_lightning.export.check import FP16_TOLERANCES, Tolerances

    keys = set(Tolerances().as_dict())
    for path in sorted(CONF.rglob("*.yaml")):
        written = [f"{where}" for where, _ in nms_keys_named(OmegaConf.load(path), str(path.relative_to(CONF)), keys)]
        assert not written, f"tolerances written in a config (they are export/check.py's): {written}"
    cfg = compose("export", overrides=["ckpt=x"])
    assert dict(cfg.tolerances) == Tolerances().as_dict() and dict(cfg.tolerances_half) == FP16_TOLERANCES.as_dict()


def nms_keys_named(node: Any, where: str, names: set[str]) -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            value = node._get_node(key)
            if key in names:
                found.append((f"{where}.{key}", value._value()))
            found += nms_keys_named(value, f"{where}.{key}", names)
    return found


def test_the_train_command_reads_its_keys_plainly(hydra_ctx):
    """Every key the train command and its run folder read is in a schema (``TrainConfig``, the groups'),
    so none is re-defaulted with ``.get(key, default)``; ``logger`` and ``callbacks`` are optional groups."""
    from hydra import compose

    from yolov7_lightning.config import TrainConfig

    cfg = compose("train")
    assert cfg.overwrite is False and cfg.ckpt_path is None and {f.name for f in fields(TrainConfig)} <= set(cfg)
    src = Path(__file__).parents[3] / "src" / "yolov7_lightning"
    for name in ("cli/train.py", "training/run_folder.py"):
        text = (src / name).read_text()
        reads = re.findall(r"(?:cfg|config)(?:\.\w+)*\.get\(\s*\"(\w+)\"", text)
        assert set(reads) <= {"logger", "callbacks"}, f"{name} re-defaults {reads}"
