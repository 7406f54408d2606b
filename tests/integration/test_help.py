"""``--help`` of every command, as a user reads it: what the command does first, its main options,
the config groups a user chooses (default marked), no Hydra boilerplate, on a screen or two."""

from __future__ import annotations

import importlib

import pytest

from tests.helpers import run_cli

# command -> (module in yolov7_lightning.cli, options its help names before anything else)
COMMANDS = {
    "train": ("train", ["model=", "data=", "data.source.root=", "model.num_classes=", "model.weights=",
                        "schedule.epochs=", "data.batch_size=", "trainer=gpu", "logger=wandb", "ckpt_path="]),
    "eval": ("eval", ["ckpt=", "data=", "split=", "tta=", "save_txt="]),
    "predict": ("predict", ["ckpt=", "backend=onnx", "model=", "source=", "conf_thres=", "iou_thres=", "classes="]),
    "export": ("export", ["ckpt=", "format=", "out_dir=", "nms=true", "image_size=", "dynamic_size="]),
    "data": ("data", ["action=", "out=", "images=", "names=", "variant=", "format="]),
    "info": ("info", ["model=", "model.num_classes=", "scaling=", "image_size=", "format="]),
    "report": ("report", ["dir=", "out=", "title=", "wandb="]),
}

# the groups each command offers, with its default in brackets (conf/<command>.yaml's defaults list)
GROUPS = {
    "train": {"assigner": "[lead_only]", "model": "[yolov7-tiny-half]", "scaling": "[width_half]", "data": "[shapes]",
              "augment": "[none]", "loss": "[yolov7_tiny]", "optim": "[adamw_first]", "schedule": "[first]",
              "trainer": "[cpu]", "evaluation": "[coco]", "logger": "[csv]", "callbacks": "[default]",
              "recipe": "[none]", "experiment": "[none]", "hparams_search": "[none]"},
    "eval": {"data": "[shapes]", "evaluation": "[coco]", "trainer": "[cpu]"},
    "data": {"data": "[shapes]"},
    "info": {"assigner": "[lead_only]", "model": "[yolov7]", "scaling": "[none]"},
    "predict": {}, "export": {}, "report": {},
}


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    out = {}
    for name, (module, _) in COMMANDS.items():
        main = importlib.import_module(f"yolov7_lightning.cli.{module}").main
        code, stdout, stderr = run_cli(main, "--help")
        assert code == 0, stderr
        out[name] = stdout
    return out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_opens_with_the_command_and_its_options(helps, name):
    text = helps[name]
    lines = text.rstrip("\n").splitlines()
    first = lines[0]
    assert first.startswith(f"yolov7-{name}: ") and len(first.split()) >= 6, first
    assert len(lines) < 80, len(lines)
    head = text.split("Config groups")[0]  # the options come before the groups
    missing = [opt for opt in COMMANDS[name][1] if opt not in head]
    assert not missing, f"yolov7-{name} --help does not name {missing}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_no_hydra_boilerplate_nor_internals(helps, name):
    text = helps[name]
    assert "powered by hydra" not in text.lower()
    assert "${" not in text and "$APP_CONFIG_GROUPS" not in text
    assert "schema" not in text and "standalone" not in text
    assert "--cfg job" in text and "--hydra-help" in text  # where the whole config and Hydra's flags are


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_lists_the_groups_a_user_chooses_with_their_default(helps, name):
    text = helps[name]
    listed = {}
    if "Config groups" in text:
        block = text.split("Config groups", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        listed = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in block}
    assert set(listed) == set(GROUPS[name])
    for group, default in GROUPS[name].items():
        options = [o.strip() for o in listed[group].split(",")]
        assert options.count(default) == 1 and sum(o.startswith("[") for o in options) == 1, (group, options)
