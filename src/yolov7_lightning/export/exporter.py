"""``export``: one source -> deploy checkpoint / ONNX / TorchScript, each checked, plus ``export_report.json``.

Checks (fp32, CPU; model outputs within the tolerances, NMS outputs exactly, see :mod:`.check`), on
seeded scene-like check images (:func:`~.inputs.check_images`):

- ``fused_vs_unfused``: deploy form vs training form in PyTorch (absent for a deploy-checkpoint source);
- ``onnx_vs_pytorch``: the graph's ``predictions`` (with NMS: the tensor the NMS part starts from)
  vs the PyTorch deploy form; with a dynamic batch also ``onnx_batch1_vs_batchN`` (image 0 alone vs
  in the batch); with a dynamic size also ``onnx_vs_pytorch_<h>x<w>`` at a second, non-square size;
- with NMS, ``onnx_nms_vs_torchvision`` (and ``..._batch1``, ``..._<h>x<w>``): the graph's detections
  vs :func:`yolov7_lightning.eval.non_max_suppression` (torchvision) on the graph's own predictions
  of the same run: identical inputs, so exact; and ``onnx_nms_synthetic_vs_torchvision``: the NMS
  part of the graph alone vs the same function on :func:`~.inputs.synthetic_predictions`, which
  exercise NMS whatever the weights. A model that gives the check images no detection above
  ``conf_thres`` (untrained, or after an epoch) leaves the check-image comparisons ``empty`` (not
  passed); ``nms_check`` in the report says whether the NMS was checked on the check images or on
  the synthetic predictions only;
- ``torchscript_vs_pytorch``.

Each check records the inputs it used and the tolerance it applied. The report is written before a
failure is raised, so a failed export leaves its evidence behind.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path, atomic_write_json
from ..eval.nms import PREDICT, NMSSettings, non_max_suppression
from .check import (
    EMPTY,
    FP16_TOLERANCES,
    Tolerances,
    compare_detections,
    empty_checks,
    prediction_diff,
    raise_on_failure,
)
from .deploy import ExportSource, load_source, save_deploy
from .inputs import check_images, saturation, synthetic_predictions
from .nms import split_detections
from .onnx_export import export_onnx, nms_part, onnx_session, with_predictions_output
from ..errors import ConfigError

FORMATS = ("deploy", "onnx", "torchscript")
REPORT_NAME = "export_report.json"


@dataclass
class ExportOptions:
    """What to export and how. ``image_size``: ``None`` takes the source's training size; an int is a
    square side, ``[h, w]`` a rectangle (multiples of the max stride)."""

    formats: tuple[str, ...] = ("deploy", "onnx")
    image_size: int | tuple[int, int] | None = None
    batch: int = 1
    dynamic_batch: bool = True
    dynamic_size: bool = False
    opset: int = 17
    nms: bool = False
    conf_thres: float = PREDICT.conf_thres
    iou_thres: float = PREDICT.iou_thres
    max_det: int = PREDICT.max_det
    multi_label: bool = PREDICT.multi_label
    check_batch: int = 2        # images in the self-check (with a fixed batch: ``batch``)
    seed: int = 0
    half: bool = False          # ONNX: the network in fp16 (float32 inputs/outputs)
    simplify: bool = False      # ONNX: simplified with onnxslim
    tolerances: Tolerances = field(default_factory=Tolerances)
    tolerances_half: Tolerances = FP16_TOLERANCES  # the fp16 graph vs the fp32 PyTorch model
    names: dict[str, str] = field(default_factory=lambda: {"deploy": "deploy.pt", "onnx": "model.onnx",
                                                           "torchscript": "model.torchscript.pt"})

    def nms_kwargs(self) -> dict[str, Any]:
        return NMSSettings.of(self).kwargs()


def _size(options: ExportOptions, source: ExportSource) -> tuple[int, int]:
    size = options.image_size if options.image_size is not None else source.image_size
    h, w = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    s = source.model.max_stride
    if h % s or w % s or h <= 0 or w <= 0:
        raise ConfigError(f"image size {h}x{w} is not a positive multiple of the max stride {s} of "
                          f"{source.model.arch.name}")
    return h, w


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    return check_images(n, h, w, seed)


def _describe(x: torch.Tensor, seed: int) -> str:
    n, _, h, w = x.shape
    return f"{n} check image{'s' if n > 1 else ''} {h}x{w} (seed {seed})"


def export(source: str | Path | ExportSource, out_dir: str | Path, options: ExportOptions | None = None,
           raise_on_fail: bool = True) -> dict[str, Any]:
    """Export ``source`` (a checkpoint path or an :class:`ExportSource`) into ``out_dir``; returns the
    report (also written to ``out_dir/export_report.json``). Raises :class:`~.check.ExportCheckError`
    when a check is outside the tolerances (unless ``raise_on_fail`` is false: see ``report["passed"]``)."""
    options = options or ExportOptions()
    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown or not options.formats:
        raise ConfigError(f"unknown export format(s) {unknown}; valid: {', '.join(FORMATS)}")
    t0 = time.perf_counter()
    src = source if isinstance(source, ExportSource) else load_source(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = _size(options, src)
    batch = options.check_batch if options.dynamic_batch else options.batch
    tol = options.tolerances
    x = _images(batch, h, w, options.seed)
    deploy = src.deploy_model()
    report: dict[str, Any] = {
        "source": src.path, "source_kind": src.kind, "model": src.spec, "names": src.names,
        "image_size": [h, w], "options": {k: v for k, v in asdict(options).items()
                                                      if k not in ("tolerances", "tolerances_half", "names")},
        "tolerances": tol.as_dict(), "outputs": {}, "checks": {},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    with torch.no_grad():
        ref = deploy(x)
        report["check_images"] = {"count": batch, "size": [h, w], "seed": options.seed, "kind": "scenes",
                                  "saturated_objectness": saturation(ref)}
        if not src.fused:
            report["checks"]["fused_vs_unfused"] = prediction_diff(
                src.model(x), ref, tol, f"{_describe(x, options.seed)}: training form (reference) vs deploy form, PyTorch")
    if "deploy" in options.formats:
        report["outputs"]["deploy"] = str(save_deploy(src, out_dir / options.names["deploy"], deploy))
    if "onnx" in options.formats:
        _export_onnx(src, deploy, x, ref, out_dir / options.names["onnx"], options, report)
    if "torchscript" in options.formats:
        _export_torchscript(deploy, x, ref, out_dir / options.names["torchscript"], tol, report, options.seed)
    report["passed"] = all(c.get("passed", True) is not False for c in report["checks"].values())  # empty: not failed
    report["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(report, out_dir / REPORT_NAME, indent=2)
    report["outputs"]["report"] = str(out_dir / REPORT_NAME)
    if raise_on_fail:
        raise_on_failure(report, str(out_dir / REPORT_NAME))
    return report


def _export_onnx(src: ExportSource, deploy: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, path: Path,
                 options: ExportOptions, report: dict[str, Any]) -> None:
    tol = options.tolerances_half if options.half else options.tolerances
    if options.half:
        report["tolerances_half"] = tol.as_dict()
    h, w = x.shape[-2:]
    nms = options.nms_kwargs() if options.nms else None
    meta = {"names": json.dumps(src.names), "stride": str(deploy.max_stride), "image_size": json.dumps([h, w]),
            "variant": src.spec.get("variant", deploy.arch.name), "num_classes": str(deploy.num_classes),
            "dynamic_batch": json.dumps(options.dynamic_batch), "dynamic_size": json.dumps(options.dynamic_size),
            "precision": "fp16" if options.half else "fp32", "simplified": json.dumps(options.simplify)}
    export_onnx(deploy, path, x, opset=options.opset, dynamic_batch=options.dynamic_batch,
                dynamic_size=options.dynamic_size, nms=nms, metadata=meta, half=options.half,
                simplify=options.simplify)
    report["outputs"]["onnx"] = str(path)
    checks = report["checks"]
    session = onnx_session(path if nms is None else with_predictions_output(path))

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(predictions, detections or None) of the graph for ``images``."""
        outs = session.run(["predictions"] + (["detections"] if nms else []), {"images": images.numpy()})
        return torch.from_numpy(outs[0]), (torch.from_numpy(outs[1]) if nms else None)

    def nms_checks(suffix: str, pred: torch.Tensor, det: torch.Tensor | None, what: str) -> None:
        if det is not None:
            checks[f"onnx_nms_vs_torchvision{suffix}"] = compare_detections(
                _reference_nms(pred, options), split_detections(det, len(pred)), options.max_det,
                f"the graph's own predictions of {what}: its NMS vs non_max_suppression (torchvision)")

    what = _describe(x, options.seed)
    ort = f"ONNX Runtime ({'fp16' if options.half else 'fp32'}{', simplified' if options.simplify else ''} graph)"
    pred, det = run(x)
    checks["onnx_vs_pytorch"] = prediction_diff(ref, pred, tol, f"{what}: PyTorch deploy form (fp32) vs {ort}")
    nms_checks("", pred, det, what)
    if options.dynamic_batch and len(x) > 1:
        pred1, det1 = run(x[:1])
        checks["onnx_batch1_vs_batchN"] = prediction_diff(pred[:1], pred1, tol,
                                                          f"image 0 of the {what}: in the batch vs alone, {ort}")
        nms_checks("_batch1", pred1, det1, f"image 0 of the {what} alone")
    if options.dynamic_size:
        s = deploy.max_stride
        n2 = 1 if options.dynamic_batch else len(x)
        x2 = _images(n2, h + s, w + 2 * s, options.seed + 1)
        what2 = _describe(x2, options.seed + 1)
        with torch.no_grad():
            ref2 = deploy(x2)
        pred2, det2 = run(x2)
        checks[f"onnx_vs_pytorch_{h + s}x{w + 2 * s}"] = prediction_diff(
            ref2, pred2, tol, f"{what2}: PyTorch deploy form (fp32) vs {ort}")
        nms_checks(f"_{h + s}x{w + 2 * s}", pred2, det2, what2)
    if nms is not None:
        synth = synthetic_predictions(len(x), pred.shape[1], deploy.num_classes, h, w, options.conf_thres,
                                      options.iou_thres, options.seed, options.max_det)
        part = onnx_session(nms_part(path))
        got = torch.from_numpy(part.run(["detections"], {"predictions": synth.numpy()})[0])
        synthetic = compare_detections(
            _reference_nms(synth, options), split_detections(got, len(synth)), options.max_det,
            f"synthetic predictions {list(synth.shape)} (seed {options.seed}): the graph's NMS part vs "
            "non_max_suppression (torchvision)")
        if synthetic["status"] == EMPTY:  # the check every model relies on must compare something
            synthetic.update(passed=False, status="failed", error="the synthetic predictions gave no detections")
        checks["onnx_nms_synthetic_vs_torchvision"] = synthetic
        report["nms_check"] = _nms_verdict(report, options, synthetic)


