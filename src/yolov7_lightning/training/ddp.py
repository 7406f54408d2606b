"""DDP that works under Hydra: one job = one folder, whatever the sweep; replicas that stay identical.

* :class:`HydraDDPStrategy` is Lightning's ``DDPStrategy`` whose launcher starts the extra local ranks
  as *this job* (``python -m yolov7_lightning.cli.train <this job's overrides> hydra.run.dir=<this
  job's folder>``). Lightning's own launcher re-runs ``sys.argv``, which under ``-m`` re-runs the whole
  sweep in every child and writes into ``hydra.run.dir`` instead of the sweep sub-folder.
  Under torchrun / SLURM the processes are started outside (nothing is launched) and every process
  must be given the same ``hydra.run.dir``. Inside a SLURM job whose tasks ``srun`` started (a
  batch job, or ``hydra/launcher=submitit_slurm``), Lightning's ``SLURMEnvironment`` gives each
  process its rank; :meth:`HydraDDPStrategy._configure_launcher` refuses any other environment there,
  since launching ranks would start ``devices`` x ``ntasks`` processes.
* :func:`broadcast_buffers` puts rank 0's floating buffers (BN statistics) on every rank. After an
  optimizer step each rank holds BN statistics of its own batch (DDP re-syncs them only at the next
  forward); the EMA calls it before each update so every rank averages the same weights (the official
  code keeps the EMA on rank 0 only).
* :class:`ReplicaConsistency` checks at the end of fit that the live and the EMA weights are the same
  on every rank, logs the figures and writes ``ddp_consistency.json`` next to the checkpoints.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script

from ..atomic import atomic_write_json

log = logging.getLogger(__name__)


CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def config_flags(argv: Sequence[str]) -> list[str]:
    """The Hydra options of ``argv`` that choose the config (``-cn x``, ``--config-dir=y``, ...)."""
    kept, args = [], list(argv)
    for i, arg in enumerate(args):
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            kept += [arg, args[i + 1]]
        elif arg.split("=", 1)[0] in CONFIG_FLAGS and "=" in arg:
            kept.append(arg)
    return kept


def hydra_job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command of local rank ``local_rank`` of the running Hydra job, and its working directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hydra_cfg = HydraConfig.get()
    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == "submitit":
        # a job of hydra/launcher=submitit_local: __main__ is submitit's job runner (its argv is no Hydra
        # command line), the ranks run yolov7-train with this job's overrides
        command = [sys.executable, "-m", "yolov7_lightning.cli.train"]
    else:
        command = [sys.executable, "-m", spec.name] if spec is not None else [sys.executable,
                                                                              os.path.abspath(sys.argv[0])]
        command += config_flags(sys.argv[1:])  # --config-dir / --config-path / --config-name, as given
    command += list(hydra_cfg.overrides.task)  # this job's overrides only: no -m, no sweep lists
    command += [f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
                "hydra.output_subdir=null"]
    return command, get_original_cwd()


LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


class HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's script launcher, with :func:`hydra_job_command` for the children's command, and
    :meth:`end_job` to leave the process as it found it (the next job of a multirun launches anew)."""

    def _call_children_scripts(self) -> None:
        self._saved_env = {k: os.environ.get(k) for k in LAUNCH_ENV}
        original = subprocess_script._hydra_subprocess_cmd
        subprocess_script._hydra_subprocess_cmd = hydra_job_command
        try:
            super()._call_children_scripts()
        finally:
            subprocess_script._hydra_subprocess_cmd = original

    def end_job(self, timeout: float = 600.0) -> None:
        """Wait for the local ranks, close the process group and restore the launch environment
        (Lightning reads ``LOCAL_RANK`` in the environment as 'processes are started outside')."""
        for proc in self.procs:
            if proc.wait(timeout=timeout) != 0:
                raise RuntimeError(f"DDP process {proc.args} ended with exit code {proc.returncode}")
        self.procs = []
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` (any backend: nccl on GPUs, gloo on CPU) launching local ranks per Hydra job."""

    def _configure_launcher(self) -> None:
        if SLURMEnvironment.detect() and not isinstance(self.cluster_environment, SLURMEnvironment):
            raise RuntimeError(
                f"this process was started by srun (SLURM_NTASKS={os.environ.get('SLURM_NTASKS')}), but the DDP "
                f"cluster environment is {type(self.cluster_environment).__name__}, which would launch ranks of "
                "its own: leave trainer.plugins without a cluster environment so that Lightning's "
                "SLURMEnvironment gives the srun tasks their ranks")
        super()._configure_launcher()
        if type(self._launcher) is subprocess_script._SubprocessScriptLauncher:
            self._launcher = HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
        if self.cluster_environment.creates_processes_externally:  # the launcher only checks the settings
            log.info("DDP: %s started the processes (rank %d of %d); none launched here",
                     type(self.cluster_environment).__name__, self.cluster_environment.global_rank(),
                     self.cluster_environment.world_size())


def end_job(trainer: L.Trainer) -> None:
    """Call at the end of a Hydra job on every rank: the launching process waits for its local ranks
    and resets, so that the next multirun job starts its own process group; the others just return."""
    launcher = getattr(trainer.strategy, "launcher", None)
    if isinstance(launcher, HydraJobLauncher) and launcher.procs:
        launcher.end_job()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's floating-point buffers to every rank (one collective); a no-op without DDP."""
    if not _distributed():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1) for b in buffers])
    dist.broadcast(flat, src=0)
    torch._foreach_copy_(buffers, [v.view_as(b) for v, b in zip(flat.split([b.numel() for b in buffers]), buffers)])


def replica_difference(module: torch.nn.Module) -> float:
    """Max |difference| between this rank's floating state and rank 0's, reduced (max) over ranks."""
    if not _distributed():
        return 0.0
    state = [t.detach().double().reshape(-1) for t in module.state_dict().values() if t.is_floating_point()]
    mine = torch.cat(state)
    reference = mine.clone()
    dist.broadcast(reference, src=0)
    diff = (mine - reference).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


class ReplicaConsistency(L.Callback):
    """At the end of training: are the live weights (``on_train_end``, before the EMA is swapped in,
    so keep this callback before the EMA one) and the final EMA weights (``on_fit_end``) equal on all
    ranks? Rank 0 writes ``<dirpath>/ddp_consistency.json``; a difference is logged as an error."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)
        self.report: dict = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            broadcast_buffers(pl_module)  # what DDP does at the next forward: BN statistics of the last batch
            self.report = {"world_size": trainer.world_size, "live_max_diff": replica_difference(pl_module)}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size < 2 or not self.report:
            return
        self.report["final_max_diff"] = replica_difference(pl_module)  # the EMA weights when the EMA is on
        self.report["ema"] = any(type(c).__name__ == "YOLOv7EMA" for c in trainer.callbacks)
        if trainer.is_global_zero:
            atomic_write_json(self.report, self.dirpath / "ddp_consistency.json", indent=2)
            if self.report["live_max_diff"] or self.report["final_max_diff"]:
                log.error("the ranks' weights differ at the end of fit: %s", self.report)
