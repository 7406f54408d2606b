"""The class list of a trained model against the data it is evaluated on.

``data=yolo`` without ``data.source.names`` numbers its classes ``class0 .. classN-1``; a model
trained with names (``data.source.names=[car]``) then takes its own names for the data, so the
commands that read data for a checkpoint (``yolov7-eval``) need no ``names`` repeated. Data that
does name its classes (``data.source.names``, a COCO file's categories, the shapes generator) must
name the model's classes, in the model's order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from .records import DatasetError
from .sources import as_source, yolo_class_count

log = logging.getLogger(__name__)


def _as_list(names: Sequence[str]) -> str:
    return "[" + ",".join(names) + "]"


def data_with_model_names(data: DictConfig, names: Sequence[str] | None, model: str) -> DictConfig:
    """``data`` (the ``data`` group) with ``source.names`` set to the model's ``names`` when the data
    is ``data=yolo`` without names (and without ``single_cls``, which names its one class); unchanged
    otherwise. Label indices beyond the model's classes are
    an error naming both counts (not a skip: the evaluation would leave those boxes out)."""
    source = data.source
    if not names or source.get("kind") != "yolo" or source.get("names") or data.get("single_cls"):
        return data
    count = yolo_class_count(as_source(OmegaConf.to_container(source, resolve=True)))
    if count > len(names):
        raise DatasetError(f"the labels under {source.root} have class ids up to {count - 1}, but {model} has "
                           f"{len(names)} class(es) {list(names)}; evaluate data of the model's classes")
    data = data.copy()
    with open_dict(data):
        data.source.names = list(names)
    log.info("class names from %s: %s", model, list(names))
    return data


def require_model_classes(data_names: Sequence[str], names: Sequence[str] | None, model: str, data: DictConfig) -> None:
    """A model with class names evaluated on data that names other classes (or the same in another
    order): a :class:`DatasetError` naming both lists and the fix."""
    if not names or list(data_names) == list(names):
        return
    given = data.source.get("names")
    where = "data.source.names" if given else f"the data's own class list (data.source.kind={data.source.kind})"
    fix = (f"give data.source.names={_as_list(names)} (the model's order), or leave it out to take the model's"
           if data.source.kind == "yolo" else
           f"give data.source.names={_as_list(names)} to map the data's classes onto the model's by name")
    raise DatasetError(f"{model} was trained on classes {list(names)}, but {where} gives {list(data_names)}: {fix}")
