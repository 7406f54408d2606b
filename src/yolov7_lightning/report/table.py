"""The report tables: one row per job, and one row per arm (the overrides minus ``seed``) with the
mean ± sample standard deviation over its seeds."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..atomic import atomic_open
from ..training.run_summary import reported
from .collect import Job

SEED_KEYS = ("seed",)
METRIC_KEYS = ("map", "map50", "fitness")
MODEL_KEYS = ("params_train", "params_deploy", "gflops_train", "gflops_deploy")
JOB_COLUMNS = ("job", "arm", "seed", "map", "map50", "fitness", "epoch", "top_level", "epochs", *MODEL_KEYS,
               "train_seconds", "overrides")
GROUP_COLUMNS = ("arm", "n", "seeds", *(f"{k}_{s}" for k in METRIC_KEYS for s in ("mean", "std")), *MODEL_KEYS,
                 "train_seconds_mean", "jobs")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def without_seed(overrides: Iterable[str]) -> tuple[str, ...]:
    """The overrides that define an arm: all but the seed."""
    return tuple(o for o in overrides if _key(o) not in SEED_KEYS)


def arm_labels(jobs: Sequence[Job]) -> dict[tuple[str, ...], str]:
    """A short label per arm: its overrides that differ between arms (the swept ones), or all of
    them when there is one arm; ``(defaults)`` for a job without overrides."""
    arms = list(dict.fromkeys(without_seed(j.overrides) for j in jobs))
    common = set.intersection(*(set(a) for a in arms)) if len(arms) > 1 else set()
    return {a: " ".join(o for o in a if o not in common) or " ".join(a) or "(defaults)" for a in arms}


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def job_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per job: arm label, seed, the run's result (:func:`~yolov7_lightning.training.run_summary.reported`:
    its numbers, its ``epoch`` and which one it is, ``top_level``), model size and training time, all overrides."""
    labels = arm_labels(jobs)
    rows = []
    for job in jobs:
        m, model = job.metrics, job.metrics.get("model") or {}
        result = reported(m)  # the run's result: the epoch metrics.json's ``top_level`` names
        rows.append({
            "job": job.name, "arm": labels[without_seed(job.overrides)], "seed": job.seed,
            **{k: _num(result.get(k)) for k in METRIC_KEYS}, "epoch": result.get("epoch"),
            "top_level": m.get("top_level"), "epochs": m.get("epochs"),
            **{k: model.get(k) for k in MODEL_KEYS}, "train_seconds": _num(m.get("train_seconds")),
            "overrides": " ".join(job.overrides),
        })
    return rows


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1) of the values that exist; no std for one value."""
    xs = [x for x in values if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def group_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm (in order of first appearance): n jobs, their seeds, mean and std of every
    metric, the model size (the same for every seed) and the mean training time."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["arm"], []).append(row)
    out = []
    for arm, members in groups.items():
        row: dict[str, Any] = {"arm": arm, "n": len(members), "seeds": " ".join(str(r["seed"]) for r in members)}
        for k in METRIC_KEYS:
            row[f"{k}_mean"], row[f"{k}_std"] = mean_std(r[k] for r in members)
        for k in MODEL_KEYS:
            row[k] = members[0][k]
        row["train_seconds_mean"] = mean_std(r["train_seconds"] for r in members)[0]
        row["jobs"] = " ".join(r["job"] for r in members)
        out.append(row)
    return out


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str]) -> Path:
    with atomic_open(path, binary=False, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return path


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _md(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def to_markdown(rows: Sequence[dict[str, Any]], groups: Sequence[dict[str, Any]], title: str = "Ablation report",
                source: str = "", skipped: Sequence[str] = ()) -> str:
    """``report.md``: the grouped table (mean ± std over seeds), then the per-job table."""
    parts = [f"# {title}", ""]
    if source:
        parts += [f"Multirun folder: `{source}`; {len(rows)} jobs with metrics, {len(skipped)} skipped.", ""]
    parts += ["## Per arm (mean ± sample std over seeds)", "", _md(
        ["arm", "n", "mAP@.5:.95", "mAP@.5", "fitness", "params (train)", "params (deploy)", "GFLOPs (train)",
         "GFLOPs (deploy)", "train s (mean)"],
        ([g["arm"], g["n"], pm(g["map_mean"], g["map_std"]), pm(g["map50_mean"], g["map50_std"]),
          pm(g["fitness_mean"], g["fitness_std"]), _fmt(g["params_train"]), _fmt(g["params_deploy"]),
          _fmt(g["gflops_train"], 2), _fmt(g["gflops_deploy"], 2), _fmt(g["train_seconds_mean"], 0)] for g in groups)),
        "", "## Per job", "", _md(
        ["job", "arm", "seed", "mAP@.5:.95", "mAP@.5", "epochs", "params (train)", "GFLOPs (train)", "train s",
         "overrides"],
        ([r["job"], r["arm"], r["seed"], _fmt(r["map"]), _fmt(r["map50"]), _fmt(r["epochs"]), _fmt(r["params_train"]),
          _fmt(r["gflops_train"], 2), _fmt(r["train_seconds"], 0), f"`{r['overrides']}`" if r["overrides"] else "-"]
         for r in rows))]
    if skipped:
        parts += ["", "## Skipped (no metrics.json)", "", *[f"- `{s}`" for s in skipped]]
    return "\n".join(parts) + "\n"
