"""``--help`` of every command: the command's own text, then the config groups a user chooses.

Each command's config sets ``hydra.help.header`` (what the command does, its most used options) and
selects ``hydra/help: yolov7`` (:func:`register_help`), whose template adds the groups of the
command's defaults list with their options (the default marked) and how to see the whole config.
Hydra's own ``$APP_CONFIG_GROUPS`` would also list the internal ``schema`` group (typed schemas in
the ConfigStore) and the ``standalone`` folder; the groups here are the command's own choices that
are folders of ``conf/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .paths import CONFIG_DIR

# resolved by OmegaConf when Hydra reads it; ``$$`` is a literal ``$`` for Hydra's string.Template
TEMPLATE = """${hydra.help.header}
${help_groups:${hydra.runtime.choices}}\
Any key of the config: key=value (a key it lacks: +key=value); several runs: -m key=a,b
The whole config: --cfg job (final values: --cfg job --resolve); Hydra's own flags: --hydra-help
"""


def format_groups(choices: Any, config_dir: str = CONFIG_DIR) -> str:
    """The command's config groups (``hydra.runtime.choices``) that are folders of ``config_dir``,
    one line each: ``group: option, [default], ...`` (``[none]`` first when the group is optional)."""
    root = Path(config_dir)
    lines = []
    for group, choice in sorted(dict(choices).items()):
        if group.startswith("hydra/") or "/" in group or not (root / group).is_dir():
            continue
        options = sorted(p.stem for p in (root / group).glob("*.yaml"))
        shown = [f"[{o}]" if o == choice else o for o in options]
        if choice is None:
            shown.insert(0, "[none]")
        lines.append(f"  {group}: {', '.join(shown)}")
    if not lines:
        return ""
    return "Config groups (group=option; [default]):\n" + "\n".join(lines) + "\n\n"


def register_help() -> None:
    """``hydra/help: yolov7`` in the ConfigStore (seen by every command, ``conf/standalone/`` too)."""
    if not OmegaConf.has_resolver("help_groups"):
        OmegaConf.register_new_resolver("help_groups", format_groups)
    node = {"app_name": "${hydra.job.name}", "header": "", "footer": "", "template": TEMPLATE}
    ConfigStore.instance().store(group="hydra/help", name="yolov7", node=node, provider="yolov7_lightning")
