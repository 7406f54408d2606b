"""The report of a hyper-parameter search folder (``hparams_search=optuna``): every trial of the study
in ``<folder>/optuna.db`` with its parameters and fitness, the best trial first, and a plot of the
fitness over the trials. Trial ``n`` ran in job folder ``<folder>/<n>`` (its ``metrics.json`` gives
mAP@.5:.95, mAP@.5 and the training time)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_save_figure, atomic_write_text
from ..errors import UserError
from ..training.run_summary import reported
from .table import _md, write_csv

STUDY_FILE = "optuna.db"
TRIAL_COLUMNS = ("rank", "trial", "state", "fitness", "map", "map50", "epochs", "train_seconds", "job")


def is_search(root: str | Path) -> bool:
    return (Path(root) / STUDY_FILE).is_file()


@dataclass
class SearchReport:
    study_name: str
    rows: list[dict[str, Any]]          # best first
    params: list[str]                   # the searched parameter names (columns after TRIAL_COLUMNS)
    files: dict[str, Path] = field(default_factory=dict)


def load_trials(root: str | Path) -> tuple[str, list[Any]]:
    """(study name, its trials) from ``<root>/optuna.db``; exactly one study is expected there."""
    try:
        import optuna
    except ImportError as e:
        raise ImportError("a search folder's report reads its Optuna study: install the [cluster] extra "
                          "(pip install 'yolov7-lightning[cluster]')") from e
    storage = f"sqlite:///{(Path(root) / STUDY_FILE).resolve()}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
    if len(names) != 1:
        raise UserError(f"{Path(root) / STUDY_FILE}: expected one study, found {len(names)}: {names}")
    study = optuna.load_study(study_name=names[0], storage=storage)
    return names[0], study.get_trials(deepcopy=False)


def _metrics(job: Path) -> dict[str, Any]:
    try:
        return json.loads((job / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def search_rows(root: str | Path) -> SearchReport:
    """One row per trial (parameters, fitness, the job's metrics), sorted best first (by fitness;
    trials without a value last, in trial order)."""
    root = Path(root)
    name, trials = load_trials(root)
    params = sorted({k for t in trials for k in t.params})
    rows = []
    for t in trials:
        job = root / str(t.number)
        m = _metrics(job)
        result = reported(m)  # the epoch the objective took
        rows.append({"trial": t.number, "state": t.state.name, "fitness": t.value, "map": result.get("map"),
                     "map50": result.get("map50"), "epochs": m.get("epochs"), "train_seconds": m.get("train_seconds"),
                     "job": job.name if job.is_dir() else None, **{p: t.params.get(p) for p in params}})
    rows.sort(key=lambda r: (r["fitness"] is None, -(r["fitness"] or 0.0), r["trial"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return SearchReport(study_name=name, rows=rows, params=params)


def plot_search(rows: list[dict[str, Any]], title: str = "", path: str | Path | None = None) -> Figure:
    """Fitness of every trial (dots, in trial order) and the best so far (step line)."""
    done = sorted((r for r in rows if r["fitness"] is not None), key=lambda r: r["trial"])
    fig = Figure(figsize=(7.0, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs, ys = [r["trial"] for r in done], [r["fitness"] for r in done]
    best, so_far = [], float("-inf")
    for y in ys:
        so_far = max(so_far, y)
        best.append(so_far)
    ax.scatter(xs, ys, s=18, color="#3b75af", label="trial", zorder=3)
    ax.step(xs, best, where="post", color="#ef8636", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("fitness (0.1 mAP@.5 + 0.9 mAP@.5:.95)")
    ax.set_title(title or "Search: fitness over trials", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        atomic_save_figure(fig, path)
    return fig


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_search_report(root: str | Path, out: str | Path | None = None) -> SearchReport:
    """``search.md``, ``search.csv`` (one row per trial, best first) and ``search.png`` into ``out``
    (default: the search folder)."""
    report = search_rows(root)
    out_dir = Path(out) if out is not None else Path(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.files = {"search_md": out_dir / "search.md", "search_csv": out_dir / "search.csv",
                    "search_png": out_dir / "search.png"}
    columns = [*TRIAL_COLUMNS, *report.params]
    write_csv(report.rows, report.files["search_csv"], columns)
    n_done = sum(r["state"] == "COMPLETE" for r in report.rows)
    text = [f"# Search report: {Path(root).resolve().name}", "",
            f"Study `{report.study_name}` in `{Path(root) / STUDY_FILE}`: {len(report.rows)} trials, {n_done} complete. "
            "Best first; fitness = 0.1 mAP@.5 + 0.9 mAP@.5:.95.", "",
            _md(columns, ([_cell(r.get(c)) for c in columns] for r in report.rows)), ""]
    atomic_write_text("\n".join(text), report.files["search_md"])
    plot_search(report.rows, title=f"Search {Path(root).resolve().name}: fitness over trials",
                path=report.files["search_png"])
    return report
