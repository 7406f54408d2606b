"""Small typed building blocks of the YOLOv7 networks."""

from .conv import Conv, fold_bn, make_act, make_bn
from .elan import EELAN, ELAN, ELAN_REPCONV_MODES, EELANGrouped, ELANSpec, eelan_to_grouped, grouped_to_eelan
from .implicit import ImplicitA, ImplicitM
from .repconv import RepConv
from .spp import SPPCSPC, SPPCSPTiny
from .transitions import MP, SP, ConvDown, DownC, MPConv, ReOrg

__all__ = [
    "Conv", "fold_bn", "make_act", "make_bn", "ELAN", "ELAN_REPCONV_MODES", "EELAN", "EELANGrouped", "ELANSpec",
    "eelan_to_grouped", "grouped_to_eelan", "ImplicitA", "ImplicitM", "RepConv", "SPPCSPC",
    "SPPCSPTiny", "MP", "SP", "ConvDown", "DownC", "MPConv", "ReOrg",
]
