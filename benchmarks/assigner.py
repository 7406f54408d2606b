"""Assignment + loss time, batched vs the per-image reference (``yolov7_lightning.testing.reference_ota``), and the
number of host-synchronising ops of each.

    python benchmarks/assigner.py            # batch 8 and 32, 7 and 30 boxes per image, 640
    python benchmarks/assigner.py --device cuda

Heads: lead-only (yolov7 shapes: 3 levels, OTA top-10) and aux (yolov7-w6 shapes: 4 levels, lead
+ aux, coarse-to-fine). Random logits, nc = 80, boxes with centres U(0.1, 0.9) and sides U(0.02,
0.40) of the image. Prints one JSON line per case. The forward of the loss is timed (it includes
the assignment); the median of ``--iters`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import HeadGeometry, get_arch
from yolov7_lightning.models.heads import HeadOutputs
from yolov7_lightning.testing import reference_ota as ref
from yolov7_lightning.testing.sync_counter import SyncCounter


def setup(variant, aux, batch, boxes, size, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    arch = get_arch(variant)
    strides = list(arch.strides)
    anchors = torch.tensor(arch.anchors, dtype=torch.float32).view(arch.levels, 3, 2)
    anchors = anchors / torch.tensor(strides, dtype=torch.float32).view(-1, 1, 1)

    def maps():
        return [torch.randn(batch, 3, size // s, size // s, 85, generator=g).to(device) for s in strides]

    outputs = HeadOutputs(maps(), maps() if aux else None)
    n = batch * boxes
    xy = (0.1 + 0.8 * torch.rand(n, 2, generator=g)) * size
    wh = (0.02 + 0.38 * torch.rand(n, 2, generator=g)) * size
    cls = torch.randint(0, 80, (n, 1), generator=g).float()
    img = torch.arange(batch).repeat_interleave(boxes)[:, None].float()
    targets = torch.cat((img, cls, xy, wh), 1).to(device)
    return outputs, targets, anchors.to(device), strides


def timed(fn, iters, device):
    times = []
    for i in range(iters + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def syncs(fn):
    with SyncCounter() as c:
        fn()
    return c.count


def main() -> None:
    parser = argparse.ArgumentParser(description="assigner + loss benchmark")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--ref-iters", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (1: on a shared 2-vCPU VM, 2-thread OpenMP ops have a ~8 ms floor each)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for variant, aux in (("yolov7", False), ("yolov7-w6", True)):
        for batch in (8, 32):
            for boxes in (7, 30):
                outputs, targets, anchors, strides = setup(variant, aux, batch, boxes, args.size, args.device)
                loss = YOLOv7Loss(80, HeadGeometry.from_anchors(anchors, strides))
                row = {"head": "aux (W6)" if aux else "lead-only (v7)", "size": args.size, "batch": batch,
                       "boxes_per_image": boxes, "device": args.device, "threads": args.threads,
                       "batched_ms": round(timed(lambda: loss(outputs, targets), args.iters, args.device), 1),
                       "batched_syncs": syncs(lambda: loss(outputs, targets))}
                if not args.no_reference and args.device == "cpu":
                    gains = (loss.box_gain, loss.obj_gain, loss.cls_gain)

                    def run_ref():
                        ref.loss(outputs, targets.cpu(), anchors.cpu(), strides, 80, gains=gains)

                    row["reference_ms"] = round(timed(run_ref, args.ref_iters, "cpu"), 1)
                    row["reference_syncs"] = syncs(run_ref)
                    row["speedup"] = round(row["reference_ms"] / row["batched_ms"], 1)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
