"""The one Hydra entry-point pattern every command shares."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from ..config import register_configs
from .paths import CONFIG_DIR


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors about the user's input (a file, a dataset, a folder, a diverged run): their message says
    what is wrong and where, so the command prints it alone instead of a traceback."""
    from ..data.media import MediaError
    from ..data.records import DatasetError
    from ..models.checkpoint_reader import CheckpointError
    from ..training.module import NonFiniteLossError
    from .output import OutputFolderError

    return CheckpointError, DatasetError, MediaError, NonFiniteLossError, OutputFolderError


def hydra_app(config_name: str, run: Callable[[DictConfig], Any], standalone: bool = False) -> Callable[[], None]:
    """A console-script ``main`` running ``run(cfg)`` on ``conf/<config_name>.yaml`` plus overrides;
    what ``run`` returns goes back to Hydra (a sweeper optimises it). ``standalone`` configs live in
    ``conf/standalone/`` and see no config groups, so their keys (``model=...``) are plain values.

    A user error (:func:`user_errors`) prints ``error: <message>`` on stderr and exits with status 1;
    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead."""

    config_dir = str(Path(CONFIG_DIR) / "standalone") if standalone else CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        try:
            return run(cfg)
        except user_errors() as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(1)

    def main() -> None:
        register_configs()
        # conf/hydra/launcher/submitit_*.yaml extend the plugin's schemas of the same name on purpose
        warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore")
        _main()

    return main
