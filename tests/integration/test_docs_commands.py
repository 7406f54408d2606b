"""Every ``yolov7-*`` command shown to users composes: the fenced code blocks of ``README.md`` and
``docs/*.md``, and the examples of each command's ``--help`` (``hydra.help.header`` in ``conf/``).

Each command line is composed with Hydra's compose API on its command's config (no training, no
I/O), so a renamed or removed key, group or option breaks this test instead of a reader's run.

How a line is read:

* a command starts a line (after ``$ ``, or ``VAR=value`` environment settings); a trailing ``\\``
  continues it on the next line; ``# ...`` after whitespace is a comment;
* ``-m``/``--multirun``: each sweep (``seed=1,2,3``) composes with its first value, as the first job;
* ``[key=value]`` is an optional override and is composed; a ``...`` token (more overrides) is dropped;
* placeholders: ``<...>`` in a value (``ckpt=runs/train/<run>/best.ckpt``, ``source=<image|folder>``)
  becomes a dummy path, and ``key=...`` is a placeholder value: both keep the key checked;
* ``yolov7-report <folder>``: the positional folder becomes ``dir=`` as the command does.

A line is skipped only when it is no command: ``yolov7-tiny`` and the other variant names, or a
command named inside prose.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from tests.helpers import REPO
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.cli.report import positional_to_dir
from yolov7_lightning.config import register_configs

# command -> its config (``hydra_app`` of cli/<module>.py) and whether it lives in conf/standalone/
CONFIGS = {"yolov7-train": ("train", False), "yolov7-eval": ("eval", False), "yolov7-predict": ("predict", True),
           "yolov7-export": ("export", False), "yolov7-data": ("data_tool", False), "yolov7-info": ("info", False),
           "yolov7-report": ("report", False)}
PLACEHOLDER = "placeholder"  # what a ``<...>`` stands for: a path or a name
# overrides that need an optional plugin (the ``cluster`` extra)
PLUGINS = {"hydra/launcher=submitit": "hydra_plugins.hydra_submitit_launcher",
           "hparams_search=optuna": "hydra_plugins.hydra_optuna_sweeper"}


@dataclass(frozen=True)
class DocCommand:
    where: str      # file:line
    text: str       # the line as shown (continuations joined)

    @property
    def program(self) -> str:
        return self.words()[0]

    def words(self) -> list[str]:
        words = shlex.split(self.text, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value before the command
            words.pop(0)
        return words


def fenced_lines(path: Path):
    """(line number, line) of the fenced code blocks of a Markdown file."""
    inside = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            yield number, line


def help_lines(path: Path):
    """(line number, line) of the ``hydra.help.header`` text of a command's config."""
    lines = path.read_text().splitlines()
    header = OmegaConf.load(path).get("hydra", {}).get("help", {}).get("header", "")
    for text in header.splitlines():
        for number, line in enumerate(lines, 1):
            if text.strip() and line.strip() == text.strip():
                yield number, re.sub(r"\s{2,}\(.*\)\s*$", "", text)  # "(docs/....md)" remarks after the command
                break


def commands_in(lines, where: str) -> list[DocCommand]:
    found, pending, start = [], "", 0
    for number, line in lines:
        text = line.strip()
        if pending:
            text, number = pending + " " + text, start
        if text.startswith("$ "):
            text = text[2:]
        if text.endswith("\\"):
            pending, start = text[:-1].rstrip(), number
            continue
        pending = ""
        words = re.sub(r"^([A-Z_][A-Z0-9_]*=\S*\s+)+", "", text).split()
        if words and words[0] in CONFIGS:
            found.append(DocCommand(f"{where}:{number}", text))
    return found


def doc_commands() -> list[DocCommand]:
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        found += commands_in(fenced_lines(path), str(path.relative_to(REPO)))
    for name, standalone in CONFIGS.values():
        path = Path(CONFIG_DIR) / ("standalone" if standalone else "") / f"{name}.yaml"
        found += commands_in(help_lines(path), f"conf/{path.relative_to(CONFIG_DIR)}")
    return found


def overrides_of(command: DocCommand) -> tuple[list[str], bool]:
    """The Hydra overrides of a documented command line (placeholders filled in) and whether it is a multirun."""
    words = command.words()
    if command.program == "yolov7-report":
        words = positional_to_dir(words)
    multirun = any(w in ("-m", "--multirun") for w in words)
    overrides = []
    for word in words[1:]:
        if word in ("-m", "--multirun", "..."):
            continue
        if word.startswith("[") and word.endswith("]") and "=" in word and not word.startswith("[["):
            word = word[1:-1]  # an optional override
        assert "=" in word and not word.startswith("-"), f"{command.where}: cannot read {word!r} in: {command.text}"
        key, value = word.split("=", 1)
        if value == "..." or "<" in value:
            value = PLACEHOLDER
        overrides.append(f"{key}={value}")
    if multirun:
        parsed = OverridesParser.create().parse_overrides(overrides)
        overrides = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0][0]  # the first job
    return overrides, multirun


def compose_command(command: DocCommand):
    name, standalone = CONFIGS[command.program]
    overrides, _ = overrides_of(command)
    register_configs()
    GlobalHydra.instance().clear()
    config_dir = str(Path(CONFIG_DIR) / "standalone") if standalone else CONFIG_DIR
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


COMMANDS = doc_commands()


def test_the_docs_show_every_command():
    assert {c.program for c in COMMANDS} == set(CONFIGS)
    assert len(COMMANDS) >= 40, [c.where for c in COMMANDS]
    assert any(c.where.startswith("README.md") for c in COMMANDS)


# conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name on purpose (cli/app.py)
@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore")
@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_composes(command):
    for marker, module in PLUGINS.items():
        if marker in command.text:
            pytest.importorskip(module)
    cfg = compose_command(command)
    assert cfg.hydra.job.config_name == CONFIGS[command.program][0]


@pytest.mark.parametrize("line, overrides", [
    ("yolov7-train -m experiment=ablation_assigner seed=1,2,3  # 3 seeds",
     ["experiment=ablation_assigner", "seed=1"]),
    ('WANDB_MODE=online yolov7-train logger=wandb "+trainer.limit_train_batches=2" ++seed=3 [data.batch_size=4]',
     ["logger=wandb", "+trainer.limit_train_batches=2", "++seed=3", "data.batch_size=4"]),
    ("yolov7-report multirun/ablation/<date> out=... title='Aux head'",
     ["dir=placeholder", "out=placeholder", "title=Aux head"]),
])
def test_lines_are_read_as_the_shell_and_hydra_would(line, overrides):
    assert overrides_of(commands_in([(1, line)], "t")[0])[0] == overrides


@pytest.mark.parametrize("line, message", [
    ("yolov7-train model.aux_haed=true", "aux_haed"),       # a renamed key
    ("yolov7-train model=yolov8", "yolov8"),                # a removed option
    ("yolov7-eval ckpt=<ckpt> spilt=test", "spilt"),
    ("yolov7-predict ckpt=<ckpt> source=<folder> conf=0.5", "conf"),
])
def test_a_broken_command_fails(line, message):
    with pytest.raises(Exception, match=message):
        compose_command(commands_in([(1, line)], "t")[0])
