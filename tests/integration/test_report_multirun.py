"""A real (tiny) ablation multirun, then ``yolov7-report`` on it: one row per job, the jobs' numbers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from tests.integration.test_train import SMALL


def test_ablation_multirun_and_report(tmp_path):
    sweep = tmp_path / "multirun"
    # the file's 3-arm sweep replaced by 2 arms on the command line (docs/ablations.md)
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", "-m", "experiment=ablation_repconv",
           "hydra.sweeper.params=null", "model.elan_repconv=none,planned", f"hydra.sweep.dir={sweep}",
           f"data.source.root={tmp_path / 'shapes'}", *SMALL, "schedule.epochs=1", "export.enabled=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    metrics = [json.loads((p / "metrics.json").read_text()) for p in jobs]

    proc = subprocess.run([sys.executable, "-m", "yolov7_lightning.cli.report", str(sweep)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"outputs: {sweep}" in proc.stdout
    with open(sweep / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row, m, arm in zip(rows, metrics, ("none", "planned")):
        assert row["arm"] == f"model.elan_repconv={arm}"
        assert float(row["map"]) == m["map"] and float(row["map50"]) == m["map50"]
        chosen = m[m["top_level"]]  # the epoch metrics.json reports, in the table too
        assert (float(row["map"]), float(row["fitness"]), int(row["epoch"])) == (chosen["map"], chosen["fitness"],
                                                                               chosen["epoch"])
        assert row["top_level"] == m["top_level"] == "last"
        assert int(row["params_train"]) == m["model"]["params_train"]
        assert float(row["train_seconds"]) == m["train_seconds"] and int(row["epochs"]) == m["epochs"] == 1
    # RepConvN adds training parameters only: the deploy networks are the same
    assert int(rows[1]["params_train"]) > int(rows[0]["params_train"])
    assert rows[0]["params_deploy"] == rows[1]["params_deploy"]
    with open(sweep / "report_grouped.csv") as f:
        assert [g["arm"] for g in csv.DictReader(f)] == ["model.elan_repconv=none", "model.elan_repconv=planned"]
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG" and (sweep / "report.md").is_file()
