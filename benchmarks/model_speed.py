"""CPU latency of one image (batch 1): training form (unfused) vs deploy form (fused), and the deploy
form in channels-last memory format (what oneDNN convolutions prefer on CPU).

    python benchmarks/model_speed.py                       # tiny and yolov7 at 320 and 640
    python benchmarks/model_speed.py --variants yolov7-w6 --sizes 1280 --iters 5

Prints one JSON line per (variant, size, form) and a Markdown table at the end. Eval mode, fp32,
``torch.inference_mode``; the median of ``--iters`` timed runs after ``--warmup`` runs, the two forms taking turns.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from yolov7_lightning.models import build_model
from yolov7_lightning.models.fuse import to_deploy


def paired_latency_ms(models: list[tuple[torch.nn.Module, bool]], size: int, warmup: int, iters: int) -> list[float]:
    """Median latency of each (model, channels_last); the models take turns every iteration so that
    drift of a shared machine hits all alike."""
    x = torch.rand(1, 3, size, size)
    x_cl = x.to(memory_format=torch.channels_last)
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for i in range(warmup + iters):
            for (model, cl), t in zip(models, times):
                t0 = time.perf_counter()
                model(x_cl if cl else x)
                if i >= warmup:
                    t.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["yolov7-tiny", "yolov7"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
    rows = []
    for variant in args.variants:
        model = build_model(variant).eval()
        deploy = to_deploy(model)
        deploy_cl = to_deploy(model).to(memory_format=torch.channels_last)
        for size in args.sizes:
            unfused, fused, fused_cl = paired_latency_ms([(model, False), (deploy, False), (deploy_cl, True)], size,
                                                         args.warmup, args.iters)
            row = {"variant": variant, "size": size, "batch": 1, "unfused_ms": round(unfused, 1),
                   "fused_ms": round(fused, 1), "fused_channels_last_ms": round(fused_cl, 1), "machine": machine}
            row["speedup"] = round(row["unfused_ms"] / row["fused_channels_last_ms"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| model | size | unfused (ms) | fused (ms) | fused, channels-last (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['size']} | {r['unfused_ms']} | {r['fused_ms']} | {r['fused_channels_last_ms']} "
              f"| {r['speedup']}x |")
    print(f"\nCPU, batch 1, fp32, median of {args.iters}: {machine}")


if __name__ == "__main__":
    main()
