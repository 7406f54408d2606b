"""Label assignment: candidate cells, batched SimOTA and the assigner strategies."""

from .assigner import Assigner, AssignResult, HeadAssignment, HeadRule, check_heads, upgrade_legacy_config
from .candidates import Candidates, find_candidates
from .simota import Assignment, simota
from .targets import PaddedTargets, pad_targets

__all__ = [
           "AssignResult",
           "Assigner",
           "Assignment",
           "Candidates",
           "HeadAssignment",
           "HeadRule",
           "PaddedTargets",
           "check_heads",
           "find_candidates",
           "pad_targets",
           "simota",
           "upgrade_legacy_config",
]
