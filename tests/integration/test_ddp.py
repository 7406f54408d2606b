"""Real 2-process DDP on the CPU (gloo, ``trainer=ddp_cpu``), alone, under a Hydra multirun, and as two
torchrun "nodes" of one process each.

Each run is bounded by a subprocess timeout, so a hang fails the test instead of blocking CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.integration.test_train import SMALL, run_cli

DDP = ["trainer=ddp_cpu", "export.enabled=false", "data.source.num_val=12", "data.val_batch_size=4"]
TIMEOUT = 420  # seconds: a DDP hang ends here, as a failure


def launch(tmp: Path, *args: str, multirun: bool = False) -> subprocess.CompletedProcess:
    """``yolov7-train`` from ``tmp`` (so a folder written anywhere unexpected shows up there)."""
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", *(["-m"] if multirun else []),
           f"data.source.root={tmp / 'shapes'}", *SMALL, *DDP, *args]
    # the repository on the path of the command (and of the ranks it starts): tests.integration.ddp_count
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


COUNTING = "trainer.strategy._target_=tests.integration.ddp_count.AllReduceCountingDDPStrategy"
RUN = ["schedule.epochs=2", "optim.nominal_batch=32"]  # the 2-process run; the 2-node run repeats it


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "run"
    # nominal batch 32 over 2 x 8 images: a step every 2nd batch (accumulation), all-reduces counted
    launch(tmp, f"hydra.run.dir={out}", *RUN, COUNTING)
    return tmp, out


def test_one_folder_one_set_of_checkpoints(ddp_run):
    tmp, out = ddp_run
    assert sorted(p.name for p in tmp.iterdir()) == ["run", "shapes"]  # no second run folder from rank 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "ddp_consistency.json",
                                                                       "last.ckpt"]
    assert (out / "train_ddp_process_1.log").is_file()  # rank 1 ran as this job, in this folder
    assert len(list(out.glob("logs/version_*"))) == 1


def test_validation_covers_the_whole_set_and_equals_single_process_eval(ddp_run):
    tmp, out = ddp_run
    trained = json.loads((out / "metrics.json").read_text())
    assert trained["epochs"] == 2 and trained["val_images"] == 12  # both ranks' images, gathered
    data = [o for o in SMALL if o.startswith("data.")] + [f"data.source.root={tmp / 'shapes'}",
                                                          "data.source.num_val=12", "data.val_batch_size=4"]
    run_cli("eval", tmp / "eval", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", *data)
    single = json.loads((tmp / "eval" / "metrics.json").read_text())
    assert single["num_images"] == 12 and single["num_detections"] == trained["val_detections"] > 0
    assert single["map"] == pytest.approx(trained["map"], abs=1e-12)
    assert single["map50"] == pytest.approx(trained["map50"], abs=1e-12)
    assert single["per_class"] == pytest.approx(trained["per_class"], abs=1e-12)


def test_ranks_hold_identical_live_and_ema_weights(ddp_run):
    _, out = ddp_run
    report = json.loads((out / "checkpoints" / "ddp_consistency.json").read_text())
    assert report["world_size"] == 2 and report["ema"] is True
    assert report["live_max_diff"] == 0.0 and report["final_max_diff"] == 0.0


def test_no_gradient_allreduce_on_accumulation_micro_steps(ddp_run):
    _, out = ddp_run
    for rank in (0, 1):
        counts = json.loads((out / f"allreduce_rank{rank}.json").read_text())
        # 12 images per rank in batches of 8: 2 batches x 2 epochs; a step at batches 0 and 2
        assert counts["iterations"] == 4 and counts["optimizer_steps"] == 2
        assert counts["allreduce_rounds"] == 2  # one per optimizer step, none on the micro-steps


def test_multirun_jobs_with_two_processes_each_keep_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    sweep = tmp_path / "sweep"
    launch(tmp_path, "seed=1,2", f"hydra.sweep.dir={sweep}", "schedule.epochs=1", "logger=wandb", "visuals.enabled=false",
           multirun=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes", "sweep"]  # no stray run folders
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]  # children did not re-sweep
    for num, seed in (("0", 1), ("1", 2)):
        job = sweep / num
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["seed"] == seed and metrics["epochs"] == 1 and metrics["val_images"] == 12
        assert f"seed={seed}" in metrics["overrides"]
        assert sorted(p.name for p in (job / "checkpoints").iterdir()) == ["best.ckpt", "ddp_consistency.json",
                                                                           "last.ckpt"]
        assert (job / "train_ddp_process_1.log").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # one W&B run per job: rank 0's
    first, second = (json.loads((sweep / n / "metrics.json").read_text()) for n in ("0", "1"))
    assert first["map"] != second["map"] or first["val_detections"] != second["val_detections"]  # two seeds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_nodes_train_like_two_local_processes(ddp_run, tmp_path):
    """Multi-node DDP without a cluster: two torchrun agents on this machine (``--nnodes 2``, one process
    each, c10d rendezvous on 127.0.0.1) run one job: one folder, identical replicas, and the validation
    numbers of the 2-process single-node run (same global batch, same seeds, same data split)."""
    tmp, single = ddp_run
    out = tmp_path / "two_nodes"
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes",
           "--local-addr", "127.0.0.1", "--max-restarts", "0",
           "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={out}", f"data.source.root={tmp / 'shapes'}", *SMALL,
           *DDP, *RUN, "trainer.num_nodes=2", "trainer.devices=1"]
    # one thread per process, as in the single-node run (Lightning sets cpus // local processes there;
    # torchrun sets nothing for one process per node): the thread count changes float reduction order
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
             for _ in range(2)]
    try:
        logs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two_nodes"]  # one run folder for both nodes
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "ddp_consistency.json",
                                                                       "last.ckpt"]
    report = json.loads((out / "checkpoints" / "ddp_consistency.json").read_text())
    assert report["world_size"] == 2 and report["live_max_diff"] == 0.0 and report["final_max_diff"] == 0.0
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((single / "metrics.json").read_text())
    assert got["epochs"] == want["epochs"] == 2 and got["val_images"] == want["val_images"] == 12
    assert got["val_detections"] == want["val_detections"] > 0
    for key in ("map", "map50", "fitness"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["per_class"] == pytest.approx(want["per_class"], abs=1e-12)
