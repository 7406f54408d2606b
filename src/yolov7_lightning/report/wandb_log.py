"""Log a report to Weights & Biases: a run of job type ``report`` in the jobs' group."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .collect import Job
from .table import GROUP_COLUMNS, JOB_COLUMNS
from .write import Report


def _logger_cfg(job: Job) -> dict[str, Any]:
    logger = job.config.get("logger") or {}
    return logger if isinstance(logger, dict) else {}


def used_wandb(jobs: Sequence[Job]) -> bool:
    """Whether the jobs logged to W&B (their ``logger._target_`` mentions wandb)."""
    return any("wandb" in str(_logger_cfg(j).get("_target_", "")).lower() for j in jobs)


def _plain(value: Any) -> str | None:
    """A config value usable outside Hydra (interpolations such as ``${hydra:...}`` are not)."""
    return value if isinstance(value, str) and value and "${" not in value else None


def run_settings(report: Report) -> dict[str, Any]:
    """project / entity / group of the report run: the jobs' ``logger`` settings where they are plain
    values; the group defaults to the multirun folder's name (what ``logger=wandb`` uses in a sweep)."""
    logger = _logger_cfg(report.collection.jobs[0]) if report.collection.jobs else {}
    return {"project": _plain(logger.get("project")) or "yolov7-lightning", "entity": _plain(logger.get("entity")),
            "group": _plain(logger.get("group")) or report.collection.root.resolve().name}


def log_report(report: Report, project: str | None = None, group: str | None = None) -> Path:
    """One W&B run (job type ``report``; offline unless ``WANDB_MODE`` says otherwise, files in
    ``<multirun>/wandb/``) holding both tables and the plot. Returns the run's folder."""
    import wandb

    settings = run_settings(report)
    root = report.collection.root
    run = wandb.init(project=project or settings["project"], entity=settings["entity"],
                     group=group or settings["group"], job_type="report", name=f"report-{root.resolve().name}",
                     dir=str(root), mode=os.environ.get("WANDB_MODE", "offline"),
                     config={"multirun": str(root.resolve()), "jobs": len(report.rows),
                             "skipped": len(report.collection.skipped)})
    try:
        def table(rows, columns):
            return wandb.Table(columns=list(columns), data=[[r.get(c) for c in columns] for r in rows])

        run.log({"report/jobs": table(report.rows, JOB_COLUMNS), "report/arms": table(report.groups, GROUP_COLUMNS),
                 "report/plot": wandb.Image(str(report.files["png"]))})
        return Path(run.dir).parent
    finally:
        run.finish()
