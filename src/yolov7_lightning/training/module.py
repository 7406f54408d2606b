"""The YOLOv7 LightningModule: network + loss/assigner + the official optimiser recipe.

Built from typed specs (``training/specs.py``); its hyper-parameters are those specs as plain dicts,
never modules, so a checkpoint rebuilds the whole thing (``YOLOv7Module.load_from_checkpoint``) and
loads with ``weights_only=True``.
Optimisation is manual, to follow the official recipe exactly: per-iteration warm-up of lr,
momentum and accumulation, an optimizer step when ``iteration % accumulate == 0``, the loss
multiplied by the world size under DDP, and the per-epoch LR schedule (set from the epoch number
at each epoch start, which keeps a resumed run exact). Each epoch's data (order, image weights,
close-mosaic) is set on the data side (:class:`~yolov7_lightning.data.epoch_data.TrainEpochData`).
Every validation / test pass hands its :class:`~.evaluation.EvalResult` to the trainer's callbacks
(:func:`~.evaluation.hand_out`); :func:`~.evaluation.evaluate` returns it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections import deque
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import ParallelStrategy

from ..assign import Assigner
from ..data.epoch_data import TrainEpochData
from ..errors import UserError
from ..eval import non_max_suppression
from ..eval.tta import predict_augmented
from ..loss import LossSpec, YOLOv7Loss
from ..models import ModelSpec, build_model
from ..models.checkpoint_upgrades import FORMAT, FORMAT_KEY, upgrade
from .evaluation import EvalPass, EvalResult, EvalSettings, fitness, hand_out  # noqa: F401  (fitness: re-exported)
from .freeze import apply_freeze, freeze_batchnorm
from .optim import LRLambda, OptimSpec, ScheduleSpec, WarmUp, accumulation, build_optimizer
from .precision import compile_backend, fp32_outputs, no_autocast, to_memory_format
from .specs import module_specs

log = logging.getLogger(__name__)


def batch_device(module: L.LightningModule) -> torch.device:
    return next(module.model.parameters()).device


class NonFiniteLossError(UserError, RuntimeError):
    """A run that diverged: its loss is not finite."""


NONFINITE_HINT = ("Try a lower optim.lr0 (e.g. 10x lower), gradient clipping (optim.grad_clip=10.0), or check the "
                  "data for broken labels; the checkpoints on disk hold the last finite weights")


class YOLOv7Module(L.LightningModule):
    """``model`` (:class:`ModelSpec`), ``loss`` (:class:`LossSpec`), ``assigner`` (``Assigner``),
    ``optim`` (:class:`OptimSpec`) and ``schedule`` (:class:`ScheduleSpec`): each the spec or a dict
    of its fields (``training.specs.module_specs``: older checkpoints' keys upgraded, an unknown key
    an error); ``evaluation``: backend, NMS thresholds. ``batch_size`` is per device; ``names`` and
    ``category_ids`` (the dataset's classes) travel with the checkpoint for prediction.
    ``channels_last``: the network and its input batches in the channels-last memory format (same
    state-dict keys and values); ``compile``: the training forward through ``torch.compile`` (true: inductor, or a backend name)."""

    def __init__(self, model: ModelSpec | dict, loss: LossSpec | dict, assigner: Assigner | dict,
                 optim: OptimSpec | dict, schedule: ScheduleSpec | dict, evaluation: dict | None = None,
                 image_size: int = 640, batch_size: int = 16, names: list[str] | None = None,
                 category_ids: list[int] | None = None, channels_last: bool = True, compile: bool | str = False,
                 freeze=None):
        super().__init__()
        specs = module_specs(model, loss, assigner, optim, schedule)
        # the hyper-parameters record the specs as plain dicts (save_hyperparameters reads these locals)
        model, loss, assigner, optim, schedule = specs.hparams().values()
        self.save_hyperparameters()
        self.automatic_optimization = False
        compile_backend(compile)  # an unknown backend name stops here, before any work
        self.model = build_model(specs.model)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.frozen = apply_freeze(self.model, freeze)  # ``freeze``: official layer count and/or module names
        if self.frozen:
            freeze_batchnorm(self.frozen)
            n = sum(p.numel() for m in self.frozen for p in m.parameters())
            log.info("freeze %s: %d parameters frozen (BatchNorm statistics too)", freeze, n)
        self.loss_fn = YOLOv7Loss(self.model.num_classes, geometry=self.model.detect.geometry,
                                  assigner=specs.assigner, image_size=image_size, **loss)
        self.optim, self.schedule = specs.optim, specs.schedule
        self.eval_settings = EvalSettings.from_config(evaluation)  # yolov7-eval gives others: set_evaluation
        s = self.schedule
        self.warmup = WarmUp(s.warmup_epochs, s.warmup_min_iters, s.warmup_momentum, s.warmup_bias_lr)
        self.iteration = 0  # batches seen over the whole run (the official ``ni``)
        self.nonfinite_recent: deque[bool] = deque(maxlen=2 * self.optim.max_nonfinite)  # skipped? per recent step
        self.nonfinite_total = 0
        self._diverged: str | None = None  # why the run stops at the next epoch start (or its end)
        self._gradients_pending = False  # a backward pass since the last optimizer step
        self._eval_pass: EvalPass | None = None
        self.class_maps: list[float] | None = None  # per-class mAP@.5:.95 of the last validation (image weights)
        self.close_mosaic: int | None = None  # closing epochs fitted by a time budget (None: augment.close_mosaic)

    def configure_callbacks(self) -> list[L.Callback]:
        """The callback this module's training needs, whoever builds the Trainer: each epoch's data
        (order, image weights, close-mosaic) set on the data side at the epoch start."""
        return [TrainEpochData()]

    def train(self, mode: bool = True):
        """Frozen modules keep their BatchNorm layers in eval mode (running statistics fixed)."""
        super().train(mode)
        if mode and getattr(self, "frozen", None):
            freeze_batchnorm(self.frozen)
        return self

    # ---- optimisation ----------------------------------------------------------------------------
    def _world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def configure_optimizers(self):
        o = self.optim
        opt = build_optimizer(self.model, o.name, o.lr0, o.momentum, o.weight_decay, o.nesterov, self.hparams.batch_size,
                              self._world(), o.nominal_batch, fused=not o.grad_clip)
        self.lr_lambda = LRLambda(self.schedule.kind, self.schedule.lrf, self.schedule.epochs)
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
        return opt

    def on_train_epoch_start(self) -> None:
        """lr = lr0 x schedule(epoch), set from the epoch number (which keeps a resumed run exact)."""
        self._stop_if_diverged()  # the last epoch mostly skipped its steps
        if self.frozen:  # Lightning restores module modes around validation; frozen BN stays in eval mode
            freeze_batchnorm(self.frozen)
        factor = self.lr_lambda(self.current_epoch)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def _accumulate(self, warmup_iters: int) -> int:
        nominal = accumulation(self.hparams.batch_size, self._world(), self.optim.nominal_batch)
        if warmup_iters and self.iteration <= warmup_iters:
            return WarmUp.accumulate(self.iteration, warmup_iters, nominal)
        return nominal

    def _multi_scale(self, images: torch.Tensor, targets: torch.Tensor):
        """Official multi-scale: a random size in [0.5, 1.5] x image size, a multiple of the max stride."""
        if not self.optim.multi_scale:
            return images, targets
        s, size = self.model.max_stride, self.hparams.image_size
        new = random.randrange(int(size * 0.5), int(size * 1.5) + s) // s * s
        h, w = images.shape[-2:]
        f = new / max(h, w)
        if f == 1:
            return images, targets
        shape = [max(s, math.ceil(x * f / s) * s) for x in (h, w)]
        images = F.interpolate(images, size=shape, mode="bilinear", align_corners=False)
        fx, fy = shape[1] / w, shape[0] / h  # Python numbers: no host-to-device copy (a sync on a GPU)
        t = targets
        return images, torch.cat((t[:, :2], t[:, 2:3] * fx, t[:, 3:4] * fy, t[:, 4:5] * fx, t[:, 5:6] * fy), 1)

    def _images(self, batch: dict) -> torch.Tensor:
        """The batch's images in the network's memory format."""
        return to_memory_format(batch["images"], self.hparams.channels_last)

    def on_train_start(self) -> None:
        # compiled forward kept outside the module tree: state-dict keys, EMA and export see the plain model
        backend = compile_backend(self.hparams.compile)
        if backend is not None:
            object.__setattr__(self, "_compiled_model", torch.compile(self.model, backend=backend))

    def on_train_end(self) -> None:
        self._stop_if_diverged()  # after the last epoch's checkpoints
        if self.__dict__.pop("_compiled_model", None) is not None:
            from torch._dynamo.utils import counters

            breaks = sum(counters["graph_break"].values())
            log.info("compiled training forward: %d graph(s) captured, %d graph break(s)",
                     counters["stats"]["unique_graphs"], breaks)

    def _train_forward(self, images: torch.Tensor):
        return self.__dict__.get("_compiled_model", self.model)(images)

    def _loss(self, outputs, targets: torch.Tensor):
        """The loss and the assigner in fp32, autocast off, whatever precision the network ran in."""
        with no_autocast(targets.device):
            return self.loss_fn(fp32_outputs(outputs), targets.float())

    def _backward_sync(self, step_follows: bool) -> contextlib.AbstractContextManager:
        """DDP: no gradient all-reduce on an accumulation micro-step (the gradients add up locally
        and the all-reduce of the step that follows averages their sum)."""
        strategy = self.trainer.strategy if self._trainer is not None else None
        if step_follows or not isinstance(strategy, ParallelStrategy):
            return contextlib.nullcontext()
        return strategy.block_backward_sync()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()
        warmup_iters = self.warmup.iterations(self.trainer.num_training_batches)
        if warmup_iters and self.iteration <= warmup_iters:
            self.warmup.apply(opt.optimizer, self.iteration, warmup_iters, self.lr_lambda(self.current_epoch),
                              self.optim.momentum)
        images, targets = self._multi_scale(batch["images"], batch["targets"])
        images = to_memory_format(images, self.hparams.channels_last)
        buffers = [b.detach().clone() for b in self.model.buffers()]  # BN statistics the forward pass updates
        result = self._loss(self._train_forward(images), targets)
        loss = result.total * self._world()
        accumulate = self._accumulate(warmup_iters)
        if self._check_finite(loss, result.components, buffers):
            with self._backward_sync(step_follows=self.iteration % accumulate == 0):
                self.manual_backward(loss)
            self._gradients_pending = True
        if self.iteration % accumulate == 0:
            # every micro-step since the last step skipped (non-finite loss): no gradients. The step is an empty
            # one (counted, checkpoints follow the step count) except under fp16 AMP, whose GradScaler refuses it
            if self._gradients_pending or not self._grad_scaler():
                opt.step()  # clipping: on_before_optimizer_step
            opt.zero_grad()
            self._gradients_pending = False
        self.iteration += 1
        self.log_dict({f"train/{k}": v for k, v in result.components.items()}, prog_bar=False, on_step=True,
                      on_epoch=True, batch_size=images.shape[0])
        self.log_dict({"box": result.components["lead/box"], "obj": result.components["lead/obj"],
                       "cls": result.components["lead/cls"]}, prog_bar=True, on_step=True, batch_size=images.shape[0])
        self.log("lr", opt.optimizer.param_groups[1]["lr"], on_step=True, prog_bar=False)
        return loss.detach()

    def _grad_scaler(self) -> bool:
        """Whether the precision scales the loss (fp16 AMP's GradScaler)."""
        plugin = self.trainer.precision_plugin if self._trainer is not None else None
        return getattr(plugin, "scaler", None) is not None

    def on_before_optimizer_step(self, optimizer) -> None:
        """``optim.grad_clip``: the gradient norm clipped here, inside the optimizer step, where fp16 AMP has
        unscaled the gradients (in the training step they are still multiplied by the GradScaler's scale)."""
        if self.optim.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")

    def _check_finite(self, loss: torch.Tensor, components: dict, buffers: list[torch.Tensor] | None = None) -> bool:
        """A non-finite loss skips the step and is counted; ``max_nonfinite`` skipped among the last
        ``2 x max_nonfinite`` steps stop the run (a run that skips every other step diverged too).
        ``buffers``: the model's buffers before the forward pass, put back on a skipped step (the BN
        statistics that pass updated would otherwise carry the non-finite values into checkpoints)."""
        finite = bool(torch.isfinite(loss))  # one synchronisation per step
        self.nonfinite_recent.append(not finite)
        if finite:
            return True
        if buffers is not None:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
        self.nonfinite_total += 1
        if self._trainer is not None:
            self.log("train/nonfinite_skipped", float(self.nonfinite_total))
        parts = ", ".join(f"{k}={float(v):.4g}" for k, v in components.items())
        skipped = sum(self.nonfinite_recent)
        if skipped >= self.optim.max_nonfinite:
            raise NonFiniteLossError(f"{skipped} of the last {len(self.nonfinite_recent)} training steps had a "
                                     f"non-finite loss (optim.max_nonfinite={self.optim.max_nonfinite}), the last at "
                                     f"epoch {self.current_epoch} iteration {self.iteration} (optimizer step "
                                     f"{self.global_step}): {parts}. {NONFINITE_HINT}")
        log.warning("non-finite loss at iteration %d skipped (%s)", self.iteration, parts)
        return False

    def on_train_epoch_end(self) -> None:
        """A run whose steps were mostly skipped (non-finite losses) so far has diverged, even when too
        short for the window of :meth:`_check_finite`: it stops (:meth:`_stop_if_diverged`) once the
        epoch's checkpoints are written, instead of ending as a success."""
        steps = self.iteration  # every training batch of the run (a resumed run: its earlier epochs too)
        if steps and 2 * self.nonfinite_total > steps:
            self._diverged = (f"{self.nonfinite_total} of the {steps} training steps so far had a non-finite loss "
                              f"(skipped), by the end of epoch {self.current_epoch}: the run diverged. {NONFINITE_HINT}")

    def _stop_if_diverged(self) -> None:
        if self._diverged:
            raise NonFiniteLossError(self._diverged)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[FORMAT_KEY] = FORMAT  # what models/checkpoint_upgrades.py upgrades a file from
        checkpoint["yolov7"] = {"iteration": self.iteration, "nonfinite_total": self.nonfinite_total,
                                "class_maps": self.class_maps,  # the precision it trained in: a resumed run keeps it
                                "precision": str(self.trainer.precision) if self._trainer is not None else None}
        for key in ("state_dict", "current_model_state"):  # the weights in the default layout, whatever the memory format
            if isinstance(checkpoint.get(key), dict):
                checkpoint[key] = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in checkpoint[key].items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = upgrade(checkpoint, "training", "the checkpoint")["yolov7"]  # a file of any format, however read
        self.iteration = int(state["iteration"])
        self.nonfinite_total = int(state["nonfinite_total"])
        self.class_maps = state["class_maps"]

    # ---- evaluation -------------------------------------------------------------------------------
    def set_evaluation(self, settings: EvalSettings) -> None:
        """The settings of the next evaluation passes (``yolov7-eval``: its ``evaluation`` group and ``tta``)."""
        self.eval_settings = settings

    def _start_eval(self, split: str) -> None:
        index = self.trainer.datamodule.dataset(split).index  # the ground truth of the split evaluated
        self._eval_pass = EvalPass.start(split, self.eval_settings, index, batch_device(self))

    def _eval_step(self, batch: dict, split: str) -> None:
        with no_autocast(batch["images"].device):  # fp32: the reported mAP does not depend on the precision
            self._eval_step_fp32(batch, split)

    def _eval_step_fp32(self, batch: dict, split: str) -> None:
        run, settings = self._eval_pass, self.eval_settings
        t0 = run.clock()
        outputs = self.model.forward_heads(self._images(batch))
        t_forward = run.clock() - t0
        result = self._loss(outputs, batch["targets"])  # the training assigner
        self.log_dict({f"{split}/loss_{k}": v for k, v in result.components.items()}, on_epoch=True,
                      batch_size=batch["images"].shape[0], sync_dist=True)
        t0 = run.clock()
        if settings.augment:  # official --augment: three views, merged by the NMS below
            was_training = self.model.training
            self.model.eval()
            decoded = predict_augmented(self.model, batch["images"], self.model.max_stride)
            self.model.train(was_training)
        else:
            decoded = self.model.decode(outputs)
        t1 = run.clock()
        dets = non_max_suppression(decoded, **settings.nms_kwargs())
        t2 = run.clock()  # official test.py speed figures: inference (forward + decode / TTA) and NMS
        run.add(dets, batch["meta"], inference=t_forward + t1 - t0, nms=t2 - t1)

    def _end_eval(self, split: str) -> EvalResult:
        result, self._eval_pass = self._eval_pass.finish(), None
        self.log_dict({f"{split}/{k}": float(v) for k, v in result.scalars.items()}, sync_dist=False)
        if split == "val":  # image weights: absent classes take the overall mAP
            self.class_maps = result.class_maps()
        hand_out(self.trainer, self, result)  # the epoch records, the validation pictures, evaluate()
        return result

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
