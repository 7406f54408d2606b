"""Training throughput and peak memory: images/s of full steps (forward, loss, backward, optimizer)
and the share of the step spent in the loss (assignment included).

    python benchmarks/train_speed.py                        # tiny and yolov7 at 320 and 640, CPU, batch 8
    python benchmarks/train_speed.py --device cuda --batch 32 --amp

Random images with 7 boxes each (centres U(0.1, 0.9), sides U(0.02, 0.4) of the image); median of
``--iters`` steps after ``--warmup``. Peak memory: max RSS growth on CPU, ``max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import build_model
from yolov7_lightning.training.optim import build_optimizer


def targets_for(batch: int, size: int, nc: int, g: torch.Generator) -> torch.Tensor:
    n = batch * 7
    xy = (0.1 + 0.8 * torch.rand(n, 2, generator=g)) * size
    wh = (0.02 + 0.38 * torch.rand(n, 2, generator=g)) * size
    img = torch.arange(batch).repeat_interleave(7)[:, None].float()
    return torch.cat((img, torch.randint(0, nc, (n, 1), generator=g).float(), xy, wh), 1)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(variant: str, size: int, batch: int, device: str, amp: bool, warmup: int, iters: int) -> dict:
    g = torch.Generator().manual_seed(0)
    model = build_model(variant, num_classes=80).to(device).train()
    loss_fn = YOLOv7Loss(80, list(model.arch.strides), image_size=size)
    opt = build_optimizer(model, batch_size=batch)
    images = torch.rand(batch, 3, size, size, generator=g).to(device)
    targets = targets_for(batch, size, 80, g).to(device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps, losses = [], []
    for i in range(warmup + iters):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device, enabled=amp and device == "cuda"):
            out = model(images)
            sync(device)
            t1 = time.perf_counter()
            loss = loss_fn(out, targets, model.detect.anchors).total
            sync(device)
            t2 = time.perf_counter()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            steps.append(time.perf_counter() - t0)
            losses.append(t2 - t1)
    step = statistics.median(steps)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    return {"variant": variant, "size": size, "batch": batch, "device": device, "amp": amp and device == "cuda",
            "images_per_s": round(batch / step, 2), "step_s": round(step, 3),
            "loss_share": round(statistics.median(losses) / step, 3), "peak_mem_mb": round(peak, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description="training throughput")
    p.add_argument("--variants", nargs="+", default=["yolov7-tiny", "yolov7"])
    p.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    args = p.parse_args()
    for variant in args.variants:
        for size in args.sizes:
            print(json.dumps(measure(variant, size, args.batch, args.device, args.amp, args.warmup, args.iters)),
                  flush=True)


if __name__ == "__main__":
    main()
