"""YOLOv7 variants, heads, scaling, deploy fusion and official-weight import."""

from .arch import ARCHS, Arch, get_arch
from .factory import build_model
from .head_geometry import HeadGeometry
from .heads import HeadOutputs, IDetect
from .spec import ModelSpec, ScalingSpec
from .yolo import YOLOv7

__all__ = ["ARCHS", "Arch", "get_arch", "build_model", "HeadGeometry", "HeadOutputs", "IDetect", "ModelSpec",
           "ScalingSpec", "YOLOv7"]
