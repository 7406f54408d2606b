"""Official state-dict keys (``model.<layer>.<path>``) <-> ours, for the training and deploy configs.

The official model is an ``nn.Sequential`` of YAML layers. :func:`official_layers` walks our model
in YAML order and yields, per official layer, the module holding its tensors (or None for
Concat / MP / Upsample / Shortcut / ReOrg layers); every block knows its own layer sequence
(``official_layers()``). Tensor paths below a numbered module are the official ones.
"""

from __future__ import annotations

from torch import nn

from ..nn import MPConv
from .yolo import YOLOv7

FORMS = ("training", "deploy")


def _layers(block: nn.Module) -> list:
    return block.official_layers() if hasattr(block, "official_layers") else [block]


def official_layers(model: YOLOv7) -> list[nn.Module | None]:
    """Our modules in official layer order; index ``i`` is official layer ``model.<i>``.

    The aux convs take their official slots (before the detect layer) whenever the official
    config of the variant has them, even if this model was built without them (slots = None).
    """
    seq: list[nn.Module | None] = []
    for layer in model.backbone.stem:
        seq += _layers(layer)
    for stage in model.backbone.stages:
        if stage.down is not None:
            seq += _layers(stage.down)
        seq += _layers(stage.elan)
    seq += _layers(model.neck.spp)
    for td in model.neck.top_down:
        seq += [td.reduce, None, td.lateral, None] + _layers(td.elan)
    for bu in model.neck.bottom_up:
        seq += _layers(bu.down) + ([] if isinstance(bu.down, MPConv) else [None])  # MP-2 owns its concat
        seq += _layers(bu.elan)
    seq += list(model.lead_convs)
    if model.arch.aux_default:
        seq += list(model.aux_convs) if model.aux_convs is not None else [None] * model.arch.levels
    seq.append(model.detect)
    return seq


def key_map(model: YOLOv7, form: str = "training") -> dict[str, str]:
    """``{official key: our key}`` for the official ``form`` config of this model's variant.

    ``training``: the official training config (IDetect / IAuxDetect with implicit tensors).
    ``deploy``: the official deploy config (plain Detect, no implicit tensors, aux convs removed,
    so the detect layer index drops by the number of levels for the P6 models).
    Keys our model has but the official config lacks (an aux head on a P5 model) are left out.
    """
    if form not in FORMS:
        raise ValueError(f"unknown official form {form!r}; valid: {', '.join(FORMS)}")
    if model.deploy:
        raise ValueError("key_map needs the training form of the model (before to_deploy)")
    seq = official_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    detect_index = len(seq) - 1
    if form == "deploy" and model.arch.aux_default:
        detect_index -= model.arch.levels
    out: dict[str, str] = {}
    for i, module in enumerate(seq):
        if module is None:
            continue
        is_detect = module is model.detect
        if form == "deploy" and model.arch.aux_default and not is_detect and i >= detect_index:
            continue  # aux convs: not in the deploy config
        idx = detect_index if is_detect else i
        prefix = names[id(module)]
        for key in module.state_dict():
            if is_detect and key.startswith("m2.") and (form == "deploy" or not model.arch.aux_default):
                continue  # aux convs the official config does not have
            if is_detect and form == "deploy" and key.startswith(("ia.", "im.")):
                continue  # the deploy Detect has the implicit tensors folded in
            out[f"model.{idx}.{key}"] = f"{prefix}.{key}"
    return out
