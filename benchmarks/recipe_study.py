"""Recipes for small data compared at equal wall time: each recipe trains for the same time budget
(``schedule.minutes``) with several seeds, and the table gives the mean and spread of the last
epoch's mAP, the epochs the budget fitted and where the time went.

    python benchmarks/recipe_study.py                            # small / quick / custom, seeds 0 1 2, 5 min each
    python benchmarks/recipe_study.py --minutes 16 --seeds 0 1 2 3 --out runs/recipe_study

The data is ``data=shapes_small`` (56 training tiles of 320 px, one class, small objects; see
``conf/data/shapes_small.yaml``). The runs of one seed run side by side, one thread each, so every
recipe of a seed shares the machine's load; seeds run one after another. Every recipe may fit up to
``--max-epochs`` epochs (the budget decides; each recipe's warm-up and close-mosaic keep their
share of its own plan). One JSON line per run (read by tools): ``recipe``, ``seed``, ``map50``,
``map`` (the last epoch), ``best_map50``, ``best_epoch``, ``run_epochs``, ``planned_epochs``,
``elapsed_s``, ``time`` (``metrics.json: time``); then a Markdown table of means and spreads
(sample standard deviation), and of the mean time breakdown per recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RECIPES = {  # the overrides of each recipe (on top of data=shapes_small)
    "small": ["experiment=recipe_small"],
    "quick": ["model=yolov7-tiny", "augment=quick", "optim=sgd_quick", "schedule=quick"],  # recipe=quick's groups
    "custom": ["experiment=recipe_custom"],
    # recipe_small's parts: SGD lr0 0.03 at batch 8 in place of its AdamW at batch 4, and its AdamW at
    # batch 8 (half the optimizer steps per epoch)
    "small_sgd_b8": ["experiment=recipe_small", "optim=sgd_small", "schedule.warmup_bias_lr=0.1", "data.batch_size=8"],
    "small_adamw_b8": ["experiment=recipe_small", "data.batch_size=8", "optim.nominal_batch=8"],
}
PARTS = ("data", "forward", "loss", "backward", "step", "validation", "other")


def command(recipe: str, seed: int, minutes: float, max_epochs: int, run_dir: Path) -> list[str]:
    exe = Path(sys.executable).with_name("yolov7-train")
    return [str(exe), "data=shapes_small", *RECIPES[recipe], f"schedule.minutes={minutes}",
            f"schedule.epochs={max_epochs}", f"seed={seed}", "data.num_workers=0", f"hydra.run.dir={run_dir}"]


def result(recipe: str, seed: int, run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    last, best, budget = m.get("last") or {}, m.get("best") or {}, m.get("budget") or {}
    return {"recipe": recipe, "seed": seed, "map50": last.get("map50"), "map": last.get("map"),
            "best_map50": best.get("map50"), "best_epoch": best.get("epoch"), "run_epochs": budget.get("run_epochs"),
            "planned_epochs": budget.get("planned_epochs"), "elapsed_s": budget.get("elapsed_seconds"),
            "time": m.get("time")}


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(rows: list[dict]) -> str:
    lines = ["| recipe | seeds | last mAP@.5 | last mAP@.5:.95 | best mAP@.5 | epochs run | per-seed last mAP@.5 |",
             "|---|---|---|---|---|---|---|"]
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        rs = [r for r in rows if r["recipe"] == recipe]
        per_seed = ", ".join(f"{r['map50']:.3f}" for r in rs)
        epochs = ", ".join(str(r["run_epochs"]) for r in rs)
        lines.append(f"| {recipe} | {len(rs)} | {mean_sd([r['map50'] for r in rs])} | {mean_sd([r['map'] for r in rs])}"
                     f" | {mean_sd([r['best_map50'] for r in rs])} | {epochs} | {per_seed} |")
    lines += ["", "| recipe | " + " | ".join(PARTS) + " |", "|---|" + "---|" * len(PARTS)]
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        times = [r["time"] for r in rows if r["recipe"] == recipe and r["time"]]
        if not times:
            continue
        total = statistics.mean(t["total_s"] for t in times)
        cells = [f"{statistics.mean(t[f'{p}_s'] for t in times):.0f} s ({100 * statistics.mean(t[f'{p}_s'] for t in times) / total:.0f}%)"
                 for p in PARTS]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="the time budget of every run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=["small", "quick", "custom"], choices=list(RECIPES))
    p.add_argument("--max-epochs", type=int, default=100, help="schedule.epochs: the most epochs a budget may fit")
    p.add_argument("--threads", type=int, default=1, help="threads per run (the runs of a seed run side by side)")
    p.add_argument("--out", type=Path, default=Path("runs/recipe_study"))
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        procs = []
        for recipe in args.recipes:
            run_dir = args.out / f"{recipe}_seed{seed}"
            if (run_dir / "metrics.json").exists():  # already run: a killed study resumes
                procs.append((recipe, run_dir, None))
                continue
            log = open(args.out / f"{recipe}_seed{seed}.log", "w")
            procs.append((recipe, run_dir, subprocess.Popen(command(recipe, seed, args.minutes, args.max_epochs, run_dir),
                                                            env=env, stdout=log, stderr=subprocess.STDOUT)))
        for recipe, run_dir, proc in procs:
            if proc is not None and proc.wait() != 0:
                raise SystemExit(f"{recipe} seed {seed} failed: see {args.out / f'{recipe}_seed{seed}.log'}")
            row = result(recipe, seed, run_dir)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