def _nms_verdict(report: dict[str, Any], options: ExportOptions, synthetic: dict[str, Any]) -> str:
    """One line: on what the graph's NMS was checked (the check images, or the synthetic predictions
    only when the model gives the check images no detection above ``conf_thres``)."""
    empty = empty_checks(report)
    real = [name for name, c in report["checks"].items()
            if name.startswith("onnx_nms_vs_torchvision") and name not in empty]
    on_synthetic = f"{synthetic['reference_detections']} synthetic detections"
    if not empty:
        n = sum(report["checks"][name]["reference_detections"] for name in real)
        return f"the graph's NMS checked on {n} detections of the check images and {on_synthetic}"
    return (f"the graph's NMS checked on {on_synthetic} only: {', '.join(empty)} compared no detections "
            f"(none above conf_thres {options.conf_thres} on the check images; status 'empty', not counted as passed)")


def _reference_nms(pred: torch.Tensor, options: ExportOptions) -> list[torch.Tensor]:
    """``non_max_suppression`` with the graph's options and no ``max_nms`` cap (the graph has none)."""
    return non_max_suppression(pred, options.conf_thres, options.iou_thres, multi_label=options.multi_label,
                               max_det=options.max_det, max_nms=max(1, pred.shape[1] * (pred.shape[2] - 5)))


def _export_torchscript(deploy: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, path: Path, tol: Tolerances,
                        report: dict[str, Any], seed: int = 0) -> None:
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(deploy, x, check_trace=False)
        with atomic_path(path) as tmp:
            traced.save(str(tmp))
        loaded = torch.jit.load(str(path))
        got = loaded(x)
    report["outputs"]["torchscript"] = str(path)
    report["checks"]["torchscript_vs_pytorch"] = prediction_diff(ref, got, tol,
                                                                 f"{_describe(x, seed)}: PyTorch deploy form vs TorchScript")
