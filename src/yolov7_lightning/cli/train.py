"""``yolov7-train``: build data, model, callbacks, logger and trainer from config; fit; write
``metrics.json`` and the checkpoints into the Hydra run folder; return the reported epoch's fitness
(for sweepers; ``training/run_summary.py``).

    yolov7-train                                     # main job: yolov7-tiny at half width on the shapes data, CPU
    yolov7-train model=yolov7 data=coco data.source.root=/data/coco trainer=gpu schedule=scratch_p5
    yolov7-train ckpt_path=runs/train/<run>/checkpoints/last.ckpt        # resume
    yolov7-train hydra.run.dir=runs/train/<run> ckpt_path=auto            # resume when <run> has a last.ckpt
    yolov7-train model.weights=yolov7-tiny.pt                             # fine-tune
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..atomic import atomic_write_json
from ..config import ModelConfig
from ..errors import UserError
from ..models import get_arch
from ..models.autoanchor import apply_anchor_config, index_wh
from ..models.checkpoint_reader import load_weights, read_checkpoint
from ..models.summary import summarize
from ..specs import to_spec
from ..training.callbacks import DeployExport
from ..training.callbacks.build import build_callbacks
from ..training.callbacks.timing import TimeBreakdown
from ..training.checkpoint_io import AtomicCheckpointIO
from ..training.cluster import link_submitit_logs, resolve_ckpt_path
from ..training.ddp import end_job
from ..training.evaluation import evaluate
from ..training.module import YOLOv7Module
from ..training.precision import cpu_precision_reason, describe_cpu_precision, keep_resumed_precision
from ..training.run_folder import claim, finished_run, resumes, secondary_rank
from ..training.run_summary import budget_line, final_line, objective, publish_summary, run_metrics
from ..training.signals import StopSignal, stop_line
from ..training.specs import module_specs
from .app import hydra_app
from .output import require_writable

log = logging.getLogger(__name__)


def plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def plain_or_value(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def fit_anchors(cfg: DictConfig, module: YOLOv7Module, datamodule, resuming: bool) -> dict | None:
    """``anchors: auto | keep | [list]`` on the training boxes (official autoanchor); a resumed run
    keeps its checkpoint's anchors (restored with the weights), so nothing is computed."""
    spec = cfg.anchors
    if resuming:
        return None
    spec = plain_or_value(spec)
    size = max(datamodule.img_size)
    wh, owner = index_wh(datamodule.dataset("train").index, size)
    fit = apply_anchor_config(module.model, spec, wh, owner, size, anchor_t=float(cfg.assigner.anchor_t),
                              seed=int(cfg.seed))
    return fit.as_dict()


def _short(names) -> str:
    names = list(names)
    return str(names[:10])[:-1] + (", ...]" if len(names) > 10 else "]")


@dataclass
class Built:
    """What :func:`build` makes of a ``train`` config: the data, the module and the trainer, and what
    the run reports about its start (``metrics.json``'s ``model``, ``autoanchor``, ``cpu_precision``)."""

    datamodule: Any
    module: YOLOv7Module
    trainer: L.Trainer
    summary: dict  # params and GFLOPs at the variant's nominal size (the paper's tables)
    autoanchor: dict | None  # the anchors fitted to the training boxes (None: kept, or a resumed run)
    cpu_precision: dict | None  # CPU runs: the precision and why

    def start_metrics(self) -> dict:
        return {"model": self.summary, "autoanchor": self.autoanchor, "cpu_precision": self.cpu_precision}


def cpu_precision_choice(cfg: DictConfig) -> dict | None:
    """CPU runs: which precision and why (bf16 where the CPU has it), logged; None on other accelerators."""
    if cfg.trainer.accelerator != "cpu":
        return None
    auto = OmegaConf.is_interpolation(cfg.trainer, "precision")
    log.info(describe_cpu_precision(str(cfg.trainer.precision), auto))
    return {"precision": str(cfg.trainer.precision), "reason": cpu_precision_reason(str(cfg.trainer.precision), auto)}


