"""Every upgrade of a file an older version of this project wrote, in one place.

The files this project writes carry their format number under :data:`FORMAT_KEY`: the training
checkpoints (``YOLOv7Module.on_save_checkpoint``) and the deploy files (``export/deploy.py``). A file
without it is format 0 (every file written before the number). :func:`upgrade` brings a file of any
older format to :data:`FORMAT`, one step per format, when it is read (``checkpoint_reader.py``); a
file of a newer format than this code is refused in one line naming the file.

========= ===========================================================================================
format    what changed (what the step from the format before does)
========= ===========================================================================================
0         no format number. The hyper-parameters of a training checkpoint may hold Hydra's
          ``_target_``/``_partial_`` keys (configs before the specs), the fine-tuning options
          ``model.weights``/``model.weights_partial`` (the whole ``model`` group was kept),
          ``assigner.aux_weight``/``assigner.coarse_bound`` (now the loss's), a ``lead_only`` rule
          with an aux strategy for a model without aux head (before ``lead_only`` was a strategy)
          and ``evaluation.predict_conf``/``predict_iou`` (before ``yolov7-predict`` had its own);
          the training state (``yolov7``) may lack some of :data:`TRAINING_STATE`. A deploy file has
          ``"version": 1``.
1         ``yolov7_format: 1``; hyper-parameters are the specs' fields; the training state is complete.
========= ===========================================================================================

The hyper-parameter upgrades (:func:`upgrade_hparams`, :func:`upgrade_evaluation`) also serve the
module's hyper-parameters given directly, without a file (``YOLOv7Module(**hparams)``, Lightning's
``load_from_checkpoint``): such a dict has no format number, and a current one passes unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CheckpointError
from .arch import get_arch
from .spec import ModelSpec

FORMAT_KEY = "yolov7_format"
FORMAT = 1  # the format this code writes

# format 0: assigner keys the loss reads now; the training command's fine-tuning options kept in the
# ``model`` group; the prediction thresholds ``evaluation`` carried
MOVED_TO_LOSS = ("aux_weight", "coarse_bound")
TRAINING_OPTIONS = ("weights", "weights_partial")
PREDICT_KEYS = ("predict_conf", "predict_iou")
# the training state a checkpoint keeps (``YOLOv7Module.on_save_checkpoint``), and a missing key's value
TRAINING_STATE = {"iteration": 0, "nonfinite_total": 0, "class_maps": None, "precision": None}


def hydra_key(key: Any) -> bool:
    """``_target_``, ``_partial_``, ...: Hydra's instantiation keys, which the configs of format-0
    checkpoints carry; they say nothing the spec does not."""
    return isinstance(key, str) and len(key) > 2 and key.startswith("_") and key.endswith("_")


def _plain(value: Any) -> Any:
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def upgrade_group(group: Mapping) -> dict:
    """A config group of the hyper-parameters without Hydra's ``_target_``-style keys."""
    return {k: v for k, v in _plain(group).items() if not hydra_key(k)}


def upgrade_model(model: Mapping) -> dict:
    """The ``model`` hyper-parameters: only what builds the network (no ``_target_``, no ``weights``)."""
    return {k: v for k, v in upgrade_group(model).items() if k not in TRAINING_OPTIONS}


def upgrade_assigner(assigner: Mapping, aux_head: bool) -> dict:
    """Format 0 carries a ``lead_only`` rule and an aux strategy even for models without an aux head;
    what ran there was lead-only OTA with that rule (``plain`` without aux head: the plain assignment
    with the offset of that rule). The moved keys (:data:`MOVED_TO_LOSS`) stay: :func:`upgrade_hparams`."""
    cfg = upgrade_group(assigner)
    rule = cfg.pop("lead_only", None)
    if rule is not None and not aux_head:
        if cfg.get("strategy") != "plain":
            cfg["strategy"] = "lead_only"
        cfg["lead"] = rule
    return cfg


