"""The assignment strategies and the heads each one works with: the one table the config (which
sets ``model.aux_head`` from ``assigner.strategy``), the specs check and the assigner read.

* ``lead_only``: no aux head: the lead head is assigned from its own predictions, 3-cell rule,
  top-10 (the official ``ComputeLossOTA``; the ``lead`` rule of ``conf/assigner/lead_only.yaml``).
* ``independent``: each head is assigned from its own predictions with the fine rule.
* ``lead_guided``: both heads get the fine labels built from the lead head's predictions.
* ``coarse_to_fine`` (official ``ComputeLossAuxOTA``): from the lead head's predictions, fine
  labels (3-cell, top-20) for the lead and coarse labels (5-cell, top-20) for the aux head.
* ``plain`` (official ``loss_ota: 0``, the assignment of the official ``ComputeLoss``): no
  SimOTA; every candidate cell of the 3-cell rule whose anchor passes the ``anchor_t`` filter is a
  positive of the box that generated it (no cost, no de-duplication). The lead head uses the
  ``lead`` rule, the aux head (optional: official ``loss_ota: 0`` runs without it) its ``aux`` rule.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..errors import ConfigError


class Strategy(NamedTuple):
    """One row: the heads a strategy works with and how it labels them."""

    aux_head: bool           # the model's aux head under this strategy (the config's model.aux_head)
    aux_optional: bool       # the model may have it or not (plain: the official loss_ota: 0 has none)
    simota: bool             # False: every candidate cell is a positive of its own box (no cost)
    # how the aux head is labelled: "own" (its own predictions, the aux rule), "lead" (the lead head's
    # predictions, the aux rule), "lead_labels" (the lead head's labels), None (no aux head)
    aux_labels: Optional[str]


STRATEGIES: dict[str, Strategy] = {
    "lead_only": Strategy(aux_head=False, aux_optional=False, simota=True, aux_labels=None),
    "independent": Strategy(aux_head=True, aux_optional=False, simota=True, aux_labels="own"),
    "lead_guided": Strategy(aux_head=True, aux_optional=False, simota=True, aux_labels="lead_labels"),
    "coarse_to_fine": Strategy(aux_head=True, aux_optional=False, simota=True, aux_labels="lead"),
    "plain": Strategy(aux_head=False, aux_optional=True, simota=False, aux_labels="own"),
}


def get_strategy(name: str) -> Strategy:
    """The row of ``name``; an unknown name lists the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown assigner strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None


def aux_head_for(strategy: Optional[str]) -> Optional[bool]:
    """``model.aux_head`` of a config whose assigner is ``strategy`` (the ``aux_head_for`` resolver);
    without an assigner (``None``): ``None``, the variant's official default."""
    return None if strategy is None else get_strategy(strategy).aux_head


def check_heads(strategy: str, aux_head: bool, variant: str = "the model") -> None:
    """Stop when the strategy and the model's heads disagree (a run must do what its config says)."""
    row = get_strategy(strategy)
    if row.aux_optional or row.aux_head == aux_head:
        return
    if aux_head:
        aux = " | ".join(name for name, r in reversed(STRATEGIES.items()) if r.aux_head and not r.aux_optional)
        raise ConfigError(f"assigner {strategy!r} assigns the lead head only, but {variant} has the auxiliary head "
                         "(model.aux_head=true): drop the model.aux_head override (it follows the assigner) or "
                         f"choose an aux strategy: assigner={aux}")
    no_aux = " | ".join(name for name, r in STRATEGIES.items() if not r.aux_head and not r.aux_optional)
    raise ConfigError(f"assigner {strategy!r} needs the auxiliary head, but {variant} has none "
                     "(model.aux_head=false): drop the model.aux_head override (it follows the assigner) or "
                     f"choose assigner={no_aux}")
