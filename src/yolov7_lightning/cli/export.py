"""``yolov7-export ckpt=<checkpoint|official .pt> format=onnx``: the deploy checkpoint, ONNX (with or
without end-to-end NMS) or TorchScript, each checked against PyTorch; ``export_report.json`` beside
them. A check outside the tolerances raises (non-zero exit) after the report is written.

    yolov7-export ckpt=runs/train/.../last.ckpt format=[deploy,onnx]
    yolov7-export ckpt=yolov7-tiny.pt format=onnx nms=true conf_thres=0.25 max_det=100
    yolov7-export ckpt=best.ckpt format=onnx dynamic_size=true image_size=[384,640] opset=13
    yolov7-export ckpt=best.ckpt format=onnx half=true simplify=true   # fp16 network, onnxslim
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..export import ExportOptions, Tolerances, export
from ..export.check import FP16_TOLERANCES
from .app import hydra_app
from .output import require_writable
from ..errors import ConfigError


def options_from_config(cfg: DictConfig) -> ExportOptions:
    formats = cfg.format
    formats = tuple(formats) if isinstance(formats, (list, tuple, ListConfig)) else \
        tuple(f.strip() for f in str(formats).split(",") if f.strip())
    size = cfg.image_size
    size = tuple(OmegaConf.to_container(size)) if isinstance(size, ListConfig) else size
    tol, half_tol = cfg.tolerances, cfg.tolerances_half  # export/check.py's values (config.register_configs)
    return ExportOptions(formats=formats, image_size=size, batch=int(cfg.batch), dynamic_batch=bool(cfg.dynamic_batch),
                         dynamic_size=bool(cfg.dynamic_size), opset=int(cfg.opset), nms=bool(cfg.nms),
                         conf_thres=float(cfg.conf_thres), iou_thres=float(cfg.iou_thres), max_det=int(cfg.max_det),
                         multi_label=bool(cfg.multi_label), check_batch=int(cfg.check_batch),
                         half=bool(cfg.half), simplify=bool(cfg.simplify),
                         tolerances=_tolerances(tol, Tolerances()), tolerances_half=_tolerances(half_tol, FP16_TOLERANCES))


def _tolerances(cfg, default: Tolerances) -> Tolerances:
    unknown = set(cfg) - set(default.as_dict())
    if unknown:
        raise ConfigError(f"unknown tolerance key(s) {sorted(unknown)}; valid: {sorted(default.as_dict())}")
    return Tolerances(**{k: float(cfg.get(k, v)) for k, v in default.as_dict().items()})


def run(cfg: DictConfig) -> dict:
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else Path(HydraConfig.get().runtime.output_dir)
    require_writable(out_dir)
    report = export(cfg.ckpt, out_dir, options_from_config(cfg))
    for name, check in report["checks"].items():
        if check.get("status") == "empty":
            print(f"{name:<36} empty: no detections on either side (not counted as passed)")
        elif "identical" in check:
            print(f"{name:<36} {check['identical']} of {check['reference_detections']} detections identical  ok")
        else:
            print(f"{name:<36} boxes {check['boxes_px']:.2e} px ({check.get('boxes_vs_tolerance', 0):.2f} of "
                  f"tolerance)  scores {check['scores']:.2e}  ok")
    if "nms_check" in report:
        print(report["nms_check"])
    for kind, path in report["outputs"].items():
        print(f"{kind:<12} {path}")
    print(f"outputs: {out_dir}")
    return report


main = hydra_app("export", run)


if __name__ == "__main__":
    main()
