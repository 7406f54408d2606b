"""``yolov7-report``: the table and plot of an ablation multirun folder.

    yolov7-report multirun/ablation_assigner/2026-01-01_12-00-00     # the folder as the first argument
    yolov7-report dir=multirun/... out=reports/ wandb=false

Reads every job's ``metrics.json`` and ``.hydra/`` (jobs without metrics are skipped with a warning),
writes ``report.md``, ``report.csv``, ``report_grouped.csv`` and ``report.png`` into the folder (or
``out=``) and, when the jobs logged to W&B (or ``wandb=true``), logs the tables and the plot to a
W&B run of job type ``report`` in the same group. On a search folder (``hparams_search=optuna``, with
its ``optuna.db``) it also writes ``search.md``, ``search.csv`` and ``search.png``: every trial's
parameters and fitness, the best trial first, and the fitness over the trials.
"""

from __future__ import annotations

import re
import sys
from typing import Sequence

from omegaconf import DictConfig

from ..report import write_report
from ..report.search import is_search, write_search_report
from ..report.table import pm
from ..report.wandb_log import log_report, used_wandb
from .app import hydra_app

# Hydra flags whose next argument is their value (not a positional folder)
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                "-cd", "--experimental-rerun", "--shell-completion", "-sc"}
_PLAIN = re.compile(r"^[\w./-]+$")


def positional_to_dir(argv: Sequence[str]) -> list[str]:
    """``[prog, <folder>, ...]`` -> ``[prog, dir=<folder>, ...]``: Hydra's command line has no positional
    arguments, so a bare first non-flag argument becomes ``dir=``; ``dir=...`` is kept as it is."""
    out, prev, done = [argv[0]], "", any(a.startswith("dir=") for a in argv[1:])
    for arg in argv[1:]:
        if not done and "=" not in arg and not arg.startswith("-") and prev not in _VALUE_FLAGS:
            value = arg if _PLAIN.match(arg) else "'" + arg.replace("\\", "\\\\").replace("'", "\\'") + "'"
            arg, done = f"dir={value}", True
        out.append(arg)
        prev = arg
    return out


def run(cfg: DictConfig) -> dict:
    report = write_report(cfg.dir, out=cfg.out, title=cfg.title)
    n, skipped = len(report.rows), len(report.collection.skipped)
    print(f"{n} jobs, {len(report.groups)} arms" + (f", {skipped} skipped (no metrics.json)" if skipped else ""))
    for g in ([] if is_search(cfg.dir) else report.groups):  # a search's trials: search.md, best first
        shown = pm(g["map_mean"], g["map_std"])
        print(f"  {g['arm']:<40}  n={g['n']}  mAP@.5:.95 {shown}")
    want = cfg.wandb if cfg.wandb is not None else used_wandb(report.collection.jobs)
    if want:
        report.wandb_run_dir = log_report(report, project=cfg.wandb_project, group=cfg.wandb_group)
    if is_search(cfg.dir):
        search = write_search_report(cfg.dir, out=cfg.out)
        report.files.update(search.files)
        best = search.rows[0] if search.rows else None
        print(f"search: {len(search.rows)} trials" + (f", best: trial {best['trial']} (fitness {best['fitness']})"
                                                     if best and best["fitness"] is not None else ""))
    files = ", ".join(p.name for p in report.files.values())
    print(f"outputs: {report.files['md'].parent}  ({files})"
          + (f"; W&B run: {report.wandb_run_dir}" if report.wandb_run_dir else ""))
    return {"rows": report.rows, "groups": report.groups, "files": {k: str(v) for k, v in report.files.items()}}


_hydra_main = hydra_app("report", run)


def main() -> None:
    sys.argv = positional_to_dir(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
