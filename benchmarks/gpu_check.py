"""One prepared check of the GPU paths: the CUDA tests, the main job on the GPU, one DDP (nccl) epoch, training
throughput against the GPU's measured peak, fused inference latency. One JSON file and a short Markdown table.

    python benchmarks/gpu_check.py                                 # on a CUDA machine: ~7-8 min on one H100
    python benchmarks/gpu_check.py --device cpu --out /tmp/c.json  # tiny sizes: every step's code on the CPU (~1 min)
    python benchmarks/gpu_check.py --skip main_job ddp             # leave steps out (recorded as skipped)
    python benchmarks/gpu_check.py --compile-variants yolov7-tiny  # torch.compile for the small model only

Steps (each timed; a failure is recorded with its error and the next step runs; the exit status is 1 when any
step failed):

1. ``cuda_tests``: ``pytest -m cuda`` in a subprocess (the device-parametrised tests; on a GPU a skipped cuda case
   is a failure: it should have run).
2. ``main_job``: ``yolov7-train trainer=gpu`` (the main job, ``data.pin_memory=true``) in a temporary run folder:
   mAP@.5, mAP@.5:.95 and wall time beside the CPU figures (``CPU_MAIN_JOB``).
3. ``ddp``: ``yolov7-train trainer=ddp trainer.devices=1`` (nccl, fp16 AMP, one rank), one short epoch.
4. ``throughput``: ``benchmarks/train_speed.py``'s training steps for yolov7-tiny and yolov7 at 640 (batch 32,
   halved until a step fits), fp32 / fp16 AMP / bf16 AMP, contiguous and channels-last, and the fastest AMP
   precision with channels-last through ``torch.compile``: images/s, fraction of the measured peak (a large GEMM
   and a large convolution in the same precision, same run), peak memory, the share of a step spent in the
   assigner + loss (a separate pass that synchronises around the loss call) and the share spent waiting for data
   (a real DataLoader over the shapes data, the default workers, feeding the fastest uncompiled configuration).
5. ``inference``: the fused (deploy) network, batch 1 and 32, PyTorch fp16 and ONNX Runtime (CUDA provider;
   ``unavailable`` when ONNX Runtime has none).

``--device cpu`` runs the same steps at tiny sizes (yolov7-tiny at 64 px, batch 2, fp32 plus bf16 where the CPU
has it natively, ``torch.compile`` with the ``eager`` backend, a 1-epoch main job of 2 batches, DDP as
``trainer=ddp_cpu trainer.devices=1`` over gloo, one intra-op thread everywhere): the test suite runs it so that
the script cannot rot between GPU runs. Its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks (train_speed)
import train_speed  # noqa: E402

from yolov7_lightning.atomic import atomic_write, atomic_write_json  # noqa: E402
from yolov7_lightning.numerics import to_memory_format  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STEPS = ("cuda_tests", "main_job", "ddp", "throughput", "inference")
SCHEMA = 1

# The main job on the CPU, from README.md ("The main job", the default fp32 + channels-last, `yolov7-train` with no
# arguments on an idle 2-core Intel Xeon with AVX-512): the figures the GPU's main job is set beside.
CPU_MAIN_JOB = {"source": "docs/benchmarks.md, the main job (fp32 + channels-last, idle 2-core Intel Xeon with AVX-512)",
                "map50": 0.927, "map": 0.527, "wall_s": 1 * 60 + 42}

# Targets the GPU run is reported against (docs/gpu.md).
TARGETS = {"amp_speedup_min": 2.0, "loss_share_max": 0.10, "data_wait_share_max": 0.05, "fraction_of_peak_min": 0.30}


# ---- settings per mode -------------------------------------------------------------------------------------------
def settings(device: str) -> dict:
    """What each step runs: the GPU's sizes, or tiny CPU sizes that exercise the same code."""
    if device == "cuda":
        return {
            "pytest": ["-m", "cuda"],
            "main_job": ["trainer=gpu", "data.pin_memory=true"],
            "ddp": ["trainer=ddp", "trainer.devices=1", "schedule.epochs=1", "+trainer.limit_train_batches=30",
                    "+trainer.limit_val_batches=2", "data.pin_memory=true", "export.enabled=false",
                    "visuals.enabled=false"],
            "job_timeout": 420, "ddp_timeout": 240, "tests_timeout": 300,
            "variants": ["yolov7-tiny", "yolov7"], "size": 640, "batch": 32, "compile_backend": "inductor",
            "precisions": ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else []),
            "warmup": 3, "iters": 8, "loss_iters": 5, "data_steps": 30, "data_source": [],
            "infer_batches": [1, 32], "infer_size": 640, "infer_half": True, "infer_iters": 20,
            "ort_provider": "CUDAExecutionProvider",
        }
    tiny_data = ["data.source.num_train=8", "data.source.num_val=4", "data.source.image_size=64"]
    tiny_job = [*tiny_data, "data.img_size=64", "data.batch_size=4", "data.num_workers=0", "schedule.epochs=1",
                "schedule.warmup_epochs=0", "schedule.warmup_min_iters=0", "optim.nominal_batch=4",
                "+trainer.limit_train_batches=2", "export.enabled=false", "visuals.enabled=false",
                "trainer.precision=32-true"]
    return {
        "pytest": ["-m", "cuda", "tests/unit/cuda/test_device_parity.py", "-k", "nms and cpu"],
        "main_job": ["trainer=cpu", *tiny_job],
        "ddp": ["trainer=ddp_cpu", "trainer.devices=1", *tiny_job],
        "job_timeout": 300, "ddp_timeout": 300, "tests_timeout": 300,
        "variants": ["yolov7-tiny"], "size": 64, "batch": 2, "compile_backend": "eager",
        "precisions": ["fp32"] + (["bf16"] if train_speed.native_bf16(train_speed.cpu_flags()) else []),
        "warmup": 1, "iters": 2, "loss_iters": 2, "data_steps": 3, "data_source": tiny_data,
        "infer_batches": [1, 2], "infer_size": 64, "infer_half": False, "infer_iters": 2,
        "ort_provider": "CPUExecutionProvider",
    }


