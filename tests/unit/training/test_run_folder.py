"""The run-folder rules without a training run: which folders a run may use, the lock (held by
another process), DDP ranks other than 0, and when a run counts as finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from yolov7_lightning.training.run_folder import (LOCK_NAME, RANK_VARS, RunFolderError, acquire, claim, finished_run,
                                                  resumes)


@pytest.fixture
def rank_zero(monkeypatch):
    for key in RANK_VARS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def a_run(folder, **metrics):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_resuming_means_auto_or_a_checkpoint_inside_the_folder(tmp_path):
    run = tmp_path / "run"
    assert resumes(run, "auto") and resumes(run, str(run / "checkpoints" / "last.ckpt"))
    assert not resumes(run, None) and not resumes(run, str(tmp_path / "other" / "last.ckpt"))
    assert not resumes(run, str(tmp_path / "run2" / "last.ckpt"))  # a sibling whose name starts the same


def test_a_folder_with_results_is_refused_unless_resumed_or_overwritten(tmp_path, rank_zero):
    run = a_run(tmp_path / "run", epochs=1)
    with pytest.raises(RunFolderError, match="holds the results of another run .checkpoints/last.ckpt, metrics.json."):
        acquire(run, None, overwrite=False)
    with claim(run, "auto", overwrite=True):  # resuming wins over overwrite: the progress is kept
        assert (run / "metrics.json").is_file()
    with claim(run, None, overwrite=True):
        assert not (run / "metrics.json").exists() and not (run / "checkpoints" / "last.ckpt").exists()
    with claim(run, None, overwrite=False):  # nothing left to protect
        pass


def test_a_folder_locked_by_another_process_is_refused_naming_it(tmp_path, rank_zero):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from yolov7_lightning.training.run_folder import acquire
        acquire({str(run)!r}, None, False)
        print("held", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError) as e:
            acquire(run, None, overwrite=False)
        assert str(e.value) == (f"{run}: another run is writing there (pid {holder.pid}); wait for it to end or "
                                "choose another hydra.run.dir")
    finally:
        holder.stdin.close()
        holder.wait(30)
    with claim(run, None, overwrite=False):  # free again once the holder ended
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "NODE_RANK", "SLURM_PROCID"])
def test_ranks_other_than_zero_neither_lock_nor_refuse(tmp_path, rank_zero, variable):
    run = a_run(tmp_path / "run", epochs=1)  # results rank 0 may be resuming: not for another rank to judge
    rank_zero.setenv(variable, "1")
    with claim(run, None, overwrite=False):
        assert not (run / LOCK_NAME).exists()  # rank 0's lock is not waited for (no deadlock)
    rank_zero.setenv(variable, "0")  # rank 0 (LOCAL_RANK=0 stays set after a DDP job of a multirun)
    with pytest.raises(RunFolderError):
        acquire(run, None, overwrite=False)


def test_finished_means_the_planned_epochs_were_trained_or_the_run_stopped_by_its_own_rule(tmp_path):
    assert finished_run(tmp_path / "none", 1) is None
    done = a_run(tmp_path / "done", epochs=3, finished=True, max_epochs=3, fitness=0.5)
    assert finished_run(done, 3)["fitness"] == 0.5
    assert finished_run(done, 5) is None  # more epochs planned now: the run goes on
    early = a_run(tmp_path / "early", epochs=2, finished=True, max_epochs=3)  # early stop / time budget
    assert finished_run(early, 3) is not None
    older = a_run(tmp_path / "older", epochs=3)  # a metrics.json without the marker
    assert finished_run(older, 3) is not None and finished_run(older, 4) is None
    (older / "checkpoints" / "last.ckpt").unlink()
    assert finished_run(older, 3) is None
    broken = a_run(tmp_path / "broken")
    (broken / "metrics.json").write_text("{")
    assert finished_run(broken, 1) is None
