"""The DDP trainer configs compose into the Hydra-aware strategy; its children run this job only."""

from __future__ import annotations

import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.training.ddp import HydraDDPStrategy, config_flags, hydra_job_command


def compose_train(*overrides, hydra_cfg=False):
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra_cfg)


@pytest.mark.parametrize("trainer, accelerator, backend, devices", [("ddp", "gpu", "nccl", -1),
                                                                     ("ddp_cpu", "cpu", "gloo", 2)])
def test_trainer_configs_share_the_strategy(trainer, accelerator, backend, devices):
    cfg = compose_train(f"trainer={trainer}").trainer
    assert (cfg.accelerator, cfg.devices, cfg.sync_batchnorm) == (accelerator, devices, False)
    # fp32 on CPU DDP: every rank the same, whatever machine it runs on (trainer=cpu alone probes the machine)
    assert cfg._get_node("precision")._value() == ("16-mixed" if accelerator == "gpu" else "32-true")
    strategy = instantiate(cfg.strategy)
    assert isinstance(strategy, HydraDDPStrategy) and strategy._process_group_backend == backend


def test_child_command_is_this_job_not_the_sweep(tmp_path, monkeypatch):
    cfg = compose_train("trainer=ddp_cpu", "seed=2", "assigner=independent", hydra_cfg=True)
    cfg.hydra.runtime.output_dir = str(tmp_path / "sweep" / "3")
    cfg.hydra.runtime.cwd = str(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/yolov7-train", "-m", "--config-dir", "/my/conf", "seed=1,2",
                                      "assigner=independent,lead_guided"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None)  # a console script, as yolov7-train is
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = hydra_job_command(local_rank=1)
    finally:
        HydraConfig.instance().cfg = None
    assert command[:2] == [sys.executable, "/venv/bin/yolov7-train"]
    args = command[2:]
    assert "-m" not in args and "seed=1,2" not in args
    assert args[:5] == ["--config-dir", "/my/conf", "trainer=ddp_cpu", "seed=2", "assigner=independent"]
    assert f'hydra.run.dir="{tmp_path / "sweep" / "3"}"' in args and "hydra.output_subdir=null" in args
    assert "hydra.job.name=train_ddp_process_1" in args and cwd == str(tmp_path)


def test_config_flags_keep_the_chosen_config_only():
    argv = ["-m", "-cn", "mine", "--config-path=/c", "seed=1,2", "--cfg", "job", "-cd", "/extra"]
    assert config_flags(argv) == ["-cn", "mine", "--config-path=/c", "-cd", "/extra"]
