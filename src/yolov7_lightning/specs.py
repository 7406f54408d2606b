"""Typed specs from config mappings.

Each config group that builds an object (``model``, ``loss``, ``assigner``, ``optim``, ``schedule``)
is one dataclass: the group's Hydra schema and the object the code is built from. :func:`to_spec`
turns a mapping (what Hydra composes, what a checkpoint's hyper-parameters hold) into it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def to_spec(cls: type[T], value: Any, group: str) -> T:
    """``value`` as a ``cls`` (a dataclass): an instance is returned as it is; a mapping (a dict or an
    OmegaConf node, resolved) gives ``cls(**value)`` with nested dataclass fields converted too. A key
    ``cls`` does not have is an error naming it (``group.key``) and the valid keys (the keys of older
    checkpoints are upgraded before: ``models/checkpoint_upgrades.py``)."""
    if isinstance(value, cls):
        return value
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if not isinstance(value, Mapping):
        raise TypeError(f"{group}: expected a mapping or a {cls.__name__}, got {type(value).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, item in value.items():
        if key not in names:
            raise ConfigError(f"unknown key '{group}.{key}'; valid keys of {group}: {', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]) and isinstance(item, Mapping):
            item = to_spec(hints[key], item, f"{group}.{key}")
        kwargs[key] = item
    return cls(**kwargs)
