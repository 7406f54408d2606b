"""Training for a time budget (``schedule.minutes``): the number of epochs fitted to the budget as the
run goes, so the learning-rate schedule, the warm-up and close-mosaic reach their end within it.

* :func:`plan_epochs`: the pure rule. After ``done`` epochs and ``elapsed`` seconds, with the mean
  measured epoch (training, validation, checkpoints) and the reserve for the end of the run (the
  deploy export, timed once by a trial export after the first epoch; a final test pass, as long as a
  validation), the run's epoch count: as many epochs as the budget holds, at
  least one more than done (the last epoch must run with the schedule's last learning rate), at most
  ``schedule.epochs`` (the cap), and never more than the plan already made once it is reached.
* :func:`allowed_overshoot`: what a run may exceed its budget by: one mean epoch or 5 % of the budget,
  whichever is bigger. A run goes over only when its one remaining epoch does not fit; when even that
  epoch would exceed the allowance, the run stops at once (its schedule unfinished, a warning says so).
* :class:`TimeBudget`: the callback. The clock starts when ``fit`` starts; every epoch end (rank 0's
  decision, broadcast to every DDP rank) re-plans and sets the trainer's ``max_epochs``, the LR
  schedule's length (``LRLambda.epochs``: one-cycle and linear are functions of the fraction
  ``epoch / epochs``, so a plan that moves by a few epochs moves the LR by little), the warm-up
  (``warmup_epochs x planned / schedule.epochs``) and close-mosaic (``augment.close_mosaic x planned /
  schedule.epochs``, rounded, at least 1 when set). The first epoch runs with the configured schedule
  (nothing is measured before it). Its state (measured epochs, elapsed seconds, the plan and its
  history) is saved in checkpoints, so a resumed run carries on from the time it had spent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import lightning as L

from .callbacks.export import DeployExport

log = logging.getLogger(__name__)

__all__ = ["OVERSHOOT_FRACTION", "TimeBudget", "allowed_overshoot", "plan_epochs", "scaled_close_mosaic"]

OVERSHOOT_FRACTION = 0.05  # of the budget: the smallest overshoot allowed (else one mean epoch)


def allowed_overshoot(budget: float, epoch_seconds: float) -> float:
    """Seconds a run may end after its budget: one mean epoch or 5 % of the budget, the bigger."""
    return max(epoch_seconds, OVERSHOOT_FRACTION * budget)


def plan_epochs(budget: float, elapsed: float, done: int, epoch_seconds: float, end_seconds: float, cap: int,
                planned: int) -> int:
    """The run's epoch count after ``done`` epochs (``done >= 1``) and ``elapsed`` seconds of a
    ``budget`` (seconds), with ``epoch_seconds`` per epoch and ``end_seconds`` after the last one;
    ``planned``: the current plan, ``cap``: the most epochs the run may have.

    ``done`` when the plan is reached (its last epoch, with the schedule's last learning rate, has
    run) or when one more epoch would end past ``budget + allowed_overshoot``; otherwise the epochs
    that end within the budget, at least ``done + 1``, at most ``cap``."""
    if done < 1 or epoch_seconds <= 0 or budget <= 0:
        raise ValueError(f"plan_epochs: done={done}, epoch_seconds={epoch_seconds}, budget={budget}: "
                         "need done >= 1 and positive seconds")
    if done >= min(planned, cap):
        return done
    more = math.floor((budget - elapsed - end_seconds) / epoch_seconds)
    if more < 1:
        over = elapsed + epoch_seconds + end_seconds - budget
        more = 1 if over <= allowed_overshoot(budget, epoch_seconds) else 0
    return min(cap, done + more)


def scaled_close_mosaic(close_mosaic: int, planned: int, cap: int) -> int:
    """``augment.close_mosaic`` (epochs of a ``cap``-epoch run) for a run of ``planned`` epochs."""
    if close_mosaic <= 0:
        return 0
    return max(1, round(close_mosaic * planned / cap))


@dataclass
class BudgetPlan:
    """The plan in force: ``epochs`` planned, the fitted warm-up (epochs) and close-mosaic (epochs)."""

    epochs: int
    warmup_epochs: float
    close_mosaic: int


class TimeBudget(L.Callback):
    """Fits the run to ``minutes`` (see the module docstring). The reserve each plan keeps for the end
    of the run: ``end_trial`` (a function of the LightningModule returning the seconds of one trial
    of what the end runs: run once, after the first epoch, on rank 0; default: the trial export of
    the trainer's :class:`~.callbacks.export.DeployExport`, when it has one) plus ``end_passes``
    validation passes (a test pass after fit) at their measured mean. Put it after the export
    callback, whose time at the end of fit it measures."""

    def __init__(self, minutes: float, end_trial: Callable[[L.LightningModule], float] | None = None,
                 end_passes: int = 0):
        if not minutes or minutes <= 0:
            raise ValueError(f"schedule.minutes={minutes}: a time budget must be positive")
        self.budget = 60.0 * float(minutes)
        self.end_trial, self.end_passes = end_trial, int(end_passes)
        self._end_trial = end_trial  # end_trial, or the one found at setup
        self.trial_seconds: float | None = None  # the measured trial of the end (export)
        self.epoch_seconds: list[float] = []   # every finished epoch (training, validation, checkpoints)
        self.val_seconds: list[float] = []     # every validation pass of the training
        self.startup_seconds = 0.0             # fit start to the first epoch, summed over resumed segments
        self.spent_before = 0.0                # seconds of earlier segments (a resumed run)
        self.plan: BudgetPlan | None = None
        self.history: list[dict[str, Any]] = []  # one entry per re-plan
        self.epochs_log: list[dict[str, Any]] = []  # per epoch: seconds, learning rate, mosaic on/off
        self.end_seconds: float | None = None  # measured: last epoch end to fit end (export included)
        self.total_seconds: float | None = None
        self.finished: bool | None = None      # the schedule ran to its planned end
        self.stopped_short = False             # stopped before its plan: the budget held too few epochs
        self.cap: int | None = None
        self._trainer = self._module = None
        self._segment_start = self._epoch_start = self._val_start = self._last_epoch_end = None

    # ---- clocks -------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.spent_before + (time.perf_counter() - self._segment_start if self._segment_start else 0.0)

    def mean_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds)

    def end_reserve(self) -> float:
        passes = self.end_passes * (sum(self.val_seconds) / len(self.val_seconds) if self.val_seconds else 0.0)
        return (self.trial_seconds or 0.0) + passes

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._segment_start = time.perf_counter()
            self._trainer, self._module = trainer, pl_module
            self.cap = self._cap(pl_module)
            if self.end_trial is None:  # the deploy export at the end of fit, if the trainer runs one
                export = next((c for c in getattr(trainer, "callbacks", []) if isinstance(c, DeployExport)), None)
                self._end_trial = export.trial_seconds if export is not None else None

    # ---- applying a plan ----------------------------------------------------------------------------
    @staticmethod
    def _cap(pl_module: L.LightningModule) -> int:
        return int(pl_module.schedule.epochs)

    def _fitted(self, trainer: L.Trainer, pl_module: L.LightningModule, epochs: int) -> BudgetPlan:
        cap = self._cap(pl_module)
        augment = getattr(trainer.datamodule, "augment", None) if trainer.datamodule is not None else None
        close = int(getattr(augment, "close_mosaic", 0) or 0)
        warmup = pl_module.schedule.warmup_epochs * epochs / cap
        return BudgetPlan(epochs, warmup, scaled_close_mosaic(close, epochs, cap))

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        plan = self.plan
        trainer.fit_loop.max_epochs = plan.epochs
        pl_module.lr_lambda.epochs = plan.epochs
        pl_module.warmup = replace(pl_module.warmup, epochs=plan.warmup_epochs)
        pl_module.close_mosaic = plan.close_mosaic

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.plan is None or not self.epoch_seconds:  # fresh: the configured schedule until an epoch is measured
            self.plan = self._fitted(trainer, pl_module, self._cap(pl_module))
            self._apply(trainer, pl_module)
            log.info("time budget %.0f s: the first epoch runs the configured schedule (%d epochs at most), "
                     "then the epochs are fitted to the budget", self.budget, self.plan.epochs)
        else:  # resumed: the plan of the checkpoint, re-fitted to the time spent
            self._replan(trainer, pl_module, done=trainer.current_epoch, reason="resumed")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if self._last_epoch_end is None:
            self.startup_seconds += now - self._segment_start
        self._epoch_start = now

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None and not trainer.sanity_checking:
            self.val_seconds.append(time.perf_counter() - self._val_start)
        self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._epoch_start)
        self._last_epoch_end = now
        epoch = trainer.current_epoch
        self.epochs_log.append(self._epoch_entry(self.epoch_seconds[-1]))
        self._replan(trainer, pl_module, done=epoch + 1, reason=f"epoch {epoch} done")

    def _replan(self, trainer: L.Trainer, pl_module: L.LightningModule, done: int, reason: str) -> None:
        decision = None
        if trainer.is_global_zero:
            if self._end_trial is not None and self.trial_seconds is None:
                self.trial_seconds = self._end_trial(pl_module)
                log.info("time budget: the export at the end takes about %.1f s (measured once)", self.trial_seconds)
            elapsed, per_epoch, reserve = self.elapsed(), self.mean_epoch(), self.end_reserve()
            epochs = plan_epochs(self.budget, elapsed, done, per_epoch, reserve, self._cap(pl_module), self.plan.epochs)
            decision = {"done": done, "elapsed": round(elapsed, 3), "epoch_seconds": round(per_epoch, 3),
                        "end_reserve": round(reserve, 3), "planned": epochs}
        decision = trainer.strategy.broadcast(decision, src=0)  # every rank follows rank 0's plan
        before = self.plan.epochs
        self.plan = self._fitted(trainer, pl_module, decision["planned"])
        self._apply(trainer, pl_module)
        self.history.append(decision)
        change = f"{before} -> {self.plan.epochs} epochs" if self.plan.epochs != before else f"{before} epochs, kept"
        log.info("time budget (%s): %d of %.0f s spent, %.1f s per epoch, %.1f s reserved for the end: %s "
                 "(warm-up %.2f epochs, close-mosaic %d)", reason, decision["elapsed"], self.budget,
                 decision["epoch_seconds"], decision["end_reserve"], change, self.plan.warmup_epochs,
                 self.plan.close_mosaic)
        if done >= self.plan.epochs and done < before:
            self.stopped_short = True
            log.warning("time budget: one more epoch would end more than %.0f s after the %.0f s budget; the run "
                        "stops after %d epochs with its schedule unfinished (a budget of at least a few epochs "
                        "finishes it)", allowed_overshoot(self.budget, decision["epoch_seconds"]), self.budget, done)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Runs after the deploy export (this callback comes after it): the end's measured cost."""
        now = time.perf_counter()
        if self._last_epoch_end is not None:
            self.end_seconds = now - self._last_epoch_end
        self.total_seconds = self.elapsed()
        self.finished = self.plan is not None and not self.stopped_short and trainer.current_epoch == self.plan.epochs

    # ---- record ---------------------------------------------------------------------------------------
    def _in_epoch(self) -> bool:
        return self._epoch_start is not None and (self._last_epoch_end or 0.0) < self._epoch_start

    def _epoch_entry(self, seconds: float) -> dict[str, Any]:
        """The epoch being finished: its seconds, the learning rate it ended with (the weights group)
        and whether its batches were drawn with mosaic (the training sampler's setting)."""
        trainer, module = self._trainer, self._module
        epoch = trainer.current_epoch
        off = getattr(getattr(trainer.train_dataloader, "batch_sampler", None), "mosaic_off_epoch", None)
        return {"epoch": epoch, "seconds": round(seconds, 3), "lr": module.optimizers().optimizer.param_groups[1]["lr"],
                "mosaic": off is None or epoch < off}

    def summary(self, epochs_run: int) -> dict[str, Any]:
        """What ``metrics.json`` records as ``budget``."""
        per_epoch = self.mean_epoch() if self.epoch_seconds else None
        return {
            "minutes": self.budget / 60, "seconds": self.budget,
            "planned_epochs": self.plan.epochs if self.plan else None,
            "run_epochs": epochs_run, "cap_epochs": self.cap, "epoch_seconds": per_epoch,
            "startup_seconds": round(self.startup_seconds, 3), "export_trial_seconds": self.trial_seconds,
            "end_seconds": None if self.end_seconds is None else round(self.end_seconds, 3),
            "elapsed_seconds": None if self.total_seconds is None else round(self.total_seconds, 3),
            "allowed_overshoot_seconds": allowed_overshoot(self.budget, per_epoch or 0.0),
            "warmup_epochs": self.plan.warmup_epochs if self.plan else None,
            "close_mosaic": self.plan.close_mosaic if self.plan else None,
            "finished": self.finished, "replans": self.history, "epochs_log": self.epochs_log,
        }

    def state_dict(self) -> dict[str, Any]:
        epochs, epochs_log = list(self.epoch_seconds), list(self.epochs_log)
        if self._in_epoch():  # saved at this epoch's validation end: the epoch counts as done on resume
            epochs.append(time.perf_counter() - self._epoch_start)
            epochs_log.append(self._epoch_entry(epochs[-1]))
        return {"budget": self.budget, "epoch_seconds": epochs, "val_seconds": list(self.val_seconds),
                "startup_seconds": self.startup_seconds, "elapsed": self.elapsed(),
                "plan": None if self.plan is None else vars(self.plan).copy(), "history": list(self.history),
                "epochs_log": epochs_log, "stopped_short": self.stopped_short, "trial_seconds": self.trial_seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch_seconds = [float(s) for s in state.get("epoch_seconds", [])]
        self.val_seconds = [float(s) for s in state.get("val_seconds", [])]
        self.startup_seconds = float(state.get("startup_seconds", 0.0))
        self.spent_before = float(state.get("elapsed", 0.0))
        self.stopped_short = bool(state.get("stopped_short", False))
        self.trial_seconds = state.get("trial_seconds")
        self.plan = BudgetPlan(**state["plan"]) if state.get("plan") else None
        self.history = list(state.get("history", []))
        self.epochs_log = list(state.get("epochs_log", []))
        if state.get("budget") and float(state["budget"]) != self.budget:
            log.info("time budget: %.0f s (the checkpoint's was %.0f s)", self.budget, float(state["budget"]))
