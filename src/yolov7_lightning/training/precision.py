"""Numeric precision and memory format of the network; the loss, the assigner and the EMA stay in fp32.

* ``trainer=cpu`` sets ``precision: ${cpu_precision:}``: ``bf16-mixed`` (autocast to bfloat16) on a
  CPU with native bf16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``), else
  ``32-true`` (bf16 without those instructions is emulated and several times slower than fp32).
  ``trainer.precision=32-true`` or ``trainer.precision=bf16-mixed`` forces either.
* Lightning's mixed precision keeps the weights (hence the optimizer and the EMA) in fp32 and runs
  the steps under autocast; :func:`fp32_outputs` hands the loss and the assigner fp32 head maps with
  autocast off, and validation/prediction decode and run NMS in fp32 the same way.
* Channels-last (NHWC) is a memory format, not a different model: the state-dict keys and values
  are the same, so checkpoints, EMA, fusion, export and official weights are unaffected.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from omegaconf import OmegaConf

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


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


def auto_cpu_precision(cpuinfo: str | Path = CPUINFO) -> str:
    """``bf16-mixed`` where the CPU has native bf16, else ``32-true``."""
    return "bf16-mixed" if native_bf16(cpu_flags(cpuinfo)) else "32-true"


def describe_cpu_precision(precision: str, auto: bool, cpuinfo: str | Path = CPUINFO) -> str:
    """One log line: the precision and why (chosen for this CPU, or set by the user)."""
    if not auto:
        return f"precision {precision} (set in the config)"
    flag = native_bf16(cpu_flags(cpuinfo))
    why = f"the CPU has {flag}" if flag else f"the CPU has none of {', '.join(NATIVE_BF16_FLAGS)}"
    return f"precision {precision} (chosen for this CPU: {why}; trainer.precision=32-true|bf16-mixed forces either)"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("cpu_precision"):
        OmegaConf.register_new_resolver("cpu_precision", lambda: auto_cpu_precision(CPUINFO))


def fp32_outputs(outputs):
    """Head outputs (``HeadOutputs`` or a tensor) as fp32 tensors, for the loss, assigner and decoding."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    lead = [t.float() for t in outputs.lead]
    aux = None if outputs.aux is None else [t.float() for t in outputs.aux]
    return type(outputs)(lead, aux)


def no_autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast off for ``device`` (the fp32 parts of a step run inside Lightning's autocast)."""
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda", "xpu", "mps"):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch of images ``[B, C, H, W]`` in channels-last when asked (other tensors untouched)."""
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
