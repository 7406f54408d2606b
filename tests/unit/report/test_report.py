"""``yolov7-report`` on a hand-built multirun folder: aggregation over seeds, skipped jobs, the files."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from yolov7_lightning.cli.report import positional_to_dir
from yolov7_lightning.report import collect, write_report
from yolov7_lightning.report.wandb_log import run_settings, used_wandb

# (job folder, arm override, seed, mAP, mAP@.5, train seconds); job 5 failed (no metrics.json)
JOBS = [
    ("0", "aux=none", 1, 0.30, 0.60, 100.0),
    ("1", "aux=none", 2, 0.34, 0.62, 110.0),
    ("2", "aux=none", 3, 0.35, 0.67, 120.0),
    ("3", "aux=coarse_to_fine", 1, 0.40, 0.70, 150.0),
    ("4", "aux=coarse_to_fine", 2, 0.44, 0.71, 160.0),
]
PARAMS = {"aux=none": 6_228_762, "aux=coarse_to_fine": 6_600_000}


def make_multirun(root: Path, logger_target: str = "lightning.pytorch.loggers.CSVLogger") -> Path:
    for name, arm, seed, m, m50, secs in JOBS + [("5", "aux=lead_guided", 1, None, None, None)]:
        job = root / name
        (job / ".hydra").mkdir(parents=True)
        overrides = ["experiment=ablation_assigner", arm, f"seed={seed}"]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        config = {"seed": seed, "logger": {"_target_": logger_target, "save_dir": "${hydra:runtime.output_dir}",
                                           "project": "ablations", "group": None}}
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        if m is None:
            continue  # a failed job: no metrics.json
        metrics = {"map": m, "map50": m50, "fitness": 0.1 * m50 + 0.9 * m, "epochs": 6, "train_seconds": secs,
                   "seed": seed, "overrides": overrides,
                   "model": {"params_train": PARAMS[arm], "params_deploy": 6_219_709, "gflops_train": 13.7,
                             "gflops_deploy": 13.7}}
        (job / "metrics.json").write_text(json.dumps(metrics))
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def _mean_std(xs):
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def test_collect_skips_and_counts_jobs_without_metrics(tmp_path, caplog):
    root = make_multirun(tmp_path / "multirun")
    with caplog.at_level("WARNING"):
        collection = collect(root)
    assert [j.name for j in collection.jobs] == ["0", "1", "2", "3", "4"]
    assert collection.skipped == [root / "5"]
    assert any(str(root / "5") in r.getMessage() for r in caplog.records)
    assert collection.jobs[3].seed == 1 and collection.jobs[3].overrides[1] == "aux=coarse_to_fine"


def test_tables_mean_and_std_over_seeds(tmp_path):
    root = make_multirun(tmp_path / "multirun")
    report = write_report(root)
    assert len(report.rows) == 5  # one row per job with metrics
    assert [r["arm"] for r in report.rows] == ["aux=none"] * 3 + ["aux=coarse_to_fine"] * 2  # common overrides dropped
    assert [r["map"] for r in report.rows] == [j[3] for j in JOBS]
    groups = {g["arm"]: g for g in report.groups}
    assert list(groups) == ["aux=none", "aux=coarse_to_fine"]
    for arm, key, idx in (("aux=none", "map", 3), ("aux=none", "map50", 4), ("aux=coarse_to_fine", "map", 3),
                          ("aux=coarse_to_fine", "map50", 4)):
        mean, std = _mean_std([j[idx] for j in JOBS if j[1] == arm])
        assert groups[arm][f"{key}_mean"] == pytest.approx(mean, abs=1e-12)
        assert groups[arm][f"{key}_std"] == pytest.approx(std, abs=1e-12)
    assert groups["aux=none"]["map_mean"] == pytest.approx(0.33) and groups["aux=none"]["map_std"] == pytest.approx(
        math.sqrt(0.0007))
    assert groups["aux=none"]["n"] == 3 and groups["aux=none"]["seeds"] == "1 2 3"
    assert groups["aux=coarse_to_fine"]["params_train"] == 6_600_000
    assert groups["aux=coarse_to_fine"]["train_seconds_mean"] == pytest.approx(155.0)

    # the files: CSVs read back, markdown has mean ± std, the PNG is a real image
    files = report.files
    assert all(p.parent == root and p.is_file() for p in files.values())
    with open(files["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and float(rows[4]["map"]) == 0.44 and rows[0]["seed"] == "1"
    with open(files["grouped_csv"]) as f:
        grouped = list(csv.DictReader(f))
    assert [g["arm"] for g in grouped] == ["aux=none", "aux=coarse_to_fine"]
    assert float(grouped[1]["map_mean"]) == pytest.approx(0.42)
    md = files["md"].read_text()
    assert "0.3300 ± 0.0265" in md and "0.4200 ± 0.0283" in md and "5 jobs with metrics, 1 skipped" in md
    assert str(root / "5") in md
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    image = matplotlib.image.imread(files["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_out_folder_and_empty_folder(tmp_path):
    root = make_multirun(tmp_path / "multirun")
    report = write_report(root, out=tmp_path / "elsewhere", title="T")
    assert report.files["md"] == tmp_path / "elsewhere" / "report.md" and report.files["md"].read_text().startswith("# T")
    (tmp_path / "empty" / "0" / ".hydra").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no job with a metrics.json"):
        write_report(tmp_path / "empty")


def test_positional_folder_becomes_dir():
    assert positional_to_dir(["yolov7-report", "multirun/2026-01-01_12-00-00"]) == [
        "yolov7-report", "dir=multirun/2026-01-01_12-00-00"]
    assert positional_to_dir(["r", "out=x", "/tmp/my runs", "wandb=false"]) == ["r", "out=x", "dir='/tmp/my runs'",
                                                                               "wandb=false"]
    assert positional_to_dir(["r", "dir=a", "title=b"]) == ["r", "dir=a", "title=b"]
    assert positional_to_dir(["r", "--cfg", "job", "runs/x"]) == ["r", "--cfg", "job", "dir=runs/x"]


def test_wandb_detection(tmp_path):
    plain = collect(make_multirun(tmp_path / "a"))
    wandb_jobs = collect(make_multirun(tmp_path / "b", "yolov7_lightning.training.loggers.wandb_logger"))
    assert not used_wandb(plain.jobs) and used_wandb(wandb_jobs.jobs)
    report = write_report(tmp_path / "b")
    assert run_settings(report) == {"project": "ablations", "entity": None, "group": "b"}


def test_cli_positional_with_wandb(tmp_path):
    """The console script on a folder whose jobs logged to W&B: files + an offline run of type report."""
    root = make_multirun(tmp_path / "multirun", "yolov7_lightning.training.loggers.wandb_logger")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run([sys.executable, "-m", "yolov7_lightning.cli.report", str(root)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert f"outputs: {root}" in proc.stdout and "5 jobs, 2 arms, 1 skipped" in proc.stdout
    assert "skipping" in out and str(root / "5") in out
    runs = list((root / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()  # Hydra writes nothing else
    again = collect(root)  # the W&B folder inside the multirun is not mistaken for a job
    assert len(again.jobs) == 5 and len(again.skipped) == 1


def test_one_seed_has_no_std():
    from yolov7_lightning.report.table import mean_std, pm

    assert mean_std([0.5, None]) == (0.5, None)  # one value: the sample std is undefined, not 0
    assert pm(0.5, None) == "0.5000" and pm(0.5, 0.01) == "0.5000 ± 0.0100" and pm(None, None) == "-"


def test_rows_take_the_epoch_metrics_json_reports(tmp_path):
    """A run whose best and last epochs differ: the table takes the one ``top_level`` names (the same
    numbers as the file's top level), and says which."""
    root = make_multirun(tmp_path / "multirun")
    job = root / "0"
    metrics = json.loads((job / "metrics.json").read_text())
    best = {"epoch": 3, "map": 0.50, "map50": 0.80, "fitness": 0.53}
    last = {"epoch": 5, "map": 0.30, "map50": 0.60, "fitness": 0.33}
    metrics.update(top_level="last", best=best, last=last)
    (job / "metrics.json").write_text(json.dumps(metrics))
    row = write_report(root).rows[0]
    assert (row["map"], row["map50"], row["fitness"], row["epoch"], row["top_level"]) == (0.30, 0.60, 0.33, 5, "last")
    metrics["top_level"] = "best"  # a file that reports its best epoch is read as such
    (job / "metrics.json").write_text(json.dumps(metrics))
    assert write_report(root).rows[0]["map"] == 0.50
    with open(root / "report.csv") as f:
        assert next(csv.DictReader(f))["epoch"] == "3"
