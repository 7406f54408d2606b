"""Numeric precision and memory format of the network; the loss, the assigner and the EMA stay in fp32.

* ``trainer=cpu`` sets ``precision: ${cpu_precision:}``: ``bf16-mixed`` (autocast to bfloat16) on a
  CPU with native bf16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``) where a
  bf16 convolution step is measurably faster than fp32 (a ~1 s probe, :func:`bf16_speedup`), else
  ``32-true``. Without those instructions bf16 is emulated and several times slower; with
  ``avx512_bf16`` alone it is faster on some CPUs (AMD Zen 4: ~1.7x per training step) and slower on
  others (Intel without AMX). The choice is kept in ``$YOLOV7_CPU_PRECISION`` for the process and
  its children (DDP ranks choose the same). ``trainer.precision=32-true`` or
  ``trainer.precision=bf16-mixed`` forces either.
* Lightning's mixed precision keeps the weights (hence the optimizer and the EMA) in fp32 and runs
  the steps under autocast; :func:`fp32_outputs` hands the loss and the assigner fp32 head maps with
  autocast off, and validation/prediction decode and run NMS in fp32 the same way.
* Channels-last (NHWC) is a memory format, not a different model: the state-dict keys and values
  are the same, so checkpoints, EMA, fusion, export and official weights are unaffected.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..errors import ConfigError
from ..numerics import fp32_outputs, no_autocast, to_memory_format  # noqa: F401  (re-exported)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
ENV = "YOLOV7_CPU_PRECISION"
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


def auto_cpu_precision(cpuinfo: str | Path = CPUINFO) -> str:
    """``bf16-mixed`` where the CPU has native bf16 and bf16 is faster there, else ``32-true``."""
    chosen = os.environ.get(ENV)
    if chosen in ("bf16-mixed", "32-true"):
        return chosen
    chosen = "bf16-mixed" if native_bf16(cpu_flags(cpuinfo)) and bf16_speedup() >= MIN_SPEEDUP else "32-true"
    os.environ[ENV] = chosen  # once per process tree: DDP ranks and later resolutions agree
    return chosen


def keep_resumed_precision(recorded: str | None) -> str | None:
    """A resumed run takes the precision its checkpoint was trained in (``recorded``, kept in the
    checkpoint by the module), so the probe cannot choose another one under another load and the
    resumed run stays exact. Only where ``trainer=cpu`` chooses (``${cpu_precision:}``) and nothing
    has chosen yet in this process tree; returns what is kept, or None."""
    if recorded not in ("bf16-mixed", "32-true"):
        return None
    chosen = os.environ.get(ENV)
    if chosen:
        if chosen != recorded:
            log.warning("the checkpoint was trained in %s but $%s=%s is used: the resumed run is not exact",
                        recorded, ENV, chosen)
        return None
    os.environ[ENV] = recorded
    return recorded


def describe_cpu_precision(precision: str, auto: bool, cpuinfo: str | Path = CPUINFO) -> str:
    """One log line: the precision and why (chosen for this CPU, or set by the user)."""
    if not auto:
        return f"precision {precision} (set in the config)"
    flag = native_bf16(cpu_flags(cpuinfo))
    if not flag:
        why = f"the CPU has none of {', '.join(NATIVE_BF16_FLAGS)}"
    elif precision == "bf16-mixed":
        why = f"the CPU has {flag} and bf16 convolutions measured faster than fp32"
    else:
        why = f"the CPU has {flag} but bf16 convolutions measured no faster than fp32"
    return f"precision {precision} (chosen for this CPU: {why}; trainer.precision=32-true|bf16-mixed forces either)"


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
