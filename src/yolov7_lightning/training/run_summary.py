"""What a training run reports: ``metrics.json``, the final line of ``yolov7-train`` and the numbers
every reader of a run takes (``yolov7-report``, the search objective, the W&B summary).

``metrics.json`` records the best epoch (the one ``checkpoints/best.ckpt`` holds) as ``best`` and the
last validated epoch as ``last`` (:func:`epoch_record`: ``epoch``, the evaluation's numbers, ``fitness``,
``checkpoint``). Its top-level numbers (``map``, ``map50``, ``fitness``, ...) are those of
:data:`REPORTED`, named by its ``top_level`` key; every reader takes a run's result through
:func:`reported`, so they all agree with the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["REPORTED", "budget_line", "epoch_record", "final_line", "objective", "publish_summary", "reported",
           "result_metrics", "run_metrics", "wandb_summary"]

# The epoch whose numbers are a run's result: the last one (its weights are the exported deploy.pt /
# model.onnx, and a finished schedule ends there). metrics.json's top level, yolov7-report's tables,
# the value yolov7-train returns to a sweeper (the Optuna objective) and the W&B summary take it.
REPORTED = "last"
EPOCHS = ("best", "last")
# the top-level keys of metrics.json that come from the reported epoch, and their name in its record
TOP_LEVEL = {"map": "map", "map50": "map50", "fitness": "fitness", "val_images": "num_images",
             "val_detections": "num_detections"}


def epoch_record(epoch: int, scalars: Mapping[str, Any], checkpoint: str | None,
                 per_class: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One validated epoch: ``epoch`` (0-based, as the checkpoint's ``epoch``), every number of the
    evaluation (the 12 COCO numbers, ``num_images``, ``num_detections``, ``fitness``), the
    ``checkpoint`` holding its weights and the per-class mAP@.5:.95."""
    return {"epoch": int(epoch), **{k: v for k, v in scalars.items()}, "checkpoint": checkpoint,
            "per_class": dict(per_class or {})}


def reported(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    """A run's result from its ``metrics.json``: the record its ``top_level`` names (a file written
    before the records: its top level)."""
    record = metrics.get(metrics.get("top_level") or "")
    return record if isinstance(record, Mapping) else metrics


def objective(metrics: Mapping[str, Any]) -> float | None:
    """The value a sweeper optimises: the reported epoch's fitness."""
    value = reported(metrics).get("fitness")
    return None if value is None else float(value)


def result_metrics(best: Mapping[str, Any] | None, last: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metrics.json``'s result keys: the top-level numbers of :data:`REPORTED`, ``top_level``,
    ``best`` and ``last``, ``best_checkpoint``/``last_checkpoint`` and the reported ``per_class``."""
    records = {"best": dict(best) if best else None, "last": dict(last) if last else None}
    chosen = records[REPORTED] or {}
    out: dict[str, Any] = {key: chosen.get(name) for key, name in TOP_LEVEL.items()}
    out["top_level"] = REPORTED
    out.update(records)
    out["best_checkpoint"] = (best or {}).get("checkpoint")
    out["last_checkpoint"] = (last or {}).get("checkpoint")
    out["per_class"] = chosen.get("per_class") if chosen else None
    return out


def _numbers(record: Mapping[str, Any]) -> str:
    return f"mAP@.5 {record['map50']:.4f}  mAP@.5:.95 {record['map']:.4f}"


def final_line(metrics: Mapping[str, Any]) -> str:
    """``best epoch 4: mAP@.5 ... | last epoch 5: ...  in 97 s (6 epochs)``; ``best = last (epoch 5): ...``
    when they are the same epoch; ``no evaluation ran`` without a validation."""
    best, last = metrics.get("best"), metrics.get("last")
    if not last:
        return "no evaluation ran"
    if best and best["epoch"] == last["epoch"]:
        text = f"best = last (epoch {last['epoch']}): {_numbers(last)}"
    else:
        text = (f"best epoch {best['epoch']}: {_numbers(best)} | " if best else "") + \
            f"last epoch {last['epoch']}: {_numbers(last)}"
    return f"{text}  in {metrics['train_seconds']:.0f} s ({metrics['epochs']} epochs; reported: {metrics['top_level']})"


def budget_line(metrics: Mapping[str, Any]) -> str | None:
    """``time budget 60 s: 7 of 7 planned epochs, 58 s (over by at most 9 s allowed)``; None without a budget."""
    b = metrics.get("budget")
    if not b:
        return None
    state = "" if b["finished"] else ", schedule unfinished"
    return (f"time budget {b['seconds']:.0f} s: {b['run_epochs']} of {b['planned_epochs']} planned epochs in "
            f"{b['elapsed_seconds']:.0f} s (at most {b['allowed_overshoot_seconds']:.0f} s over allowed{state})")


def wandb_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B run summary of a run: ``map``, ``map50``, ``fitness``, ``epoch`` of the reported epoch,
    ``top_level``, and ``best/<number>``, ``last/<number>`` for every number of each record."""
    chosen = reported(metrics)
    out: dict[str, Any] = {k: chosen.get(k) for k in ("map", "map50", "fitness", "epoch")}
    out["top_level"] = metrics.get("top_level")
    for name in EPOCHS:
        for key, value in (metrics.get(name) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}/{key}"] = value
    return out


@runtime_checkable
class RecordKeeper(Protocol):
    """What :func:`run_metrics` reads of :class:`~.callbacks.records.EpochRecords` (which builds its
    records with :func:`epoch_record`: this module does not import it back)."""

    last_path: str

    def records(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]: ...


def run_metrics(trainer) -> dict[str, Any]:
    """``metrics.json``'s keys that come from a fitted ``trainer``: :func:`result_metrics` of its
    :class:`~.callbacks.records.EpochRecords`, ``epochs`` (run) and, with a time budget, ``budget``
    (:meth:`~.budget.TimeBudget.summary`)."""
    from .budget import TimeBudget

    records = next((c for c in trainer.callbacks if isinstance(c, RecordKeeper)), None)
    best, last = records.records() if records is not None else (None, None)
    out = {**result_metrics(best, last), "epochs": trainer.current_epoch}
    if records is not None:  # written after every epoch, validated or not
        out["last_checkpoint"] = records.last_path
    budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
    if budget is not None:
        out["budget"] = budget.summary(trainer.current_epoch)
    return out


def publish_summary(trainer, metrics: Mapping[str, Any]) -> None:
    """:func:`wandb_summary` into the run summary of every W&B logger of ``trainer`` (rank 0)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(wandb_summary(metrics))
