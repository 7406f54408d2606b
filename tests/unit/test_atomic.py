"""Atomic writes: a write that fails midway (a full disk: ``OSError(ENOSPC)``) leaves the previous
file as it was and no temp file, for the generic writer and for the ONNX export."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from yolov7_lightning.atomic import atomic_folder, atomic_path, atomic_write, atomic_write_json
from yolov7_lightning.export.onnx_export import export_onnx


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_a_write_failing_midway_keeps_the_previous_file(tmp_path):
    path = tmp_path / "report.json"
    atomic_write_json({"version": 1}, path)
    before = path.read_bytes()

    def half_then_full(f):
        f.write(b'{"version": 2, "rows": [' + b"1, " * 10_000)  # some bytes reach the temp file, then the disk is full
        disk_full()

    with pytest.raises(OSError) as e:
        atomic_write(path, half_then_full)
    assert e.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert leftovers(tmp_path, {"report.json"}) == []


def test_a_full_disk_during_the_onnx_export_keeps_the_previous_model(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the model exported before")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(2)).eval()
    monkeypatch.setattr(os, "fsync", disk_full)  # the data is written, the flush to disk fails
    with pytest.raises(OSError) as e:
        export_onnx(net, path, torch.rand(1, 3, 8, 8), metadata={"names": "[]"})
    assert e.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"the model exported before"
    assert leftovers(tmp_path, {"model.onnx"}) == []
    monkeypatch.undo()
    export_onnx(net, path, torch.rand(1, 3, 8, 8), metadata={"names": "[]"})  # and a good write replaces it
    import onnx

    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["names"] == "[]"
    assert leftovers(tmp_path, {"model.onnx"}) == []


def test_named_temp_files_and_folders_appear_whole_or_not_at_all(tmp_path):
    video = tmp_path / "out.mp4"
    video.write_bytes(b"previous")
    with pytest.raises(OSError):
        with atomic_path(video) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".mp4"
            tmp.write_bytes(b"half a vid")
            disk_full()
    assert video.read_bytes() == b"previous" and leftovers(tmp_path, {"out.mp4"}) == []
    with atomic_path(video) as tmp:
        tmp.write_bytes(b"new")
    assert video.read_bytes() == b"new" and leftovers(tmp_path, {"out.mp4"}) == []

    data = tmp_path / "dataset"
    with pytest.raises(OSError):
        with atomic_folder(data) as tmp:
            (tmp / "a.jpg").write_bytes(b"x")
            disk_full()
    assert not data.exists() and leftovers(tmp_path, {"out.mp4"}) == []
    with atomic_folder(data) as tmp:
        (tmp / "a.jpg").write_bytes(b"x")
    assert sorted(p.name for p in data.iterdir()) == ["a.jpg"] and leftovers(tmp_path, {"out.mp4", "dataset"}) == []
