"""Typed schemas for the config groups, registered in Hydra's ConfigStore (typos fail at start-up).

A group that builds one object is typed by the dataclass the code is built from (its fields, types
and defaults, in one place): ``model`` by :class:`ModelConfig` (a ``ModelSpec`` and the fine-tuning
options), ``scaling`` by ``ScalingSpec``, ``loss`` by ``LossSpec``, ``assigner`` by ``Assigner``,
``optim`` and ``schedule`` by ``OptimSpec`` and ``ScheduleSpec`` (``specs.to_spec`` turns a composed
group into its spec). ``_target_`` is left to where there is a choice (data source, trainer, logger).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .models.spec import ModelSpec


# the ``model`` group's defaults that come from the rest of the config (``aux_head_for``: the
# strategies table, ``assign/strategies.py``)
AUX_HEAD_FROM_ASSIGNER = "${aux_head_for:${oc.select:assigner.strategy,null}}"
SCALING_GROUP = "${scaling}"


@dataclass
class ModelConfig(ModelSpec):
    """The ``model`` group: the network's :class:`~yolov7_lightning.models.ModelSpec` (what the module
    is built from and checkpoints record) and the training command's fine-tuning options, which say
    where the first weights come from, not what the network is. Each ``conf/model/<variant>.yaml``
    sets ``variant`` and its default assigner; ``aux_head`` follows the assigner (the strategies
    table, ``assign/strategies.py``) and ``scaling`` is the ``scaling`` group (see :func:`register_configs`)."""

    # fine-tune from a checkpoint of this project or an official .pt
    weights: Optional[str] = None
    weights_partial: bool = False  # true: a weights file covering under half the model is loaded anyway

    def spec(self) -> ModelSpec:
        return ModelSpec(**{f.name: getattr(self, f.name) for f in fields(ModelSpec)})


@dataclass
class TrainerConfig(Dict[str, Any]):
    """The ``trainer`` group: ``lightning.Trainer`` keys the project sets, typed; other Trainer
    arguments may be added (``+trainer.limit_train_batches=2``): a schema subclassing Dict[str, Any]
    is open to keys it does not list."""

    _target_: str = "lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    precision: Any = "32-true"
    max_epochs: int = 300
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    enable_model_summary: bool = False


@dataclass
class ExportConfig:
    """``export`` of ``yolov7-train``: the deploy export at the end of fit, next to the checkpoints:
    ``deploy.pt``, ``model.onnx``, ``export_report.json`` (``training/callbacks/export.py``)."""

    enabled: bool = True
    formats: List[str] = field(default_factory=lambda: ["deploy", "onnx"])
    nms: bool = False      # true: end-to-end ONNX graph with NonMaxSuppression
    on_best: bool = False  # true: also refresh best_deploy.pt whenever best.ckpt changes


@dataclass
class VisualsConfig:
    """``visuals`` of ``yolov7-train``: validation pictures for every logger (W&B, TensorBoard; PNGs in
    ``<run>/visuals/`` with CSV): predicted and ground-truth boxes, lead vs aux objectness maps,
    per-class AP table (``training/callbacks/visuals.py``)."""

    enabled: bool = True
    every_n_epochs: int = 5  # and at the last epoch
    num_images: int = 4      # taken from the first validation batch (no extra validation pass)


@dataclass
class TrainConfig(Dict[str, Any]):
    """The top-level keys of ``yolov7-train`` (``conf/train.yaml``) and their defaults; the config
    groups (model, data, ...) come from its defaults list (an open schema: a Dict[str, Any])."""

    seed: int = 0
    # official autoanchor: new anchors (k-means + evolution) when the best possible recall < 0.98;
    # keep: the variant's (or the weights') anchors | [[w,h, w,h, w,h], ...] per level, pixels
    anchors: Any = "auto"
    freeze: Any = None  # official --freeze: N (first N official layers; yolov7 backbone = 50) | backbone | [names]
    save_period: int = 0  # >= 1: also keep checkpoints/epoch_NNN.ckpt every N epochs (official save_period)
    # resume exactly (epoch, optimizer, scheduler, EMA, sampler) from a checkpoint; auto: from this run
    # folder's checkpoints/last.ckpt when there is one (default under hydra/launcher=submitit_slurm);
    # null: from scratch
    ckpt_path: Optional[str] = "${oc.env:YOLOV7_CKPT_PATH,null}"
    # true: a run into a folder that holds another run's results deletes them first (refused otherwise);
    # a resumed run (ckpt_path=auto, or a ckpt_path in the folder) keeps them (training/run_folder.py)
    overwrite: bool = False
    ema: bool = True
    channels_last: bool = True  # the network and its input batches in channels-last (NHWC): same weights
    compile: Any = False  # true: the training forward through torch.compile (inductor), or a backend name
    # metrics.json time: seconds of data, forward, loss, backward, step, validation (training/callbacks/timing.py);
    # auto: on CPU; true: also on CUDA (each mark waits for the device); false: off
    time_breakdown: Any = "auto"
    early_stop_patience: int = 0  # > 0: stop when val/fitness has not improved for this many epochs
    test_after_fit: bool = False  # also evaluate the test split (falls back to val) with the final EMA weights
    export: ExportConfig = field(default_factory=ExportConfig)
    visuals: VisualsConfig = field(default_factory=VisualsConfig)


def register_configs() -> None:
    from .assign import Assigner, aux_head_for
    from .cli.help import register_help
    from .data.config import register_data_configs
    from .eval.nms import register_nms_resolver
    from .export.check import FP16_TOLERANCES, Tolerances
    from .loss import LossSpec
    from .models.spec import ScalingSpec
    from .training.optim import OptimSpec, ScheduleSpec
    from .training.precision import register_resolvers

    # open schemas (Dict subclasses, above) are deprecated upstream but supported by OmegaConf 2.x
    warnings.filterwarnings("ignore", message=r"Class `\w+` subclasses `Dict`", category=UserWarning)

    register_data_configs()
    if not OmegaConf.has_resolver("aux_head_for"):
        OmegaConf.register_new_resolver("aux_head_for", aux_head_for)
    register_resolvers()  # ${cpu_precision:} (conf/trainer/cpu.yaml)
    register_nms_resolver()  # ${nms:test.conf_thres} (conf/evaluation/, conf/export.yaml, predict.yaml)
    register_help()  # hydra/help: yolov7, every command's --help
    cs = ConfigStore.instance()
    model = ModelConfig(aux_head=AUX_HEAD_FROM_ASSIGNER, scaling=SCALING_GROUP)  # type: ignore[arg-type]
    for name, node in (("model", model), ("scaling", ScalingSpec), ("schedule", ScheduleSpec), ("optim", OptimSpec),
                       ("loss", LossSpec), ("assigner", Assigner), ("trainer", TrainerConfig)):
        cs.store(group="schema", name=name, node=node)
    cs.store(name="train_schema", node=TrainConfig)
    # yolov7-export's self-check tolerances (conf/export.yaml): the values of the code, keys a user may set
    cs.store(group="schema", name="tolerances", node=Tolerances().as_dict())
    cs.store(group="schema", name="tolerances_half", node=FP16_TOLERANCES.as_dict())