def upgrade_evaluation(cfg: Mapping | None) -> dict:
    """The ``evaluation`` hyper-parameters without the prediction thresholds (:data:`PREDICT_KEYS`)."""
    return {k: v for k, v in dict(_plain(cfg) or {}).items() if k not in PREDICT_KEYS}


def _aux_head(model: Any) -> bool:
    get = model.get if isinstance(model, Mapping) else lambda key: getattr(model, key)
    return get_arch(get("variant") or ModelSpec.variant).has_aux_head(get("aux_head"))


def upgrade_hparams(hp: Mapping[str, Any]) -> dict[str, Any]:
    """A module's hyper-parameters (``model``, ``loss``, ``assigner``, ``optim``, ``schedule``,
    ``evaluation``, the others as they are) of format 0 in the current format. A group given as a
    spec (a dataclass) is left as it is; where a moved key is set in the loss too, the loss's value wins."""
    hp = dict(_plain(hp))
    for name in ("loss", "optim", "schedule"):
        if isinstance(hp.get(name), Mapping):
            hp[name] = upgrade_group(hp[name])
    if isinstance(hp.get("model"), Mapping):
        hp["model"] = upgrade_model(hp["model"])
    if isinstance(hp.get("assigner"), Mapping):
        assigner = dict(_plain(hp["assigner"]))
        assigner = upgrade_assigner(assigner, _aux_head(hp.get("model") or {}) if "lead_only" in assigner else False)
        moved = {k: assigner.pop(k) for k in MOVED_TO_LOSS if k in assigner}
        hp["assigner"] = assigner
        if moved:
            loss = hp.get("loss") or {}
            hp["loss"] = {**moved, **(dataclasses.asdict(loss) if dataclasses.is_dataclass(loss) else dict(loss))}
    if isinstance(hp.get("evaluation"), Mapping):
        hp["evaluation"] = upgrade_evaluation(hp["evaluation"])
    return hp


# ---- the steps: format n -> n + 1 ---------------------------------------------------------------
def _training_0_to_1(checkpoint: dict, path: str) -> dict:
    if isinstance(checkpoint.get("hyper_parameters"), Mapping):
        checkpoint["hyper_parameters"] = upgrade_hparams(checkpoint["hyper_parameters"])
    state = checkpoint.get("yolov7")
    checkpoint["yolov7"] = {**TRAINING_STATE, **(state if isinstance(state, Mapping) else {})}
    return checkpoint


def _deploy_0_to_1(checkpoint: dict, path: str) -> dict:
    version = checkpoint.get("version", 0)
    if int(version) > 1:  # the number format-0 deploy files had (1), and checked
        raise CheckpointError(f"{path}: deploy file version {version} is newer than this code (1)")
    return checkpoint


STEPS: dict[str, list[Callable[[dict, str], dict]]] = {  # per kind of file: STEPS[kind][n] upgrades format n
    "training": [_training_0_to_1],
    "deploy": [_deploy_0_to_1],
}
assert all(len(steps) == FORMAT for steps in STEPS.values()), "one step per format and kind"


def format_of(checkpoint: Mapping[str, Any], path: str) -> int:
    """The format of a file this project wrote (0 without the key); a newer format than this code
    reads, or a value that is no format number, is a :class:`CheckpointError` naming the file."""
    version = checkpoint.get(FORMAT_KEY, 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"{path}: '{FORMAT_KEY}' is {version!r}, not a format number")
    if version > FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this version of yolov7-lightning "
                              f"reads (up to {FORMAT}); read it with the version that wrote it, or a newer one")
    return version


def upgrade(checkpoint: Mapping[str, Any], kind: str, path: str) -> dict[str, Any]:
    """``checkpoint`` (a ``training`` checkpoint or a ``deploy`` file, as read from ``path``) in the
    current format: a new dict, the object read is left as it is."""
    version = format_of(checkpoint, path)
    out = dict(checkpoint)
    for step in STEPS[kind][version:]:
        out = step(out, path)
    out[FORMAT_KEY] = FORMAT
    return out
