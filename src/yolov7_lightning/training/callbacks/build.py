"""The callbacks of a training run, built by one function (:func:`build_callbacks`).

Every run has: ``best.ckpt`` (by ``val/fitness``) and ``last.ckpt`` (after every epoch), the epoch
records of ``metrics.json`` (:class:`~.records.EpochRecords`), the stop signals
(:class:`~..signals.StopSignal`) and the DDP replica check (:class:`~..ddp.ReplicaConsistency`, before
the EMA, which swaps its weights in at the end). Then the ``callbacks`` config group
(``conf/callbacks/default.yaml``), in its order: each entry a ``_target_`` and its options, built with
Hydra's ``instantiate``. Two things are this function's, not the callback's:

* ``enabled``: false, 0 or null leaves the entry out (the group's entries follow the command's
  switches by interpolation: ``enabled: ${ema}``); an entry set to null is left out too.
* a value ``???``: given by the command, by name (:data:`GIVEN`); any other ``???`` is an error
  naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from ...errors import ConfigError
from ..ddp import ReplicaConsistency
from ..signals import StopSignal
from .checkpoints import best_and_last
from .records import EpochRecords

__all__ = ["ENABLED", "GIVEN", "build_callbacks"]

ENABLED = "enabled"  # the entry key this function reads (and does not pass on)
# the values the command gives to an entry that asks for them with ???
GIVEN = {"dirpath": "the run's checkpoints/ folder", "config": "the resolved config of the run",
         "summary": "the model's params and GFLOPs (models.summary.summarize)"}


def build_callbacks(entries: Mapping[str, Any] | None, ckpt_dir: str | Path,
                    given: Mapping[str, Any] | None = None) -> list[Callback]:
    """The callbacks every run has (the module docstring), then those of ``entries`` (the composed
    ``callbacks`` group) in order. ``given``: ``config`` and ``summary`` (``dirpath`` is ``ckpt_dir``)."""
    best, last = best_and_last(ckpt_dir)
    callbacks: list[Callback] = [best, last, EpochRecords(best, str(Path(ckpt_dir) / "last.ckpt")), StopSignal(),
                                 ReplicaConsistency(ckpt_dir)]
    values = {"dirpath": str(ckpt_dir), **dict(given or {})}
    for name in (entries or {}):
        callback = build_entry(entries, name, values)
        if callback is not None:
            callbacks.append(callback)
    return callbacks


def build_entry(entries: Mapping[str, Any], name: str, given: Mapping[str, Any]) -> Callback | None:
    """The callback of ``entries[name]`` (None when it is null or not enabled)."""
    where = f"callbacks.{name}"
    if isinstance(entries, DictConfig):
        if OmegaConf.is_missing(entries, name):
            raise ConfigError(f"{where}: ??? (give the callback's _target_ and options, or null to leave it out)")
        entry = entries[name]
        asked = [k for k in entry if OmegaConf.is_missing(entry, k)] if isinstance(entry, DictConfig) else []
        entry = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else entry
    else:
        entry = entries[name]
        asked = [k for k, v in entry.items() if v == "???"] if isinstance(entry, Mapping) else []
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or "_target_" not in entry:
        raise ConfigError(f"{where}: needs _target_ (the callback's class) and its options, or null to leave it out")
    if ENABLED in entry and not entry[ENABLED]:
        return None
    unknown = [k for k in asked if k not in GIVEN]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: ??? (missing); the command gives only "
                          + ", ".join(f"{k} ({v})" for k, v in GIVEN.items()))
    options = {k: v for k, v in entry.items() if k != ENABLED and k not in asked}
    factory = instantiate(options, _partial_=True, _convert_="all")
    return factory(**{k: given[k] for k in asked})
