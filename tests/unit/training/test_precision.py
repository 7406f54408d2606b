"""Precision choice (bf16 where the CPU has it), fp32 loss/assigner under autocast, channels-last
leaving the weights, checkpoints and the official import as they were."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.unit.models.test_official_weights import assert_loaded, random_official, save_official
from yolov7_lightning.cli.paths import CONFIG_DIR
from yolov7_lightning.config import register_configs
from yolov7_lightning.models import build_model
from yolov7_lightning.models.checkpoint_reader import load_official_weights
from yolov7_lightning.training import precision
from yolov7_lightning.training.module import YOLOv7Module

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: {model}
flags\t\t: fpu vme sse sse2 avx2 avx512f {extra} avx512vl
bogomips\t: 4900.00
"""


def cpuinfo_text(extra: str, model: str = "AMD EPYC 9654 96-Core Processor") -> str:
    return CPUINFO.format(extra=extra, model=model)


@pytest.fixture
def probe(monkeypatch, tmp_path):
    """No choice in the environment, an empty cache folder; the bf16 probe replaced by a given
    speed-up (its calls counted in the one list returned by every use)."""
    for name in (precision.ENV, precision.REASON_ENV):
        monkeypatch.setenv(name, "")  # recorded, so that the choice written by the code is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("YOLOV7_CACHE", str(tmp_path / "cache"))
    calls = []

    def use(speedup: float) -> list:
        monkeypatch.setattr(precision, "bf16_speedup", lambda: calls.append(speedup) or speedup)
        return calls
    return use


@pytest.mark.parametrize("extra, speedup, expected", [
    ("avx512_bf16", 1.7, "bf16-mixed"), ("amx_bf16 amx_tile", 3.0, "bf16-mixed"),
    ("avx512_bf16", 0.7, "32-true"),  # native bf16 that is slower than fp32 (Intel without AMX)
    ("avx512bw", 5.0, "32-true"),  # no native bf16: not even probed
])
def test_precision_follows_the_cpu_flags_and_the_probe(tmp_path, probe, extra, speedup, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra=extra))
    calls = probe(speedup)
    assert precision.auto_cpu_precision(info) == expected
    assert len(calls) == (0 if extra == "avx512bw" else 1)
    assert precision.auto_cpu_precision(info) == expected and len(calls) <= 1  # kept for the process (and DDP ranks)
    assert precision.os.environ[precision.ENV] == expected


def test_bf16_probe_measures_a_ratio():
    assert 0.05 < precision.bf16_speedup(rounds=1) < 20


@pytest.mark.parametrize("extra, expected", [("avx512_bf16", "bf16-mixed"), ("avx512bw", "32-true")])
def test_cpu_trainer_config_chooses_the_precision(tmp_path, monkeypatch, probe, extra, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra=extra))
    monkeypatch.setattr(precision, "CPUINFO", info)
    probe(2.0)
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        assert compose("train").trainer.precision == expected  # trainer=cpu, the default
        assert compose("train", ["trainer=ddp_cpu"]).trainer.precision == "32-true"  # ranks must agree: no probe
        assert compose("train", ["trainer.precision=32-true"]).trainer.precision == "32-true"  # forced
        assert compose("train", ["trainer=gpu"]).trainer.precision == "16-mixed"
    line = precision.describe_cpu_precision(expected, auto=True)
    assert line.startswith(f"precision {expected} (chosen for this CPU: the CPU has ")
    assert ("has avx512_bf16 and bf16 convolutions are faster than fp32: 2.00x" in line) == (expected == "bf16-mixed")
    assert "(set in the config)" in precision.describe_cpu_precision("32-true", auto=False)


