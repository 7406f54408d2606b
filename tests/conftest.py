"""Shared pytest fixtures."""

from __future__ import annotations

import pathlib

import pytest

from tests.helpers import SHARED


@pytest.fixture
def shared_dir() -> pathlib.Path:
    if not SHARED.exists():
        pytest.skip("shared/ reference folder not beside the checkout")
    return SHARED
