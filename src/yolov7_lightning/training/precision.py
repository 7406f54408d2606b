"""Numeric precision and memory format of the network; the loss, the assigner and the EMA stay in fp32.

* ``trainer=cpu`` sets ``precision: ${cpu_precision:}``, a function of the machine, the same on every
  run: ``32-true`` on a CPU without native bf16 instructions (neither ``avx512_bf16`` nor ``amx_bf16``
  in ``/proc/cpuinfo``: bf16 would be emulated, several times slower; no probe runs). Where the flags
  allow bf16, a ~1 s probe (:func:`bf16_speedup`) measures a bf16 convolution step against fp32 once
  per (CPU model, torch version) and the ratio is cached in ``cpu_precision.json`` of the project's
  cache folder (``$YOLOV7_CACHE``, default ``~/.cache/yolov7_lightning``; written atomically); later
  runs reuse it, so the load of the moment cannot flip the choice. ``bf16-mixed`` when the ratio is
  at least ``MIN_SPEEDUP`` (``avx512_bf16`` alone is faster on some CPUs, AMD Zen 4: ~1.7x per
  training step, and slower on others, Intel without AMX). The choice and its reason are logged and
  recorded in ``metrics.json`` and the loggers' hyper-parameters, and kept in ``$YOLOV7_CPU_PRECISION``
  for the process and its children (DDP ranks choose the same); setting that variable, or
  ``trainer.precision=32-true`` / ``bf16-mixed``, forces either. A resumed run keeps the precision
  its checkpoint trained in.
* Lightning's mixed precision keeps the weights (hence the optimizer and the EMA) in fp32 and runs
  the steps under autocast; :func:`fp32_outputs` hands the loss and the assigner fp32 head maps with
  autocast off, and validation/prediction decode and run NMS in fp32 the same way.
* Channels-last (NHWC) is a memory format, not a different model: the state-dict keys and values
  are the same, so checkpoints, EMA, fusion, export and official weights are unaffected.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..errors import ConfigError
from ..atomic import atomic_write_json
from ..data.shapes import default_cache_dir
from ..numerics import fp32_outputs, no_autocast, to_memory_format  # noqa: F401  (re-exported)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
ENV = "YOLOV7_CPU_PRECISION"
REASON_ENV = "YOLOV7_CPU_PRECISION_REASON"  # "<precision>: <why>", beside ENV for the process tree
CACHE_NAME = "cpu_precision.json"
CPU_PRECISIONS = ("bf16-mixed", "32-true")
log = logging.getLogger(__name__)
MIN_SPEEDUP = 1.15  # bf16 is chosen only when the probe finds it at least this much faster


def cpu_flags(cpuinfo: str | Path = CPUINFO) -> set[str]:
    """The CPU's feature flags (the ``flags`` line of ``/proc/cpuinfo``); empty where it is unreadable."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(flags: set[str]) -> str | None:
    """The first native-bf16 flag the CPU has (``avx512_bf16`` / ``amx_bf16``), or None."""
    return next((f for f in NATIVE_BF16_FLAGS if f in flags), None)