def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "host": platform.node(), "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), capability=f"{props.major}.{props.minor}",
                    memory_gb=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    else:
        info["name"] = f"cpu {info['cpu']}"
    return info


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


# ---- steps ---------------------------------------------------------------------------------------------------------
def run_command(cmd: list[str], timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    if torch.get_num_threads() == 1:  # --device cpu: the child processes on one intra-op thread too
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def step_cuda_tests(device: str, cfg: dict, work: Path) -> dict:
    junit = work / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *cfg["pytest"]]
    proc = run_command(cmd, cfg["tests_timeout"])
    if not junit.is_file():
        raise StepError(f"pytest exit status {proc.returncode}, no report: {tail(proc.stdout + proc.stderr, 25)}",
                        {"command": " ".join(cmd[1:]), "returncode": proc.returncode})
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    result = {**counts, "command": " ".join(cmd[1:]), "returncode": proc.returncode}
    if proc.returncode != 0:
        raise StepError(f"pytest exit status {proc.returncode}: {tail(proc.stdout, 25)}", result)
    if counts["passed"] == 0:
        raise StepError("no test ran", result)
    if device == "cuda" and counts["skipped"]:
        raise StepError(f"{counts['skipped']} cuda test(s) skipped on a CUDA machine", result)
    return result


