"""One run per folder, through the real commands on the tiniest settings: a finished run resumed stays
finished, a folder holding another run's results is refused (or overwritten when asked), a second run
into a folder in use stops at once, SIGTERM / SIGINT end a run with 143 / 130 and a resumable
checkpoint, and a damaged checkpoint is refused by every entry point."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from tests.helpers import run_cli
from tests.integration.test_cluster import TINY
from yolov7_lightning.cli import eval as eval_cli
from yolov7_lightning.cli import export as export_cli
from yolov7_lightning.cli import predict as predict_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.training.run_folder import LOCK_NAME

TIMEOUT = 300  # seconds for one wait or command: a hang ends here, as a failure


def tiny(tmp: Path, run: Path, *overrides: str) -> list[str]:
    return [f"hydra.run.dir={run}", f"data.source.root={tmp / 'shapes'}", *TINY, *overrides]


def fingerprint(run: Path, hydra: bool = True) -> dict[str, str]:
    """Content hash of every result file (and of the folder's .hydra/ record)."""
    files = [run / "metrics.json", *sorted((run / "checkpoints").glob("*"))]
    files += sorted((run / ".hydra").glob("*")) if hydra else []
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("folders")
    run = tmp / "run"
    code, out, err = run_cli(train_cli.main, *tiny(tmp, run))
    assert code == 0, out[-3000:] + err[-3000:]
    return tmp, run, out


def test_a_finished_run_resumed_stays_finished(finished):
    tmp, run, first = finished
    before = fingerprint(run, hydra=False)  # Hydra records each command's overrides in .hydra/
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["finished"] is True and stored["epochs"] == stored["max_epochs"] == 1
    final = [line for line in first.splitlines()
             if line.startswith(("best ", "last epoch ", "no evaluation ran", "outputs: "))]
    assert len(final) == 2
    for resume in ("ckpt_path=auto", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"):
        code, out, err = run_cli(train_cli.main, *tiny(tmp, run, resume))
        assert code == 0, err[-3000:]
        lines = out.strip().splitlines()
        assert f"{run}: this run already finished (1 epochs); nothing is trained again" in out, out[-2000:]
        assert lines[-2:] == final  # the same final lines, from the stored metrics
        assert fingerprint(run, hydra=False) == before  # no training: metrics and checkpoints untouched


def test_a_finished_run_resumed_returns_its_stored_fitness(finished):
    """What a sweeper reads: the value ``run`` gives back to Hydra."""
    tmp, run, _ = finished
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=tiny(tmp, run, "ckpt_path=auto"), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run)
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]
    metrics = train_cli.run(cfg)
    stored = json.loads((run / "metrics.json").read_text())
    assert metrics == stored and metrics["fitness"] == stored["fitness"] is not None


def test_a_folder_with_another_runs_results_is_refused(finished):
    tmp, run, _ = finished
    before = fingerprint(run)  # .hydra/ included: the refusal comes before Hydra writes there
    code, out, err = run_cli(train_cli.main, *tiny(tmp, run, "seed=1"))
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: {run} holds the results of another run (checkpoints/best.ckpt, checkpoints/last.ckpt, "
        "metrics.json); resume it with ckpt_path=auto, choose another hydra.run.dir, or overwrite=true"], err
    assert fingerprint(run) == before


