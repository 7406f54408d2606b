"""Write a multirun's report: ``report.md``, ``report.csv``, ``report_grouped.csv``, ``report.png``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import MissingInputError
from .collect import Collection, collect
from .plot import plot_groups
from .table import GROUP_COLUMNS, JOB_COLUMNS, group_rows, job_rows, to_markdown, write_csv

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What :func:`write_report` made: the collection, both tables and the files written."""

    collection: Collection
    rows: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    wandb_run_dir: Path | None = None


def write_report(root: str | Path, out: str | Path | None = None, title: str | None = None) -> Report:
    """Collect the jobs of ``root`` and write the four report files into ``out`` (default: ``root``)."""
    collection = collect(root)
    if not collection.jobs:
        raise MissingInputError(f"no job with a metrics.json under {collection.root} "
                                f"({len(collection.skipped)} job folders without one)")
    out_dir = Path(out) if out is not None else collection.root
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = job_rows(collection.jobs)
    groups = group_rows(rows)
    root = collection.root.resolve()
    title = title or f"Ablation report: {root.parent.name}/{root.name}"
    files = {
        "md": out_dir / "report.md", "csv": out_dir / "report.csv",
        "grouped_csv": out_dir / "report_grouped.csv", "png": out_dir / "report.png",
    }
    skipped = [str(p) for p in collection.skipped]
    atomic_write_text(to_markdown(rows, groups, title=title, source=str(collection.root), skipped=skipped), files["md"])
    write_csv(rows, files["csv"], JOB_COLUMNS)
    write_csv(groups, files["grouped_csv"], GROUP_COLUMNS)
    plot_groups(groups, rows, title=title, path=files["png"])
    return Report(collection=collection, rows=rows, groups=groups, files=files)
