"""Label assignment: candidate cells, batched SimOTA and the assigner strategies."""

from .assigner import Assigner, AssignResult, HeadAssignment, HeadRule
from .candidates import Candidates, find_candidates
from .simota import Assignment, simota
from .strategies import STRATEGIES, Strategy, aux_head_for, check_heads, get_strategy
from .targets import PaddedTargets, pad_targets

__all__ = [
           "AssignResult",
           "Assigner",
           "Assignment",
           "Candidates",
           "HeadAssignment",
           "HeadRule",
           "PaddedTargets",
           "STRATEGIES",
           "Strategy",
           "aux_head_for",
           "check_heads",
           "find_candidates",
           "get_strategy",
           "pad_targets",
           "simota",
]
