"""Cluster launchers and the search, for real, on the tiniest training settings (8 images of 64 px,
1 epoch): a 2-arm multirun through hydra-submitit-launcher's local executor (real processes), and a
3-trial Optuna search killed after its first trial and resumed. Every run is bounded by a timeout."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO
from tests.integration.test_wandb import read_run

TINY = [
    "data.source.num_train=8", "data.source.num_val=4", "data.source.image_size=64", "data.img_size=64",
    "data.batch_size=8", "data.num_workers=0", "schedule.warmup_min_iters=0", "schedule.warmup_epochs=0",
    "optim.nominal_batch=8", "schedule.epochs=1", "export.enabled=false", "visuals.enabled=false",
]
TIMEOUT = 420  # seconds for one command: a hang ends here, as a failure


def train_cmd(tmp: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "yolov7_lightning.cli.train", "-m", f"data.source.root={tmp / 'shapes'}", *TINY,
            *args]


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def report(folder: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "yolov7_lightning.cli.report", str(folder)], cwd)


def test_submitit_local_multirun_runs_each_arm_as_its_own_job(tmp_path):
    sweep = tmp_path / "sweep"
    run(train_cmd(tmp_path, "hydra/launcher=submitit_local", "optim.lr0=0.01,0.02", f"hydra.sweep.dir={sweep}",
                  "logger=wandb"), tmp_path, WANDB_MODE="offline")
    jobs = [sweep / "0", sweep / "1"]
    metrics = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert [[o for o in m["overrides"] if o.startswith("optim.lr0=")] for m in metrics] == [["optim.lr0=0.01"],
                                                                                           ["optim.lr0=0.02"]]
    assert all(m["epochs"] == 1 and m["val_images"] == 4 for m in metrics)
    # submitit's own logs: one folder per job under .submitit/, reachable from the job's folder
    submitted = sorted(p for p in (sweep / ".submitit").iterdir() if p.name.isdigit())  # (and an empty "%j")
    assert len(submitted) == 2
    pids = set()
    for job in jobs:
        link = job / "submitit"
        assert link.is_symlink() and link.resolve() in [p.resolve() for p in submitted]
        out = next(link.glob("*_log.out")).read_text()
        assert f"outputs: {job}" in out  # the job's own stdout, written by the submitit process
        assert next(link.glob("*_log.err")).is_file() and next(link.glob("*_result.pkl")).is_file()
        pids.add(next(link.glob("*_log.out")).name.split("_")[0])
        (wandb_run,) = job.glob("wandb/offline-run-*")  # one W&B run per job, grouped by the sweep
        logged = read_run(wandb_run)
        assert logged["group"] == sweep.name and logged["exit_code"] == 0
    assert len(pids) == 2  # two processes (the local executor's job id is the process id)

    report(sweep, tmp_path)
    with open(sweep / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == ["0", "1"]
    assert [r["arm"] for r in rows] == ["optim.lr0=0.01", "optim.lr0=0.02"]
    for row, m in zip(rows, metrics):
        assert float(row["map"]) == m["map"] and float(row["map50"]) == m["map50"]
        assert float(row["fitness"]) == m["fitness"] and float(row["train_seconds"]) == m["train_seconds"]
        assert int(row["epochs"]) == m["epochs"] == 1


def finished_trials(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_a_killed_search_resumes_where_it_stopped(tmp_path):
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "search"
    cmd = train_cmd(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT
        try:
            while finished_trials(sweep / "optuna.db") < 1:
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the first trial did not finish in time"
                time.sleep(0.5)
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the search and its trial, killed mid-way
            first.wait()
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    killed = optuna.load_study(study_name="yolov7", storage=storage).trials
    assert [t.state.name for t in killed][:1] == ["COMPLETE"] and len(killed) <= 2
    interrupted = {t.number: t.params for t in killed if t.state.name == "RUNNING"}

    run(cmd, tmp_path)  # the same command again: resume
    space = set(OmegaConf.load(REPO / "conf" / "hparams_search" / "optuna.yaml").hydra.sweeper.params)
    assert len(space) == 22  # the official evolve keys this framework has
    trials = optuna.load_study(study_name="yolov7", storage=storage).trials
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert trials[0].params == killed[0].params and trials[0].value == killed[0].value
    for number, params in interrupted.items():  # the interrupted trial re-ran with the parameters it had
        assert params.items() <= trials[number].params.items()  # (the kill may come while they are drawn)
    for t in trials:
        job = sweep / str(t.number)
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["fitness"] == t.value == metrics[metrics["top_level"]]["fitness"]  # the reported epoch's
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        assert {k: float(overrides[k]) for k in t.params} == pytest.approx(t.params, rel=1e-12)
        assert set(t.params) == space - {"schedule.warmup_epochs"}  # given on the command line: fixed
        assert t.user_attrs["schedule.warmup_epochs"] == "0"

    proc = report(sweep, tmp_path)
    assert "search: 3 trials" in proc.stdout
    with open(sweep / "search.csv") as f:
        rows = list(csv.DictReader(f))
    best_first = sorted(trials, key=lambda t: (-t.value, t.number))
    assert [int(r["trial"]) for r in rows] == [t.number for t in best_first]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    for row, t in zip(rows, best_first):
        assert float(row["fitness"]) == t.value and row["state"] == "COMPLETE"
        reported = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert float(row["map"]) == reported[reported["top_level"]]["map"]
        assert {k: float(row[k]) for k in t.params} == t.params
    assert (sweep / "search.png").read_bytes()[:4] == b"\x89PNG"
    assert "| rank | trial | state | fitness |" in (sweep / "search.md").read_text()
