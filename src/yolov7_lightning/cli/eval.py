"""``yolov7-eval ckpt=<checkpoint> [data=...] [split=val|test] [tta=true] [save_txt=true [save_conf=true]]``:
COCO evaluation of a checkpoint's EMA weights with pycocotools (or torchmetrics): the 12 COCO
numbers, per-class AP, and a COCO-format results JSON, written into the Hydra run folder;
``tta``: official test-time augmentation (--augment); ``save_txt``: YOLO-format predictions per image."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..atomic import atomic_write_json
from ..data.model_classes import data_with_model_names, require_model_classes
from ..eval import format_per_class
from ..eval.nms import PREDICT
from ..eval.save_txt import write_yolo_txt
from ..training.checkpoint import load_module
from ..training.evaluation import evaluate
from .app import hydra_app
from .output import require_writable
from ..errors import ConfigError, UserError

SPLITS = ("val", "test")


def run(cfg: DictConfig) -> dict:
    if cfg.split not in SPLITS:
        raise ConfigError(f"unknown split {cfg.split!r}; valid: {', '.join(SPLITS)}")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    require_writable(out_dir)
    module = load_module(cfg.ckpt, purpose="yolov7-eval")
    module.set_evaluation(module.eval_settings.updated(OmegaConf.to_container(cfg.evaluation, resolve=True),
                                                       augment=bool(cfg.get("tta", False))))  # official --augment
    names = module.hparams.names
    data = data_with_model_names(cfg.data, names, cfg.ckpt)  # data=yolo without names: the model's names
    datamodule = instantiate(data, augment=None, stride=module.model.max_stride)
    require_model_classes(datamodule.names, names, cfg.ckpt, data)
    trainer = instantiate(cfg.trainer, logger=False, max_epochs=1)
    result = evaluate(trainer, module, datamodule, cfg.split)
    result.detections.save_json(out_dir / "predictions_coco.json")
    extra = ""
    if cfg.get("save_txt"):
        n = write_yolo_txt(result.detections, datamodule.dataset(cfg.split).index, out_dir, bool(cfg.get("save_conf")))
        extra = f", labels/ ({n} files)"
    scalars = dict(result.scalars)
    speed = result.speed.per_image_ms()
    scalars["speed_ms"] = {k: round(v, 2) for k, v in speed.items()} | {"batch_size": datamodule.val_batch_size}
    atomic_write_json(scalars | {"per_class": result.per_class}, out_dir / "metrics.json", indent=2)
    print(result.summary)
    print(format_per_class(result.per_class, result.per_class_map50))
    print("Speed: {inference_ms:.1f}/{nms_ms:.1f}/{total_ms:.1f} ms inference/NMS/total per image at batch-size "
          "{batch_size} (the official speed task's thresholds: evaluation.conf_thres={conf} evaluation.iou_thres={iou})"
          .format(**scalars["speed_ms"], conf=PREDICT.conf_thres, iou=PREDICT.iou_thres))
    print(f"outputs: {out_dir}  (metrics.json, predictions_coco.json{extra})")
    return scalars


main = hydra_app("eval", run)


if __name__ == "__main__":
    main()
