"""Label assignment: candidate cells, batched SimOTA and the assigner strategies."""

from .assigner import Assigner, AssignResult, HeadAssignment, HeadRule
from .candidates import Candidates, find_candidates
from .simota import Assignment, simota
from .targets import PaddedTargets, pad_targets

__all__ = ["AssignResult", "Assigner", "HeadAssignment", "HeadRule", "Candidates", "find_candidates", "Assignment",
           "simota", "PaddedTargets", "pad_targets"]
