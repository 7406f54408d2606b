"""``yolov7-report``: the ablation table and plot of a multirun folder.

:func:`collect` reads every job (``metrics.json`` + ``.hydra/``), :func:`job_rows` /
:func:`group_rows` make the per-job table and the mean ± std over seeds, :func:`plot_groups` draws
the bar chart, :func:`write_report` writes ``report.md``, ``report.csv``, ``report_grouped.csv`` and
``report.png``.
"""

from .collect import Collection, Job, collect
from .plot import plot_groups
from .table import group_rows, job_rows, to_markdown, write_csv
from .write import Report, write_report

__all__ = ["Collection", "Job", "collect", "job_rows", "group_rows", "to_markdown", "write_csv", "plot_groups",
           "Report", "write_report"]
