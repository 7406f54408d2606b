"""Bad checkpoint files through every entry point (eval, predict, export, train ``model.weights`` and
``ckpt_path``): one line naming the file and what is wrong, exit status 1, no traceback, never
PyTorch's advice to retry with ``weights_only=False``; a pickle that would run code is refused and
nothing from it runs. ``HYDRA_FULL_ERROR=1`` keeps the full traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli
from yolov7_lightning.cli import eval as eval_cli
from yolov7_lightning.cli import export as export_cli
from yolov7_lightning.cli import predict as predict_cli
from yolov7_lightning.cli import train as train_cli
from yolov7_lightning.models.checkpoint_reader import CheckpointError


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bad")
    good = tmp / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "epoch": 1}, good)
    data = good.read_bytes()
    files = {"missing": tmp / "missing.ckpt", "empty": tmp / "empty.ckpt", "truncated": tmp / "truncated.ckpt",
             "random": tmp / "random.ckpt", "malicious": tmp / "malicious.ckpt"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["random"].write_bytes(bytes(range(256)) * 4)
    torch.save({"hyper_parameters": {}, "state_dict": {}, "x": _Payload(tmp / "pwned")}, files["malicious"])
    files["marker"] = tmp / "pwned"
    return files


EXPECTED = {"missing": "file not found", "empty": "empty file (0 bytes)",
            "truncated": "truncated or corrupt (not a complete PyTorch zip archive)",
            "random": "not a PyTorch checkpoint (unreadable content",
            "malicious": "refusing to unpickle global(s) posix.system (os.system)"}


def assert_one_line(code: int, err: str, path: Path, expected: str) -> None:
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"error: {path}: "), err
    assert expected in lines[0], err
    assert "weights_only=False" not in err and "Traceback" not in err


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_eval_names_each_bad_file(bad, kind, tmp_path):
    code, _, err = run_cli(eval_cli.main, f"ckpt={bad[kind]}", f"hydra.run.dir={tmp_path}")
    assert_one_line(code, err, bad[kind], EXPECTED[kind])
    assert not bad["marker"].exists()


def test_every_entry_point_refuses_the_malicious_pickle(bad, tmp_path):
    path = bad["malicious"]
    runs = {
        "predict": (predict_cli.main, f"ckpt={path}", f"source={tmp_path}"),
        "export": (export_cli.main, f"ckpt={path}"),
        "train model.weights": (train_cli.main, f"model.weights={path}", "data.source.root=/nonexistent"),
        "train ckpt_path": (train_cli.main, f"ckpt_path={path}", "data.source.root=/nonexistent"),
    }
    for name, (main, *args) in runs.items():
        code, _, err = run_cli(main, *args, f"hydra.run.dir={tmp_path / name.replace(' ', '_')}")
        assert_one_line(code, err, path, EXPECTED["malicious"])
        assert "refused for safety" in err, name
    assert not bad["marker"].exists()


def test_other_kinds_are_refused_by_what_they_are(bad, tmp_path):
    """A truncated file as ``model.weights``; a plain state dict where a training checkpoint is needed."""
    code, _, err = run_cli(train_cli.main, f"model.weights={bad['truncated']}", f"hydra.run.dir={tmp_path / 't'}")
    assert_one_line(code, err, bad["truncated"], EXPECTED["truncated"])
    plain = tmp_path / "plain.pt"
    torch.save({"backbone.stem.0.conv.weight": torch.zeros(1)}, plain)
    code, _, err = run_cli(eval_cli.main, f"ckpt={plain}", f"hydra.run.dir={tmp_path / 'e'}")
    assert_one_line(code, err, plain, "is a plain state dict; yolov7-eval needs a training checkpoint")


def test_full_traceback_with_hydra_full_error(bad, tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(CheckpointError, match="empty file"):
        run_cli(eval_cli.main, f"ckpt={bad['empty']}", f"hydra.run.dir={tmp_path}")


def test_installed_command_exit_status(bad, tmp_path):
    """The real process: exit status 1 and one line on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-m", "yolov7_lightning.cli.predict", f"ckpt={bad['random']}",
                           f"source={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert_one_line(proc.returncode, proc.stderr, bad["random"], EXPECTED["random"])
