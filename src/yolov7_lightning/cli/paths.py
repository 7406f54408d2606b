"""Where the Hydra configs live: ``conf/`` of the checkout, or ``$YOLOV7_CONF``."""

from __future__ import annotations

import os
from pathlib import Path


def _config_dir() -> str:
    env = os.environ.get("YOLOV7_CONF")
    if env:
        return str(Path(env).resolve())
    return str(Path(__file__).resolve().parents[3] / "conf")


CONFIG_DIR = _config_dir()
