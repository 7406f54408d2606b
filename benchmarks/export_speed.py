"""CPU latency at batch 1: unfused PyTorch (training form), fused PyTorch (deploy form) and ONNX Runtime
(the exported deploy graph without NMS), fp32.

    python benchmarks/export_speed.py                          # yolov7-tiny and yolov7 at 640
    python benchmarks/export_speed.py --variants yolov7-w6 --size 1280 --iters 5

Prints one JSON line per variant and a Markdown table. Median of ``--iters`` timed runs after
``--warmup``, the three backends taking turns; ONNX Runtime with as many intra-op threads as torch.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from yolov7_lightning.export import export_onnx, onnx_session
from yolov7_lightning.models import build_model
from yolov7_lightning.models.fuse import to_deploy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["yolov7-tiny", "yolov7"])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime
    machine = (f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
               f"onnxruntime {onnxruntime.__version__}")
    x = torch.rand(1, 3, args.size, args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            model = build_model(variant).eval()
            deploy = to_deploy(model)
            path = export_onnx(deploy, Path(tmp) / f"{variant}.onnx", x, dynamic_batch=False)
            session = onnx_session(path, threads=args.threads)
            feed = {"images": x.numpy()}
            runs = {"unfused_ms": lambda m=model: m(x), "fused_ms": lambda m=deploy: m(x),
                    "onnxruntime_ms": lambda s=session, f=feed: s.run(None, f)}
            times: dict[str, list[float]] = {k: [] for k in runs}
            with torch.inference_mode():
                for i in range(args.warmup + args.iters):
                    for key, fn in runs.items():
                        t0 = time.perf_counter()
                        fn()
                        if i >= args.warmup:
                            times[key].append((time.perf_counter() - t0) * 1e3)
            row = {"variant": variant, "size": args.size, "batch": 1,
                   **{k: round(statistics.median(v), 1) for k, v in times.items()}, "machine": machine}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n{machine}, {args.size}x{args.size}, batch 1, fp32, median of {args.iters}\n")
    print("| variant | unfused PyTorch (ms) | fused PyTorch (ms) | ONNX Runtime (ms) | ORT vs unfused |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['unfused_ms']} | {r['fused_ms']} | {r['onnxruntime_ms']} | "
              f"{r['unfused_ms'] / r['onnxruntime_ms']:.2f}x |")


if __name__ == "__main__":
    main()