def test_a_resumed_run_keeps_its_checkpoints_precision(tmp_path, probe, caplog):
    calls = probe(0.5)  # the probe would choose fp32 now
    assert precision.keep_resumed_precision("bf16-mixed") == "bf16-mixed"
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra="avx512_bf16"))
    assert precision.auto_cpu_precision(info) == "bf16-mixed" and calls == []  # kept: no probe
    with caplog.at_level("WARNING"):
        assert precision.keep_resumed_precision("32-true") is None  # chosen already in this process tree
    assert "trained in 32-true but $YOLOV7_CPU_PRECISION=bf16-mixed is used" in caplog.text  # said, not silent
    assert precision.os.environ[precision.ENV] == "bf16-mixed"


@pytest.mark.parametrize("recorded", [None, "16-mixed", "64-true"])
def test_only_a_cpu_precision_is_kept(probe, recorded):
    probe(2.0)
    assert precision.keep_resumed_precision(recorded) is None and not precision.os.environ.get(precision.ENV)


def test_unreadable_cpuinfo_means_fp32(tmp_path, probe):
    probe(2.0)
    assert precision.auto_cpu_precision(tmp_path / "missing") == "32-true"


def choose_in_a_new_process_tree(monkeypatch, info):
    """What a later run (a new process tree, nothing in its environment) chooses on ``info``."""
    for name in (precision.ENV, precision.REASON_ENV):
        monkeypatch.delenv(name, raising=False)
    return precision.auto_cpu_precision(info)


def test_without_native_bf16_fp32_is_chosen_without_a_probe(tmp_path, monkeypatch, probe):
    calls = probe(5.0)  # even a probe that would find bf16 5x faster is not run
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra="avx512f avx512bw avx512_vnni"))  # AVX-512, no bf16 (the CI machine)
    for _ in range(2):
        assert choose_in_a_new_process_tree(monkeypatch, info) == "32-true"
    assert calls == [] and not (tmp_path / "cache").exists()
    assert "the CPU has none of avx512_bf16, amx_bf16" in precision.describe_cpu_precision("32-true", auto=True)


def test_the_probe_runs_once_per_cpu_model_and_torch_version(tmp_path, monkeypatch, probe):
    calls = probe(1.7)
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra="avx512_bf16"))
    assert choose_in_a_new_process_tree(monkeypatch, info) == "bf16-mixed" and len(calls) == 1
    cache = tmp_path / "cache" / precision.CACHE_NAME
    key = f"AMD EPYC 9654 96-Core Processor | torch {torch.__version__}"
    assert json.loads(cache.read_text())[key]["bf16_speedup"] == 1.7
    assert "measured now, cached in" in precision.describe_cpu_precision("bf16-mixed", auto=True)
    probe(0.5)  # the machine is loaded now: a new probe would choose fp32
    for _ in range(2):  # later runs reuse the cached result: the same precision, no probe
        assert choose_in_a_new_process_tree(monkeypatch, info) == "bf16-mixed"
    assert calls == [1.7]
    assert f"1.70x, needed {precision.MIN_SPEEDUP}x; measured on this CPU model with this torch, cached in {cache}" \
        in precision.describe_cpu_precision("bf16-mixed", auto=True)
    info.write_text(cpuinfo_text(extra="avx512_bf16", model="Intel(R) Xeon(R) Platinum 8488C"))  # another CPU model
    probe(0.8)
    assert choose_in_a_new_process_tree(monkeypatch, info) == "32-true" and calls == [1.7, 0.8]
    monkeypatch.setattr(precision.torch, "__version__", "9.9.9")  # the first model again, another torch
    info.write_text(cpuinfo_text(extra="avx512_bf16"))
    probe(0.9)
    assert choose_in_a_new_process_tree(monkeypatch, info) == "32-true" and calls == [1.7, 0.8, 0.9]
    assert len(json.loads(cache.read_text())) == 3  # one entry per (CPU model, torch version)
    assert not list(cache.parent.glob("*.tmp"))  # written atomically


def test_an_unreadable_cache_is_probed_again(tmp_path, monkeypatch, probe, caplog):
    calls = probe(2.0)
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo_text(extra="amx_bf16"))
    cache = tmp_path / "cache" / precision.CACHE_NAME
    cache.parent.mkdir(parents=True)
    cache.write_text("{truncated")
    with caplog.at_level("WARNING"):
        assert choose_in_a_new_process_tree(monkeypatch, info) == "bf16-mixed"
    assert calls == [2.0] and "ignoring the unreadable precision cache" in caplog.text
    assert list(json.loads(cache.read_text()).values())[0]["bf16_speedup"] == 2.0


