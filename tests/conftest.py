"""Shared pytest setup: tests import their helpers from ``tests.helpers``; no network, no GPU needed."""

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs


@pytest.fixture(scope="module")
def hydra_ctx():
    """A Hydra context on the project's ``conf/`` (with the typed schemas): ``compose("train", ...)``."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield
    GlobalHydra.instance().clear()