def bf16_speedup(rounds: int = 3) -> float:
    """fp32 time / bf16-autocast time of a training-like convolution step (3x3, 64 channels, 40x40,
    batch 8, channels-last, forward + backward); the two take turns, median of ``rounds``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 40, 40, generator=g).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)

    def step(bf16: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().square().mean().backward()
        return time.perf_counter() - t

    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(rounds + 1):
        for bf16 in (False, True):
            elapsed = step(bf16)
            if i:  # the first round warms up both
                times[bf16].append(elapsed)
    return statistics.median(times[False]) / statistics.median(times[True])


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """The CPU's model name (``model name`` of ``/proc/cpuinfo``; elsewhere the platform's processor)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def cached_bf16_speedup(model: str, cache_dir: str | Path | None = None) -> tuple[float, str]:
    """``(speed-up, where it comes from)``: the probe's result for this CPU model and torch version,
    from the cache file, or measured now and added to it."""
    path = Path(cache_dir or default_cache_dir()) / CACHE_NAME
    key = f"{model} | torch {torch.__version__}"
    entries: dict = {}
    if path.is_file():
        try:
            entries = json.loads(path.read_text())
            if not isinstance(entries, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            log.warning("ignoring the unreadable precision cache %s (%s): probing again", path, e)
            entries = {}
    cached = entries.get(key)
    if isinstance(cached, dict) and isinstance(cached.get("bf16_speedup"), (int, float)):
        return float(cached["bf16_speedup"]), f"measured on this CPU model with this torch, cached in {path}"
    speedup = bf16_speedup()
    entries[key] = {"bf16_speedup": round(speedup, 3), "cpu": model, "torch": torch.__version__}
    try:
        atomic_write_json(entries, path, indent=2)
        where = f"measured now, cached in {path}"
    except OSError as e:
        log.warning("could not cache the bf16 probe in %s (%s): the next run probes again", path, e)
        where = "measured now, not cached"
    return speedup, where


def choose_cpu_precision(cpuinfo: str | Path = CPUINFO, cache_dir: str | Path | None = None) -> tuple[str, str]:
    """``(precision, reason)`` for this machine: fp32 without native bf16 (no probe), else by the
    cached probe of this CPU model and torch version."""
    flag = native_bf16(cpu_flags(cpuinfo))
    if not flag:
        return "32-true", f"the CPU has none of {', '.join(NATIVE_BF16_FLAGS)}: bf16 would be emulated"
    speedup, where = cached_bf16_speedup(cpu_model(cpuinfo), cache_dir)
    chosen = "bf16-mixed" if speedup >= MIN_SPEEDUP else "32-true"
    verdict = "faster" if chosen == "bf16-mixed" else "not enough faster"
    return chosen, (f"the CPU has {flag} and bf16 convolutions are {verdict} than fp32: {speedup:.2f}x, "
                    f"needed {MIN_SPEEDUP}x; {where}")


def auto_cpu_precision(cpuinfo: str | Path = CPUINFO) -> str:
    """The precision of ``trainer=cpu`` (:func:`choose_cpu_precision`), once per process tree."""
    chosen = os.environ.get(ENV)
    if chosen in CPU_PRECISIONS:
        return chosen
    chosen, reason = choose_cpu_precision(cpuinfo)
    os.environ[ENV] = chosen  # once per process tree: DDP ranks and later resolutions agree
    os.environ[REASON_ENV] = f"{chosen}: {reason}"
    return chosen


def keep_resumed_precision(recorded: str | None) -> str | None:
    """A resumed run takes the precision its checkpoint was trained in (``recorded``, kept in the
    checkpoint by the module), so the run stays exact even where this machine would choose another.
    Only where ``trainer=cpu`` chooses (``${cpu_precision:}``) and nothing has chosen yet in this
    process tree; returns what is kept, or None."""
    if recorded not in CPU_PRECISIONS:
        return None
    chosen = os.environ.get(ENV)
    if chosen:
        if chosen != recorded:
            log.warning("the checkpoint was trained in %s but $%s=%s is used: the resumed run is not exact",
                        recorded, ENV, chosen)
        return None
    os.environ[ENV] = recorded
    os.environ[REASON_ENV] = f"{recorded}: kept from the checkpoint being resumed: the run stays exact"
    return recorded


def cpu_precision_reason(precision: str, auto: bool) -> str:
    """Why a CPU run trains in ``precision``: set in the config, set in ``$YOLOV7_CPU_PRECISION``,
    kept from a resumed checkpoint, or chosen for this CPU (and on what grounds)."""
    if not auto:
        return "set in the config"
    recorded = os.environ.get(REASON_ENV, "")
    chosen, _, why = recorded.partition(": ")
    if chosen == precision and why:
        if why.startswith("kept from"):
            return why
        return f"chosen for this CPU: {why}; trainer.precision=32-true|bf16-mixed forces either"
    return f"${ENV}={precision} set in the environment"


def describe_cpu_precision(precision: str, auto: bool) -> str:
    """One log line: the precision and why."""
    return f"precision {precision} ({cpu_precision_reason(precision, auto)})"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("cpu_precision"):
        OmegaConf.register_new_resolver("cpu_precision", lambda: auto_cpu_precision(CPUINFO))


def compile_backend(setting: bool | str | None) -> str | None:
    """The ``compile`` option: false/None (no compilation), true (``inductor``, generated kernels) or
    a ``torch.compile`` backend by name (``aot_eager``, ``eager``: the graph capture without code
    generation, to check that a model compiles or to find which part breaks). An unknown name stops
    the run at its start, naming the valid ones."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return "inductor"
    import torch._dynamo

    valid = torch._dynamo.list_backends(exclude_tags=())
    if str(setting) not in valid:
        raise ConfigError(f"compile={setting!r}: not a torch.compile backend; valid: true, false, {', '.join(valid)}")
    return str(setting)