def test_a_precision_set_in_the_environment_says_so(monkeypatch, probe):
    calls = probe(2.0)
    monkeypatch.setenv(precision.ENV, "32-true")
    assert precision.auto_cpu_precision() == "32-true" and calls == []
    assert precision.describe_cpu_precision("32-true", auto=True) == \
        "precision 32-true ($YOLOV7_CPU_PRECISION=32-true set in the environment)"


def module(channels_last: bool) -> YOLOv7Module:
    torch.manual_seed(0)
    return YOLOv7Module(model={"_target_": "yolov7_lightning.models.build_model", "variant": "yolov7-tiny",
                               "num_classes": 3},
                        loss={"_target_": "yolov7_lightning.loss.YOLOv7Loss", "_partial_": True},
                        assigner={"_target_": "yolov7_lightning.assign.Assigner", "strategy": "lead_only"}, optim={}, schedule={},
                        image_size=64, batch_size=2, channels_last=channels_last)


def test_loss_and_assigner_get_fp32_with_autocast_off():
    m = module(channels_last=True).train()
    seen = {}

    def spy(name, fn):
        def wrapped(outputs, targets, *rest):
            anchors = m.loss_fn.geometry.anchors  # what the assigner and the loss decode with
            seen[name] = ({t.dtype for t in [*outputs.lead, *(outputs.aux or [])]}, targets.dtype, anchors.dtype,
                          torch.is_autocast_enabled("cpu"))
            return fn(outputs, targets, *rest)
        return wrapped

    class Assigner:  # the real assigner, its inputs recorded
        def __init__(self, inner):
            self.inner, self.call = inner, spy("assigner", inner.__call__)

        def __call__(self, *args):
            return self.call(*args)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    m.loss_fn.forward = spy("loss", m.loss_fn.forward)
    m.loss_fn.assigner = Assigner(m.loss_fn.assigner)
    images = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    targets = torch.tensor([[0, 1, 32.0, 32.0, 20.0, 16.0], [1, 2, 20.0, 40.0, 10.0, 12.0]])
    conv_out = []
    m.model.detect.m[0].register_forward_hook(lambda mod, args, out: conv_out.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = m.model(images)
        assert conv_out == [torch.bfloat16]  # the network did run in bf16 (the head's implicit scale promotes)
        result = m._loss(outputs, targets)
    assert seen["loss"] == ({torch.float32}, torch.float32, torch.float32, False)
    assert seen["assigner"] == ({torch.float32}, torch.float32, torch.float32, False)
    assert result.total.dtype == torch.float32 and torch.isfinite(result.total)


def test_channels_last_keeps_state_dict_and_outputs():
    plain, nhwc = module(channels_last=False), module(channels_last=True)
    a, b = plain.state_dict(), nhwc.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [p for p in nhwc.model.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                           for p in weights)
    # a channels-last state dict loads into a contiguous model and back, values intact
    fresh = module(channels_last=False)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh.load_state_dict(b)
    assert all(torch.equal(fresh.state_dict()[k], a[k]) for k in a)
    plain.eval(), nhwc.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = plain.model(x)
        out = nhwc.model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-3)


def test_official_import_into_a_channels_last_model(tmp_path):
    sd = random_official(build_model("yolov7-tiny", num_classes=80), "training", seed=3)
    path = save_official(tmp_path / "yolov7-tiny.pt", sd, 80)
    model = build_model("yolov7-tiny", num_classes=80).to(memory_format=torch.channels_last)
    report = load_official_weights(model, path)
    assert (report.missing, report.unexpected) == ([], [])
    assert_loaded(model, sd, "training")
    assert model.detect.m[0].weight.is_contiguous(memory_format=torch.channels_last)
