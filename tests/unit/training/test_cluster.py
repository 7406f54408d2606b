"""Cluster pieces without a cluster: inside a SLURM job srun's tasks are the ranks (the project's DDP
launcher starts none), ``ckpt_path=auto``, the SLURM preset's sbatch settings, the search space."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.training.cluster import resolve_ckpt_path
from yolov7_lightning.training.ddp import HydraDDPStrategy, HydraJobLauncher

LAUNCH_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK",
               "TORCHELASTIC_RUN_ID", "YOLOV7_CKPT_PATH")


def train_config(*overrides: str, hydra: bool = False):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture
def no_cluster(monkeypatch):
    for key in [k for k in os.environ if k.startswith("SLURM_")] + list(LAUNCH_VARS):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def slurm_job(monkeypatch, procid: int) -> None:
    """The variables srun sets in task ``procid`` of a 1-node, 2-task batch job."""
    for key, value in {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "2",
                       "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1",
                       "SLURM_NODELIST": "gpu-node-07", "SLURM_NODEID": "0", "SLURM_PROCID": str(procid),
                       "SLURM_LOCALID": str(procid)}.items():
        monkeypatch.setenv(key, value)


def launched(trainer, monkeypatch) -> list:
    """Run the strategy's launcher as ``fit`` does; the processes it started (none: srun started them)."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))  # the launcher sets it otherwise
    launcher = trainer.strategy.launcher
    assert launcher.launch(lambda: "ran") == "ran"
    return launcher.procs


def ddp_trainer():
    cfg = train_config("trainer=ddp_cpu")
    assert cfg.trainer.devices == 2 and cfg.trainer.num_nodes == 1
    return instantiate(cfg.trainer, logger=False, enable_checkpointing=False)


@pytest.mark.parametrize("procid", [0, 1])
def test_inside_a_slurm_job_srun_tasks_are_the_ranks(no_cluster, procid):
    slurm_job(no_cluster, procid)
    trainer = ddp_trainer()
    assert isinstance(trainer.strategy, HydraDDPStrategy)
    assert isinstance(trainer.strategy.cluster_environment, SLURMEnvironment)
    assert launched(trainer, no_cluster) == []  # srun started both processes: nothing is launched
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (2, procid, procid, 0)
    assert trainer.strategy.cluster_environment.main_address == "gpu-node-07"
    assert trainer.strategy.cluster_environment.auto_requeue  # Lightning's SIGUSR1 requeue stays on


def test_outside_slurm_the_job_launches_its_own_ranks(no_cluster):
    trainer = ddp_trainer()
    assert isinstance(trainer.strategy.cluster_environment, LightningEnvironment)
    assert isinstance(trainer.strategy.launcher, HydraJobLauncher)
    assert trainer.global_rank == 0 and trainer.world_size == 2


def test_a_slurm_task_count_that_does_not_match_the_devices_is_an_error(no_cluster):
    slurm_job(no_cluster, 0)
    no_cluster.setenv("SLURM_NTASKS_PER_NODE", "1")
    no_cluster.setenv("SLURM_NTASKS", "1")
    with pytest.raises(Exception, match="ntasks-per-node=1"):
        launched(ddp_trainer(), no_cluster)


def test_ckpt_path_auto_takes_the_job_folders_newest_resume_checkpoint(tmp_path):
    assert resolve_ckpt_path("auto", tmp_path) is None  # nothing yet: a fresh start
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    os.utime(last, (1000, 1000))
    assert resolve_ckpt_path("auto", tmp_path) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's SIGUSR1 checkpoint, newer than last.ckpt
    hpc.write_bytes(b"x")
    assert resolve_ckpt_path("auto", tmp_path) == str(hpc)
    os.utime(hpc, (500, 500))
    assert resolve_ckpt_path("auto", tmp_path) == str(last)
    assert resolve_ckpt_path("some/other.ckpt", tmp_path) == "some/other.ckpt"
    assert resolve_ckpt_path(None, tmp_path) is None


def test_ckpt_path_defaults_to_auto_under_the_slurm_preset_only(no_cluster):
    assert train_config().ckpt_path is None
    no_cluster.setenv("YOLOV7_CKPT_PATH", "auto")  # what the preset's sbatch --export sets in the job
    assert train_config().ckpt_path == "auto"
    assert train_config("ckpt_path=null").ckpt_path is None


def sbatch_script(tmp_path: Path, monkeypatch, *overrides: str) -> str:
    """The sbatch file the SLURM preset submits for one job: the plugin's own launch, with submitit's
    submission replaced by reading the script it would submit."""
    import submitit

    cfg = train_config("hydra/launcher=submitit_slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides,
                       hydra=True)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    seen = {}

    def map_array(executor, fn, *args):
        seen["text"] = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "uid")
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "is srun there?": no cluster
    assert launcher.launch([["seed=1"]], initial_job_idx=0) == []
    return seen["text"]


def test_slurm_preset_takes_its_resources_from_the_training_config(tmp_path, monkeypatch):
    sbatch = sbatch_script(tmp_path, monkeypatch, "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2",
                           "data.num_workers=6", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj")
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--cpus-per-task=6", "--time=1440",
                 "--signal=USR2@120", "--partition=gpu", "--account=proj", "--export=ALL,YOLOV7_CKPT_PATH=auto",
                 f"--output={tmp_path / 'sweep'}/.submitit/%j/%j_0_log.out"):
        assert f"#SBATCH {line}\n" in sbatch, (line, sbatch)
    assert "--qos" not in sbatch and "--mem" not in sbatch and "--constraint" not in sbatch  # left to the user
    assert "\nsrun " in sbatch  # srun starts the ntasks-per-node x nodes processes


def test_slurm_preset_on_a_single_process_trainer(tmp_path, monkeypatch):
    sbatch = sbatch_script(tmp_path, monkeypatch, "trainer=gpu", "data.num_workers=8")
    for line in ("--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--cpus-per-task=8"):
        assert f"#SBATCH {line}\n" in sbatch, (line, sbatch)


def test_ddp_ranks_of_a_submitit_local_job_run_yolov7_train(tmp_path, monkeypatch):
    """Under submitit's job runner ``__main__`` is submitit's: the job's ranks still run yolov7-train."""
    import importlib.machinery
    import sys

    from hydra.core.hydra_config import HydraConfig

    from yolov7_lightning.training.ddp import hydra_job_command

    cfg = train_config("trainer=ddp_cpu", "seed=2", hydra=True)
    cfg.hydra.runtime.output_dir = str(tmp_path / "sweep" / "1")
    cfg.hydra.runtime.cwd = str(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/venv/lib/submitit/core/_submit.py", str(tmp_path / "sweep/.submitit/%j")])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__",
                        importlib.machinery.ModuleSpec("submitit.core._submit", None))
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = hydra_job_command(local_rank=1)
    finally:
        HydraConfig.instance().cfg = None
    assert command[:5] == [sys.executable, "-m", "yolov7_lightning.cli.train", "trainer=ddp_cpu", "seed=2"]
    assert f'hydra.run.dir="{tmp_path / "sweep" / "1"}"' in command and not any(".submitit" in c for c in command)