def build(cfg: DictConfig, out_dir: Path, ckpt_path: str | None = None) -> Built:
    """The data, module and trainer of a composed ``train`` config (:class:`Built`)."""
    arch = get_arch(cfg.model.variant)
    model_cfg = to_spec(ModelConfig, cfg.model, "model")  # the network's spec + the fine-tuning options
    # before any data work: a key no spec has (+optim.foo=1) or heads the assigner does not label stop here
    specs = module_specs(model_cfg.spec(), plain(cfg.loss), plain(cfg.assigner), plain(cfg.optim),
                         plain(cfg.schedule))
    require_writable(out_dir, out_dir / "checkpoints")
    if ckpt_path:  # the resolved ckpt_path (run()); a bad file fails here, in one line, before the data is read
        resumed = read_checkpoint(ckpt_path, kinds=("training",), purpose="ckpt_path (resume)")
        if cfg.trainer.accelerator == "cpu" and OmegaConf.is_interpolation(cfg.trainer, "precision"):
            keep_resumed_precision((resumed.raw.get("yolov7") or {}).get("precision"))
    weights = read_checkpoint(model_cfg.weights, kinds=("training", "official", "state_dict"),
                              purpose="model.weights") if model_cfg.weights else None
    datamodule = instantiate(cfg.data, augment=cfg.augment, stride=max(arch.strides), seed=cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")  # train and val read now: a class list that differs between them stops here
    num_classes = len(datamodule.names)
    if ckpt_path:
        trained = (resumed.raw.get("hyper_parameters") or {}).get("names")
        if trained is not None and list(trained) != list(datamodule.names):
            raise UserError(f"{ckpt_path}: trained on {len(trained)} classes {_short(trained)}, the data has "
                            f"{num_classes} {_short(datamodule.names)}; resume it on the data it trained on, or "
                            "start a new run from its weights with model.weights=<file>")
    if specs.model.num_classes != num_classes:
        log.info("model.num_classes %s -> %d (the dataset's classes)", specs.model.num_classes, num_classes)
    module = YOLOv7Module(model=replace(specs.model, num_classes=num_classes), loss=specs.loss, assigner=specs.assigner,
                          optim=specs.optim, schedule=specs.schedule, evaluation=plain(cfg.evaluation),
                          image_size=max(datamodule.img_size), batch_size=datamodule.batch_size,
                          names=list(datamodule.names), category_ids=[int(c) for c in datamodule.category_ids],
                          channels_last=cfg.channels_last, compile=cfg.compile, freeze=plain_or_value(cfg.freeze))
    if weights is not None:
        load_weights(module.model, weights, allow_partial=model_cfg.weights_partial)
    autoanchor = fit_anchors(cfg, module, datamodule, resuming=bool(ckpt_path))
    summary = summarize(module.model)  # params and GFLOPs at the variant's nominal size (the paper's tables)
    precision = cpu_precision_choice(cfg)
    # the resolved config (+ the precision's reason) and the model's params/GFLOPs, to every logger (run_info)
    run_config = {**plain(cfg), **({"cpu_precision": precision} if precision is not None else {})}
    # ~callbacks: only those every run has (a group that may be removed, as logger)
    callbacks = build_callbacks(cfg.get("callbacks"), out_dir / "checkpoints", {"config": run_config, "summary": summary})
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()],
                          default_root_dir=str(out_dir))
    return Built(datamodule, module, trainer, summary, autoanchor, precision)


def final_lines(metrics: dict, out_dir: Path, exported: bool) -> list[str]:
    """The last lines a run prints: its time budget (if any), its best and last epochs' mAP (or that
    none was computed) and where its outputs are."""
    files = ", checkpoints/deploy.pt, checkpoints/model.onnx" if exported else ""
    budget = budget_line(metrics)
    return [*([budget] if budget else []), final_line(metrics),
            f"outputs: {out_dir}  (metrics.json, checkpoints/best.ckpt, checkpoints/last.ckpt{files})"]


def run(cfg: DictConfig) -> dict:
    """:func:`train` in the Hydra run folder, claimed for the whole run (``training/run_folder.py``)."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with claim(out_dir, cfg.ckpt_path, bool(cfg.overwrite)):
        return train(cfg)


def train(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, out_dir)  # auto: this job's own last.ckpt, if any
    stored = finished_run(out_dir, int(cfg.trainer.max_epochs)) if resumes(out_dir, ckpt_path) else None
    if stored is not None:  # a finished run resumed (a requeued job) stays finished, its results untouched
        if not secondary_rank():
            print(f"{out_dir}: this run already finished ({stored.get('epochs')} epochs); nothing is trained again, "
                  "its stored results stand")
            print("\n".join(final_lines(stored, out_dir, cfg.export.enabled)))
        return stored
    built = build(cfg, out_dir, ckpt_path)
    datamodule, module, trainer = built.datamodule, built.module, built.trainer
    if trainer.is_global_zero:
        link_submitit_logs(out_dir)  # submitit launchers: the job's logs, from its folder
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:  # Lightning's ends for SIGTERM (status 0) and Ctrl-C (status 1)
        signum = next(c.signum for c in trainer.callbacks if isinstance(c, StopSignal))
        if signum is None:
            raise
        if trainer.is_global_zero:
            print(stop_line(signum, out_dir, trainer.current_epoch, trainer.max_epochs), file=sys.stderr, flush=True)
        raise SystemExit(128 + signum) from None
    seconds = time.perf_counter() - start
    metrics = {
        **run_metrics(trainer), "train_seconds": round(seconds, 1), "nonfinite_skipped": module.nonfinite_total,
        "seed": cfg.seed, "overrides": list(hydra_cfg.overrides.task), **built.start_metrics(),
        # what a resumed run compares (run_folder.finished_run): the max_epochs it was given
        "finished": True, "max_epochs": int(cfg.trainer.max_epochs),
        "time": next((c.record() for c in trainer.callbacks if isinstance(c, TimeBreakdown)), None),
    }
    if cfg.test_after_fit:
        metrics["test"] = evaluate(trainer, module, datamodule, "test", verbose=True).floats()
    if trainer.is_global_zero:
        atomic_write_json(metrics, out_dir / "metrics.json", indent=2)
        publish_summary(trainer, metrics)  # the W&B summary: the same numbers
        export = next((c for c in trainer.callbacks if isinstance(c, DeployExport)), None)
        *score, outputs = final_lines(metrics, out_dir, export is not None)
        print("\n".join(score))
        report = export.report if export is not None else None
        if report is not None and not report["passed"]:
            print(f"WARNING: the deploy export failed its self-check: {out_dir / 'checkpoints' / 'export_report.json'}")
        print(outputs)
    end_job(trainer)  # DDP: wait for this job's other ranks and reset, before a multirun's next job
    return metrics


main = hydra_app("train", lambda cfg: objective(run(cfg)))  # the reported epoch's fitness (run_summary.REPORTED)


if __name__ == "__main__":
    main()