def test_overwrite_replaces_the_earlier_results(finished):
    tmp, run, _ = finished
    other = tmp / "overwritten"
    shutil.copytree(run, other)
    (other / "checkpoints" / "epoch_007.ckpt").write_bytes(b"an earlier run's periodic checkpoint")
    code, out, err = run_cli(train_cli.main, *tiny(tmp, other, "seed=1", "overwrite=true"))
    assert code == 0, err[-3000:]
    assert json.loads((other / "metrics.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (other / "checkpoints").glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert (f"overwrite=true: deleted the results of the earlier run in {other} (checkpoints/best.ckpt, "
            "checkpoints/epoch_007.ckpt, checkpoints/last.ckpt, metrics.json)") in err


def flip_bytes_in_a_tensor(path: Path, count: int = 64) -> str:
    """Invert ``count`` bytes in the middle of the largest tensor record; returns the record's name."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(record.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        start = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
        f.seek(start)
        data = f.read(count)
        f.seek(start)
        f.write(bytes(b ^ 0xFF for b in data))
    return record.filename


def test_a_damaged_checkpoint_is_refused_by_every_entry_point(finished, tmp_path):
    tmp, run, _ = finished
    damaged = tmp_path / "damaged.ckpt"
    shutil.copyfile(run / "checkpoints" / "last.ckpt", damaged)
    record = flip_bytes_in_a_tensor(damaged)
    assert record.startswith("archive/data/")
    torch.load(damaged, map_location="cpu", weights_only=True)  # PyTorch itself loads it without a word
    data = [o for o in TINY if o.startswith("data.")] + [f"data.source.root={tmp / 'shapes'}"]
    runs = {
        "eval": (eval_cli.main, f"ckpt={damaged}", *data),
        "predict": (predict_cli.main, f"ckpt={damaged}", f"source={tmp_path}"),
        "export": (export_cli.main, f"ckpt={damaged}"),
        "train_weights": (train_cli.main, f"model.weights={damaged}", "data.source.root=/nonexistent"),
        "train_resume": (train_cli.main, f"ckpt_path={damaged}", "data.source.root=/nonexistent"),
    }
    for name, (main, *args) in runs.items():
        code, _, err = run_cli(main, *args, f"hydra.run.dir={tmp_path / name}")
        assert code == 1, (name, err[-2000:])
        assert err.strip().splitlines() == [
            f"error: {damaged}: damaged file (CRC mismatch in {record}): its content changed after it was written "
            "(disk or copy error); use another copy or an earlier checkpoint"], (name, err[-2000:])


def wait_for(condition, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert proc.poll() is None, f"ended before {what}: " + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start(tmp: Path, run: Path, log: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", *tiny(tmp, run, *overrides)]
    with open(log, "w") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)


def test_signals_stop_with_a_status_and_a_resumable_checkpoint(tmp_path):
    """SIGTERM after the first epoch's checkpoint (and, meanwhile, a second run into the folder in
    use); the resumed run stopped by SIGINT after its first epoch; resumed again to the end."""
    run, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    epochs = ["schedule.epochs=4", "data.batch_size=4", "optim.nominal_batch=4"]
    first = start(tmp_path, run, tmp_path / "first.log", *epochs)
    try:
        lock = run / LOCK_NAME
        wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(first.pid), first,
                 tmp_path / "first.log", "the lock")
        code, _, err = run_cli(train_cli.main, *tiny(tmp_path, run, *epochs))
        assert code == 1 and err.strip().splitlines() == [
            f"error: {run}: another run is writing there (pid {first.pid}); wait for it to end or choose another "
            "hydra.run.dir"], err
        wait_for(last.is_file, first, tmp_path / "first.log", "the first checkpoint")
        first.send_signal(signal.SIGTERM)
        assert first.wait(TIMEOUT) == 128 + signal.SIGTERM
    finally:
        first.kill()
    text = (tmp_path / "first.log").read_text()
    stopped = [line for line in text.splitlines() if line.startswith("stopped by")]
    assert len(stopped) == 1 and stopped[0].startswith("stopped by SIGTERM in epoch ")
    assert stopped[0].endswith(f"{last} holds the last completed epoch: resume with the same command and "
                               f"ckpt_path=auto hydra.run.dir={run}")
    assert not (run / "metrics.json").exists()
    after_term = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert after_term <= 1  # at most the epoch in progress was finished

    saved = last.stat().st_mtime_ns
    second = start(tmp_path, run, tmp_path / "second.log", *epochs, "ckpt_path=auto")
    try:
        wait_for(lambda: last.stat().st_mtime_ns != saved, second, tmp_path / "second.log", "a resumed epoch")
        second.send_signal(signal.SIGINT)
        assert second.wait(TIMEOUT) == 128 + signal.SIGINT
    finally:
        second.kill()
    assert "stopped by SIGINT in epoch " in (tmp_path / "second.log").read_text()
    assert not (run / "metrics.json").exists()
    after_int = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert after_term < after_int < 3

    code, out, err = run_cli(train_cli.main, *tiny(tmp_path, run, *epochs, "ckpt_path=auto"))
    assert code == 0, err[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["epochs"] == 4
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 3
