"""Export: the deploy checkpoint, ONNX with and without end-to-end NMS, TorchScript, each self-checked.

    from yolov7_lightning.export import ExportOptions, export
    report = export("runs/.../last.ckpt", "out/", ExportOptions(formats=("deploy", "onnx"), nms=True))

See docs/export.md.
"""

from .check import FP16_TOLERANCES, ExportCheckError, Tolerances, compare_detections, prediction_diff
from .deploy import DEPLOY_FORMAT, ExportSource, load_deploy, load_source, recorded_spec, save_deploy, source_from_model
from .exporter import FORMATS, REPORT_NAME, ExportOptions, export
from .nms import EndToEnd, Select, split_detections
from .onnx_export import export_onnx, onnx_session

__all__ = ["DEPLOY_FORMAT", "FORMATS", "FP16_TOLERANCES", "REPORT_NAME", "EndToEnd", "ExportCheckError", "ExportOptions", "ExportSource",
           "Select", "Tolerances", "compare_detections", "export", "export_onnx", "load_deploy", "load_source",
           "onnx_session", "prediction_diff", "recorded_spec", "save_deploy", "source_from_model", "split_detections"]
