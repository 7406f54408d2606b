"""Weights & Biases for ``logger=wandb``: one run per Hydra job, named and grouped from the job.

``wandb_logger`` is the ``_target_`` of ``conf/logger/wandb.yaml``. It only builds Lightning's
``WandbLogger``; the run itself is created lazily, on global rank 0 only (Lightning's
``rank_zero_experiment``: the DDP children that Lightning relaunches get a dummy experiment). Run
files go under ``save_dir`` (the job's output folder): ``<job dir>/wandb/offline-run-*/``.

- mode: ``WANDB_MODE`` when set, else ``mode`` (``offline`` by default; ``online`` needs a login).
- name: in a multirun, the job's overrides of the swept keys (``assigner=independent,seed=2``);
  outside a sweep every override of the job; with none, the run folder's name.
- group: in a multirun, the sweep folder's name; none otherwise.

Hydra runs every job of a multirun in one process, so each job must end its run: ``FinishWandbRun``
(a Hydra callback that ``conf/logger/wandb.yaml`` registers) calls ``wandb.finish`` at the end of
every job, with the job's exit code; ``wandb_logger`` also finishes a run left over by an earlier
job before it builds a new logger (Lightning would otherwise log into the old run).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

__all__ = ["FinishWandbRun", "finish_wandb_run", "run_group", "run_name", "wandb_logger"]


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def _swept_keys(hydra_cfg: DictConfig) -> set[str]:
    """Keys a multirun sweeps over: the sweeper's ``params`` (experiment configs) and the sweep
    overrides of the command line (``seed=1,2``), as the basic sweeper saved them in
    ``<sweep dir>/multirun.yaml``. Empty when they cannot be told (another sweeper)."""
    params = OmegaConf.select(hydra_cfg, "sweeper.params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    saved = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    if saved.is_file():
        args += list(OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task") or [])
    try:
        return {o.key_or_group for o in _parse(args) if o.is_sweep_override()}
    except Exception:  # an unparsable saved config only loses the short name
        log.debug("cannot parse the sweep overrides %s", args, exc_info=True)
        return set()


def _multirun(hydra_cfg: DictConfig) -> bool:
    mode = OmegaConf.select(hydra_cfg, "mode")
    return str(getattr(mode, "name", mode)).upper().endswith("MULTIRUN")


def _current(hydra_cfg: DictConfig | None) -> DictConfig | None:
    """``hydra_cfg``, else the running job's Hydra config, else None (outside Hydra)."""
    if hydra_cfg is not None:
        return hydra_cfg
    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name(hydra_cfg: DictConfig | None = None) -> str | None:
    """The W&B run name of the current Hydra job (see the module docstring); None outside Hydra."""
    hydra_cfg = _current(hydra_cfg)
    if hydra_cfg is None:
        return None
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    if _multirun(hydra_cfg) and overrides:
        swept = _swept_keys(hydra_cfg)
        if swept:
            chosen = [text for text, o in zip(overrides, _parse(overrides)) if o.key_or_group in swept]
            if chosen:
                return ",".join(chosen)
    if overrides:
        return ",".join(overrides)
    return Path(str(hydra_cfg.runtime.output_dir)).name


def run_group(hydra_cfg: DictConfig | None = None) -> str | None:
    """The sweep folder's name in a multirun, else None."""
    hydra_cfg = _current(hydra_cfg)
    if hydra_cfg is None or not _multirun(hydra_cfg):
        return None
    return Path(str(hydra_cfg.sweep.dir)).name


def finish_wandb_run(exit_code: int = 0) -> bool:
    """Finish the W&B run of this process, if any; True when one was finished."""
    import wandb

    if wandb.run is None:
        return False
    wandb.finish(exit_code=exit_code)
    return True


def wandb_logger(project: str = "yolov7-lightning", mode: str = "offline", save_dir: str | None = None,
                 name: str | None = None, group: str | None = None, entity: str | None = None,
                 tags: list[str] | None = None, notes: str | None = None, log_model: bool | str = False,
                 **kwargs: Any) -> WandbLogger:
    """Lightning's ``WandbLogger`` for the current Hydra job.

    Args:
        project, entity, tags, notes: as ``wandb.init``.
        mode: ``offline`` | ``online`` | ``disabled``; the ``WANDB_MODE`` environment variable wins.
        save_dir: parent of the ``wandb/`` folder (the job's output folder in the config).
        name, group: None computes them from the job (see the module docstring).
        log_model: upload checkpoints as artifacts (online only).
        kwargs: passed on to ``wandb.init``.
    """
    mode = os.environ.get("WANDB_MODE") or mode
    if mode == "dryrun":
        mode = "offline"
    if finish_wandb_run():  # a run left over by an earlier job of this process: never log into it
        log.info("finished the W&B run left over by an earlier job")
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=project, entity=entity, save_dir=save_dir, name=name or run_name(),
                       group=group or run_group(), tags=list(tags or []), notes=notes, mode=mode,
                       log_model=log_model if mode == "online" else False, **kwargs)


class FinishWandbRun(HydraCallback):
    """Hydra callback: ``wandb.finish`` at the end of every job (exit code 1 when the job failed)."""

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        failed = job_return is not None and getattr(job_return, "status", None) == JobStatus.FAILED
        finish_wandb_run(exit_code=1 if failed else 0)
