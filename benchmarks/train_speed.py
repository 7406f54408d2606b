"""Training throughput by precision, memory format and compilation, against the machine's measured peak.

    python benchmarks/train_speed.py                     # yolov7-tiny, 320, batch 8, CPU: fp32 / bf16 x contiguous / channels-last
    python benchmarks/train_speed.py --compile           # also bf16 (CPU: where native) + channels-last + torch.compile
    python benchmarks/train_speed.py --device cuda --variants yolov7-tiny yolov7 --sizes 640 --batch 32 --compile
    python benchmarks/train_speed.py --width 0.5 --optimizer adamw --sizes 160 --batch 8   # the main job's steps

One JSON line per configuration (read by tools): ``variant``, ``width``, ``optimizer``, ``size``, ``batch``, ``device``,
``precision`` (fp32 | bf16 | fp16: autocast dtype; the weights, loss and assigner stay fp32, as in
training), ``channels_last``, ``compile``, ``s_per_step``, ``images_per_s``, ``achieved_gflops``
(3 x forward GFLOPs per image x images/s: forward + backward), ``peak_gflops`` (the best of a large
GEMM and a large 3x3 convolution in that precision, measured in the same run), ``fraction_of_peak``,
``speedup_vs_fp32`` (s/step of fp32 contiguous, no compile, same variant/size/batch, same run, over
this one's), plus ``loss_share``, ``compile_s`` (first-step time of a compiled configuration) and
``peak_mem_mb``; then one line ``{"peak": ...}`` with the peak measurements.

Full training steps (forward, loss with assignment, backward, SGD step) on random images with 7
boxes each; the configurations take turns step by step (fair on a shared machine), median of
``--iters`` steps after ``--warmup``. Peak memory: max RSS growth on CPU (process-wide, so only the
first configuration's figure is its own), ``max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import dataclass, field

import torch

from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import build_model
from yolov7_lightning.models.summary import count_gflops
from yolov7_lightning.training.optim import build_optimizer
from yolov7_lightning.training.precision import cpu_flags, fp32_outputs, native_bf16, no_autocast

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def targets_for(batch: int, size: int, nc: int, g: torch.Generator) -> torch.Tensor:
    n = batch * 7
    xy = (0.1 + 0.8 * torch.rand(n, 2, generator=g)) * size
    wh = (0.02 + 0.38 * torch.rand(n, 2, generator=g)) * size
    img = torch.arange(batch).repeat_interleave(7)[:, None].float()
    return torch.cat((img, torch.randint(0, nc, (n, 1), generator=g).float(), xy, wh), 1)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_peak(device: str, precision: str) -> dict:
    """Achieved GFLOP/s of a square GEMM and of a 3x3 convolution (channels-last) in ``precision``."""
    dtype = DTYPES[precision]
    n, (b, c, hw) = (8192, (32, 512, 64)) if device == "cuda" else (2048, (8, 256, 40))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    m = torch.randn(n, n, generator=g).to(device, dtype)
    gemm = 2 * n**3 / timed(lambda: torch.mm(a, m), device, 5) / 1e9
    x = torch.randn(b, c, hw, hw, generator=g).to(device, dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, generator=g).to(device, dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv = 2 * b * c * c * 9 * hw * hw / timed(lambda: torch.nn.functional.conv2d(x, w, padding=1), device, 5) / 1e9
    return {"precision": precision, "gemm_gflops": round(gemm, 1), "conv_gflops": round(conv, 1),
            "peak_gflops": round(max(gemm, conv), 1)}


@dataclass
class Config:
    precision: str
    channels_last: bool
    compile: bool
    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    first_step: float = 0.0


class Runner:
    """One model + optimizer + loss for one configuration; ``step()`` runs and times one training step."""

    def __init__(self, cfg: Config, variant: str, size: int, batch: int, device: str, backend: str = "inductor",
                 width: float = 1.0, optimizer: str = "sgd"):
        self.cfg, self.device = cfg, device
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        scaling = {"mode": "none"} if width == 1.0 else {"mode": "width", "width": width}
        model = build_model(variant, num_classes=80, scaling=scaling).to(device).train()
        self.images = torch.rand(batch, 3, size, size, generator=g).to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.model = model
        self.forward = torch.compile(model, backend=backend) if cfg.compile else model
        self.targets = targets_for(batch, size, 80, g).to(device)
        self.loss_fn = YOLOv7Loss(80, model.detect.geometry, image_size=size)
        self.opt = build_optimizer(model, name=optimizer, batch_size=batch)
        self.scaler = torch.amp.GradScaler(device, enabled=cfg.precision == "fp16")

    def step(self, record: bool, split: bool = True) -> float:
        """One training step; returns its seconds. ``split``: the device is also synchronised around the loss
        call, whose time is recorded in ``cfg.losses`` (without: only the whole step is timed)."""
        cfg, device = self.cfg, self.device
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=DTYPES[cfg.precision], enabled=cfg.precision != "fp32"):
            out = self.forward(self.images)
        if split:
            sync(device)
        t1 = time.perf_counter()
        with no_autocast(device):  # the loss and the assigner in fp32, as in training
            loss = self.loss_fn(fp32_outputs(out), self.targets).total
        if split:
            sync(device)
        t2 = time.perf_counter()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        sync(device)
        elapsed = time.perf_counter() - t0
        self.last_loss_s = t2 - t1 if split else None
        if record:
            cfg.steps.append(elapsed)
            if split:
                cfg.losses.append(t2 - t1)
        elif not cfg.first_step:
            cfg.first_step = elapsed
        return elapsed


def configurations(device: str, compile_too: bool, precisions: list[str] | None) -> list[Config]:
    if precisions is None:
        precisions = ["fp32"]
        if device == "cuda":
            precisions += ["bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp16"]
        elif native_bf16(cpu_flags()):
            precisions.append("bf16")
    configs = [Config(p, cl, False) for p in precisions for cl in (False, True)]
    if "fp32" not in precisions:
        configs.insert(0, Config("fp32", False, False))  # the speed-up's reference
    if compile_too:  # the fastest precision (bf16 where there is one), channels-last, compiled
        configs.append(Config("bf16" if "bf16" in precisions else precisions[-1], True, True))
    return configs


def measure(variant: str, size: int, batch: int, device: str, configs: list[Config], peaks: dict,
            warmup: int, iters: int, width: float = 1.0, optimizer: str = "sgd") -> list[dict]:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runners = [Runner(c, variant, size, batch, device, width=width, optimizer=optimizer) for c in configs]
    for i in range(warmup + iters):  # the configurations take turns: a load change hits them all alike
        for r in runners:
            r.step(record=i >= warmup)
    peak_mem = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
                else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    fwd_gflops = count_gflops(runners[0].model, size)
    base = statistics.median(configs[0].steps)
    rows = []
    for c in configs:
        step = statistics.median(c.steps)
        achieved = 3 * fwd_gflops * batch / step
        peak = peaks[c.precision]["peak_gflops"]
        rows.append({"variant": variant, "width": width, "optimizer": optimizer, "size": size, "batch": batch, "device": device, "precision": c.precision,
                     "channels_last": c.channels_last, "compile": c.compile, "s_per_step": round(step, 4),
                     "images_per_s": round(batch / step, 2), "achieved_gflops": round(achieved, 1),
                     "peak_gflops": peak, "fraction_of_peak": round(achieved / peak, 3),
                     "speedup_vs_fp32": round(base / step, 2), "loss_share": round(statistics.median(c.losses) / step, 3),
                     "compile_s": round(c.first_step, 1) if c.compile else None,
                     "forward_gflops_per_image": round(fwd_gflops, 3), "peak_mem_mb": round(peak_mem, 1)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description="training throughput vs the machine's measured peak")
    p.add_argument("--variants", nargs="+", default=["yolov7-tiny"])
    p.add_argument("--sizes", nargs="+", type=int, default=[320])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=None,
                   help="default: fp32 plus bf16 where native (CPU: avx512_bf16/amx_bf16) and fp16 on CUDA")
    p.add_argument("--compile", action="store_true", help="add the fastest precision + channels-last + torch.compile")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--width", type=float, default=1.0, help="width scaling of the network (the main job's: 0.5)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"], help="the main job's: adamw")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    template = configurations(args.device, args.compile, args.precisions)
    peaks = {prec: measure_peak(args.device, prec) for prec in dict.fromkeys(c.precision for c in template)}
    for variant in args.variants:
        for size in args.sizes:
            configs = [Config(c.precision, c.channels_last, c.compile) for c in template]
            for row in measure(variant, size, args.batch, args.device, configs, peaks, args.warmup, args.iters,
                               width=args.width, optimizer=args.optimizer):
                print(json.dumps(row), flush=True)
    print(json.dumps({"peak": list(peaks.values()), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
