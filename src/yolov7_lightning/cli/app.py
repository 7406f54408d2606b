"""The one Hydra entry-point pattern every command shares."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from ..config import register_configs
from .paths import CONFIG_DIR


def hydra_app(config_name: str, run: Callable[[DictConfig], Any], standalone: bool = False) -> Callable[[], None]:
    """A console-script ``main`` running ``run(cfg)`` on ``conf/<config_name>.yaml`` plus overrides;
    what ``run`` returns goes back to Hydra (a sweeper optimises it). ``standalone`` configs live in
    ``conf/standalone/`` and see no config groups, so their keys (``model=...``) are plain values."""

    config_dir = str(Path(CONFIG_DIR) / "standalone") if standalone else CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        return run(cfg)

    def main() -> None:
        register_configs()
        # conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name on purpose
        warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore")
        _main()

    return main
