"""``kill -9`` in the middle of a checkpoint write: the file on disk is the previous complete
checkpoint, readable by the checkpoint reader; the interrupted write never replaces it.

A real process writes ``last.ckpt`` over and over through the Lightning checkpoint plugin of every
run (``AtomicCheckpointIO``), each generation's tensors all filled with its number; it is SIGKILLed
as soon as bytes of a write reach its folder (the write in progress)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from yolov7_lightning.models.checkpoint_reader import read_checkpoint

WRITER = r"""
import sys, time
import torch
from yolov7_lightning.models import build_model
from yolov7_lightning.training.checkpoint_io import AtomicCheckpointIO

path = sys.argv[1]
state = {f"model.{k}": v for k, v in build_model("yolov7-tiny", num_classes=2).state_dict().items()}
hp = {"model": {"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny", "num_classes": 2},
      "names": ["a", "b"], "image_size": 64}
io = AtomicCheckpointIO()
for generation in range(1, 10_000):
    filled = {k: torch.full_like(v, generation) for k, v in state.items()}
    print("BEGIN", generation, flush=True)
    start = time.perf_counter()
    io.save_checkpoint({"hyper_parameters": hp, "state_dict": filled, "generation": generation}, path)
    print("WROTE", generation, time.perf_counter() - start, flush=True)
"""


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every file in ``folder``, temp files included."""
    out = {}
    for p in folder.iterdir():
        try:
            st = p.stat()
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
        out[p.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def kill_during_a_write(folder: Path) -> tuple[int, bool]:
    """Start the writer; after its first complete write, SIGKILL it as soon as bytes of the next one
    reach the folder (a temp file with data, or ``last.ckpt`` itself changing: whatever the way it
    writes). (the last generation it reported written, whether the kill landed inside a write)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder / "last.ckpt")], stdout=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()

    def written() -> list[int]:
        return [int(line.split()[1]) for line in list(lines) if line.startswith("WROTE")]

    landed = False
    try:
        deadline = time.monotonic() + 300
        while not written() and time.monotonic() < deadline:
            assert proc.poll() is None, "the writer stopped"
            time.sleep(0.01)
        done, complete = len(written()), snapshot(folder)
        while time.monotonic() < deadline:
            now = snapshot(folder)
            if len(written()) != done:  # a write completed between two looks: start from it
                done, complete = len(written()), now
                continue
            if any(name != "last.ckpt" and size > 0 for name, (_, size, _) in now.items()) \
                    or now.get("last.ckpt") != complete.get("last.ckpt"):
                os.kill(proc.pid, signal.SIGKILL)
                landed = len(written()) == done  # no write completed in the meantime
                break
            time.sleep(0.0005)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        reader.join(timeout=60)
    assert proc.returncode == -signal.SIGKILL and written()
    return written()[-1], landed


def test_kill_9_during_a_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    for attempt in range(3):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        last_written, landed = kill_during_a_write(folder)
        ckpt = read_checkpoint(folder / "last.ckpt", kinds=("training",))  # complete, readable by the project's reader
        generation = ckpt.raw["generation"]
        assert generation == last_written  # the last completed write; the interrupted one replaced nothing
        assert ckpt.spec["variant"] == "yolov7-tiny" and len(ckpt.state) > 100
        assert all(torch.equal(v, torch.full_like(v, generation)) for v in ckpt.state.values())  # one generation
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]
        if landed:
            break
    else:
        raise AssertionError("the kill never landed in the middle of a write")
