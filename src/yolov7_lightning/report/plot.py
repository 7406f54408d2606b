"""The ablation bar chart: mAP@.5:.95 and mAP@.5 per arm, mean with std error bars, seeds as dots."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_save_figure


def plot_groups(groups: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]] = (), title: str = "",
                path: str | Path | None = None) -> Figure:
    """A bar chart of the arms (Agg canvas: no display needed); saved to ``path`` when given."""
    fig = Figure(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.38
    for j, (key, label, color) in enumerate((("map", "mAP@.5:.95", "#3b75af"), ("map50", "mAP@.5", "#ef8636"))):
        xs = [i + (j - 0.5) * width for i in range(len(groups))]
        means = [g[f"{key}_mean"] or 0.0 for g in groups]
        stds = [g[f"{key}_std"] or 0.0 for g in groups]
        ax.bar(xs, means, width, yerr=stds, capsize=4, label=label, color=color, alpha=0.85)
        for x, g in zip(xs, groups):
            ys = [r[key] for r in rows if r["arm"] == g["arm"] and r[key] is not None]
            if len(ys) > 1:
                ax.scatter([x] * len(ys), ys, s=10, color="black", zorder=3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g['arm']}\n(n={g['n']})" for g in groups], fontsize=8)
    ax.set_ylabel("val mAP")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Ablation: mean ± std over seeds", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        atomic_save_figure(fig, path)
    return fig