def train_job(overrides: list[str], run_dir: Path, data_root: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "yolov7_lightning.cli.train", f"hydra.run.dir={run_dir}",
           f"data.source.root={data_root}", *overrides]
    start = time.perf_counter()
    proc = run_command(cmd, timeout)
    wall = time.perf_counter() - start
    result = {"command": "yolov7-train " + " ".join(cmd[3:]), "returncode": proc.returncode, "wall_s": round(wall, 1)}
    if proc.returncode != 0:
        raise StepError(f"exit status {proc.returncode}: {tail(proc.stderr or proc.stdout)}", result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result.update(map50=metrics["map50"], map=metrics["map"], train_s=metrics["train_seconds"],
                  epochs=metrics["epochs"], nonfinite_skipped=metrics["nonfinite_skipped"])
    return result


def step_main_job(device: str, cfg: dict, work: Path) -> dict:
    result = train_job(cfg["main_job"], work / "main_job", work / "shapes", cfg["job_timeout"])
    result["cpu_reference"] = CPU_MAIN_JOB
    result["speedup_vs_cpu"] = round(CPU_MAIN_JOB["wall_s"] / result["wall_s"], 2)
    return result


def step_ddp(device: str, cfg: dict, work: Path) -> dict:
    result = train_job(cfg["ddp"], work / "ddp", work / "shapes", cfg["ddp_timeout"])
    result["backend"] = "nccl" if device == "cuda" else "gloo"
    return result


def fitting_batch(variant: str, size: int, batch: int, device: str) -> int:
    """``batch``, halved until one fp32 contiguous training step (the most memory) fits on the device."""
    while True:
        fits = True
        try:
            train_speed.Runner(train_speed.Config("fp32", False, False), variant, size, batch, device).step(record=False)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            fits = False  # the runner and the exception's frames are gone once out of this block
        if device == "cuda":
            torch.cuda.empty_cache()
        if fits:
            return batch
        batch //= 2


def resident_bytes(runner: train_speed.Runner) -> int:
    """Bytes a configuration keeps between steps: weights, buffers, optimizer state, its batch."""
    tensors = [*runner.model.parameters(), *runner.model.buffers(), runner.images, runner.targets]
    tensors += [v for state in runner.opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def shapes_loader(cfg: dict, work: Path, batch: int, size: int, pin_memory: bool):
    """The training DataLoader of the shapes data (default workers and augmentation) at ``size``, ``batch``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from yolov7_lightning.cli.paths import CONFIG_DIR
    from yolov7_lightning.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        c = compose("train", [f"data.source.root={work / 'shapes'}", *cfg["data_source"], f"data.img_size={size}",
                              f"data.batch_size={batch}", f"data.pin_memory={pin_memory}"])
    GlobalHydra.instance().clear()
    datamodule = instantiate(c.data, augment=c.augment, stride=32, seed=0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.train_dataloader(), int(c.data.num_workers)


def data_wait(runner: train_speed.Runner, loader, steps: int, device: str) -> dict:
    """Training steps fed by ``loader``: the share of the time spent waiting in ``next()``."""
    it = iter(loader)
    waits, totals = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        images = batch["images"].to(device, non_blocking=True)
        runner.images = to_memory_format(images, runner.cfg.channels_last)
        runner.targets = batch["targets"].to(device, non_blocking=True)
        runner.step(record=False, split=False)
        if i:  # the first batch waits for the workers to start
            waits.append(t1 - t0)
            totals.append(time.perf_counter() - t0)
    return {"steps": steps, "wait_s_per_step": round(statistics.mean(waits), 4),
            "step_s_with_data": round(statistics.mean(totals), 4),
            "data_wait_share": round(sum(waits) / sum(totals), 3)}


def step_throughput(device: str, cfg: dict, work: Path) -> dict:
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    precisions = cfg["precisions"]
    peaks = {p: train_speed.measure_peak(device, p) for p in precisions}
    amp = [p for p in precisions if p != "fp32"]
    fastest = "bf16" if "bf16" in amp else (amp[-1] if amp else "fp32")
    rows, data_rows, skipped = [], [], []
    for variant in cfg["variants"]:
        size = cfg["size"]
        batch = fitting_batch(variant, size, cfg["batch"], device)
        configs = [train_speed.Config(p, cl, False) for p in precisions for cl in (False, True)]
        if variant in cfg["compile_variants"]:
            configs.append(train_speed.Config(fastest, True, True))
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        runners, mem = [], {}
        for c in configs:  # warm-up (and compilation), then each configuration's own peak memory
            try:
                r = train_speed.Runner(c, variant, size, batch, device, backend=cfg["compile_backend"])
                t = time.perf_counter()
                for _ in range(cfg["warmup"]):
                    r.step(record=False, split=False)
                r.cfg.first_step = time.perf_counter() - t
                if device == "cuda":  # this configuration's own: its resident state + what a step adds to it
                    torch.cuda.synchronize()
                    before = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                    r.step(record=False, split=False)
                    mem[id(r)] = (torch.cuda.max_memory_allocated() - before + resident_bytes(r)) / 2**20
                runners.append(r)
            except Exception as e:  # out of memory, or compilation (no Triton / compiler): left out, the rest measured
                if not (isinstance(e, torch.cuda.OutOfMemoryError) or c.compile):
                    raise
                r = None
                if device == "cuda":
                    torch.cuda.empty_cache()
                skipped.append({"variant": variant, "batch": batch, "precision": c.precision,
                                "channels_last": c.channels_last, "compile": c.compile,
                                "reason": f"{type(e).__name__}: {str(e).strip()[:300]}"})
        for _ in range(cfg["iters"]):  # throughput: no synchronisation inside a step; configurations take turns
            for r in runners:
                r.step(record=True, split=False)
        synced = {id(r): [] for r in runners}
        for _ in range(cfg["loss_iters"]):  # the separate pass: synchronised around the loss call
            for r in runners:
                synced[id(r)].append(r.step(record=False, split=True))
                r.cfg.losses.append(r.last_loss_s)
        fwd_gflops = train_speed.count_gflops(runners[0].model, size)
        base = statistics.median(runners[0].cfg.steps)  # fp32 contiguous (it fits: fitting_batch)
        for r in runners:
            c = r.cfg
            step = statistics.median(c.steps)
            achieved = 3 * fwd_gflops * batch / step
            peak = peaks[c.precision]["peak_gflops"]
            rows.append({"variant": variant, "size": size, "batch": batch, "precision": c.precision,
                         "channels_last": c.channels_last, "compile": cfg["compile_backend"] if c.compile else False,
                         "s_per_step": round(step, 5), "images_per_s": round(batch / step, 2),
                         "speedup_vs_fp32": round(base / step, 2), "achieved_gflops": round(achieved, 1),
                         "peak_gflops": peak, "fraction_of_peak": round(achieved / peak, 3),
                         "loss_share": round(statistics.median(c.losses) / statistics.median(synced[id(r)]), 3),
                         "warmup_s": round(c.first_step, 1),
                         "peak_mem_mb": round(mem[id(r)], 1) if id(r) in mem else None,
                         "resident_mb": round(resident_bytes(r) / 2**20, 1),
                         "forward_gflops_per_image": round(fwd_gflops, 3)})
        plain = [r for r in runners if not r.cfg.compile]
        fastest_runner = min(plain, key=lambda r: statistics.median(r.cfg.steps))
        loader, workers = shapes_loader(cfg, work, batch, size, pin_memory=device == "cuda")
        data = data_wait(fastest_runner, loader, cfg["data_steps"], device)
        data_rows.append({"variant": variant, "size": size, "batch": batch, "num_workers": workers,
                          "precision": fastest_runner.cfg.precision, "channels_last": fastest_runner.cfg.channels_last,
                          **data})
        runners = plain = fastest_runner = loader = r = None  # free the device memory before the next variant
        if device == "cuda":
            torch.cuda.empty_cache()
    return {"peaks": list(peaks.values()), "rows": rows, "data": data_rows, "left_out": skipped}


def latency_ms(fn, device: str, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        train_speed.sync(device)
        t = time.perf_counter()
        fn()
        train_speed.sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def step_inference(device: str, cfg: dict, work: Path) -> dict:
    import onnxruntime as ort

    from yolov7_lightning.export import export_onnx, onnx_session
    from yolov7_lightning.models import build_model
    from yolov7_lightning.models.fuse import to_deploy

    provider = cfg["ort_provider"]
    have_provider = provider in ort.get_available_providers()
    dtype = torch.float16 if cfg["infer_half"] else torch.float32
    rows = []
    for variant in cfg["variants"]:
        deploy = to_deploy(build_model(variant).eval()).to(device, dtype).to(memory_format=torch.channels_last)
        onnx_path = work / f"{variant}.onnx"
        if have_provider:
            example = torch.rand(1, 3, cfg["infer_size"], cfg["infer_size"])
            export_onnx(to_deploy(build_model(variant).eval()), onnx_path, example, dynamic_batch=True,
                        half=cfg["infer_half"])
            session = onnx_session(onnx_path, providers=(provider,))
        for batch in cfg["infer_batches"]:
            x = torch.rand(batch, 3, cfg["infer_size"], cfg["infer_size"])
            xd = x.to(device, dtype).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                torch_ms = latency_ms(lambda: deploy(xd), device, 3, cfg["infer_iters"])
            row = {"variant": variant, "size": cfg["infer_size"], "batch": batch,
                   "torch_dtype": str(dtype).replace("torch.", ""), "torch_ms": round(torch_ms, 2),
                   "torch_images_per_s": round(batch * 1e3 / torch_ms, 1)}
            if have_provider:
                feed = {"images": x.numpy()}
                ort_ms = latency_ms(lambda: session.run(None, feed), "cpu", 3, cfg["infer_iters"])
                row.update(onnxruntime=provider, onnxruntime_ms=round(ort_ms, 2))  # host arrays in and out
            else:
                row.update(onnxruntime="unavailable", onnxruntime_ms=None,
                           onnxruntime_note=f"onnxruntime {ort.__version__} has no {provider} "
                                            f"(available: {', '.join(ort.get_available_providers())})")
            rows.append(row)
        del deploy
    return {"rows": rows}


class StepError(RuntimeError):
    """A step's failure with what it measured before failing."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def run_step(name: str, fn, device: str, cfg: dict, work: Path) -> dict:
    print(f"[gpu_check] {name} ...", flush=True)
    start = time.perf_counter()
    record = {"status": "ok", "seconds": 0.0, "error": None, "result": None}
    try:
        record["result"] = fn(device, cfg, work)
    except Exception as e:  # noqa: BLE001  (recorded; the next step runs)
        record.update(status="failed", error=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc(limit=8), result=getattr(e, "result", None))
    record["seconds"] = round(time.perf_counter() - start, 1)
    print(f"[gpu_check] {name}: {record['status']} in {record['seconds']} s"
          + (f": {record['error'].splitlines()[0]}" if record["error"] else ""), flush=True)
    return record


# ---- targets and table ---------------------------------------------------------------------------------------------
def targets(steps: dict) -> list[dict]:
    """The figures the docs name as targets, from the throughput step's largest variant."""
    thr = steps.get("throughput", {}).get("result") or {}
    rows, data = thr.get("rows") or [], thr.get("data") or []
    out = []
    if rows:
        variant = rows[-1]["variant"]
        mine = [r for r in rows if r["variant"] == variant and not r["compile"]]
        amp = [r["speedup_vs_fp32"] for r in mine if r["precision"] != "fp32"]
        best = max(mine, key=lambda r: r["images_per_s"])
        out += [
            {"target": f"AMP training >= {TARGETS['amp_speedup_min']}x fp32 ({variant})",
             "value": max(amp) if amp else None, "met": (max(amp) >= TARGETS["amp_speedup_min"]) if amp else None},
            {"target": f"assigner + loss < {TARGETS['loss_share_max']:.0%} of a step ({variant}, fastest)",
             "value": best["loss_share"], "met": best["loss_share"] < TARGETS["loss_share_max"]},
            {"target": f"fraction of peak >= {TARGETS['fraction_of_peak_min']:.0%} ({variant}, fastest)",
             "value": best["fraction_of_peak"], "met": best["fraction_of_peak"] >= TARGETS["fraction_of_peak_min"]},
        ]
    for d in data:
        out.append({"target": f"data wait < {TARGETS['data_wait_share_max']:.0%} of a step ({d['variant']}, "
                              f"{d['num_workers']} workers)",
                    "value": d["data_wait_share"], "met": d["data_wait_share"] < TARGETS["data_wait_share_max"]})
    return out


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def table(report: dict) -> str:
    lines = [f"## gpu_check: {report['device']['name']} ({report['mode']}), {report['total_s']} s", "",
             "| step | status | seconds | figures |", "|---|---|---|---|"]
    for name, rec in report["steps"].items():
        r = rec.get("result") or {}
        if rec["status"] == "skipped":
            figures = rec.get("error") or ""
        elif name == "cuda_tests":
            figures = f"{r.get('passed')} passed, {r.get('failures', 0) + r.get('errors', 0)} failed, " \
                      f"{r.get('skipped')} skipped" if r else ""
        elif name in ("main_job", "ddp") and r.get("map50") is not None:
            figures = f"mAP@.5 {r['map50']:.3f}, mAP@.5:.95 {r['map']:.3f}, {r['wall_s']} s wall"
            if name == "main_job":
                c = r["cpu_reference"]
                figures += f" (CPU: {c['map50']}, {c['map']}, {c['wall_s']} s)"
        elif name == "throughput" and r:
            figures = f"{len(r['rows'])} configurations (below)"
        elif name == "inference" and r:
            figures = "; ".join(f"{x['variant']} b{x['batch']}: {x['torch_ms']} ms torch {x['torch_dtype']}, "
                                f"ORT {fmt(x['onnxruntime_ms'])}" for x in r["rows"])
        else:
            figures = ""
        if rec["status"] == "failed":
            figures = (figures + " " if figures else "") + f"error: {rec['error'].splitlines()[0][:160]}"
        lines.append(f"| {name} | {rec['status']} | {rec['seconds']} | {figures} |")
    thr = report["steps"].get("throughput", {}).get("result") or {}
    if thr.get("rows"):
        lines += ["", "| variant | batch | precision | channels-last | compile | images/s | x fp32 | of peak "
                      "| loss share | peak MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
        for x in thr["rows"]:
            lines.append(f"| {x['variant']} | {x['batch']} | {x['precision']} | {x['channels_last']} | {x['compile']} "
                         f"| {fmt(x['images_per_s'])} | {x['speedup_vs_fp32']} | {fmt(x['fraction_of_peak'])} "
                         f"| {fmt(x['loss_share'])} | {fmt(x['peak_mem_mb'])} |")
        for d in thr.get("data", []):
            lines.append(f"\ndata: {d['variant']} batch {d['batch']}, {d['num_workers']} workers: "
                         f"{d['data_wait_share']:.1%} of a step waiting for the DataLoader")
    if report["targets"]:
        lines += ["", "| target | value | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {fmt(t['value'])} | {fmt(t['met'])} |" for t in report["targets"]]
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------------------------
STEP_FUNCTIONS = {"cuda_tests": step_cuda_tests, "main_job": step_main_job, "ddp": step_ddp,
                  "throughput": step_throughput, "inference": step_inference}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--out", type=Path, default=None,
                   help="the JSON file (default: benchmarks/results/gpu_check_<device name>.json); the table goes "
                        "beside it (.md)")
    p.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    p.add_argument("--work", type=Path, default=None, help="folder for the runs and data (default: a temporary one)")
    p.add_argument("--compile-variants", nargs="*", default=None,
                   help="the variants whose training step is also measured through torch.compile (default: all; "
                        "compiling yolov7 takes a minute or two)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device visible to torch (--device cpu runs the tiny CPU check)",
              file=sys.stderr)
        return 1
    info = device_info(args.device)
    out = args.out or REPO / "benchmarks" / "results" / f"gpu_check_{slug(info['name'])}.json"
    cfg = settings(args.device)
    cfg["compile_variants"] = cfg["variants"] if args.compile_variants is None else args.compile_variants
    if args.device == "cpu":  # on a loaded machine two threads wait for each other (50x slower at load 14)
        torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        steps = {}
        for name in STEPS:
            if name in args.skip:
                steps[name] = {"status": "skipped", "seconds": 0.0, "error": "--skip", "result": None}
            else:
                steps[name] = run_step(name, STEP_FUNCTIONS[name], args.device, cfg, work)
    report = {"schema": SCHEMA, "mode": args.device, "device": info,
              "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
              "total_s": round(time.perf_counter() - started, 1), "steps": steps, "targets": targets(steps)}
    atomic_write_json(report, out, indent=2)
    text = table(report)
    atomic_write(out.with_suffix(".md"), lambda f: f.write(text + "\n"), binary=False)  # the table, to commit beside
    print(text)
    print(f"\nwritten: {out} and {out.with_suffix('.md').name}")
    return 1 if any(s["status"] == "failed" for s in steps.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
