"""ONNX export (TorchScript-based exporter, ``dynamo=False``: no extra package needed).

Graph interface:

- input ``images``: float32 ``[B, 3, H, W]``, RGB in [0, 1], letterboxed (pad 114/255), H and W
  multiples of the max stride (32 for P5, 64 for P6);
- without NMS, output ``predictions`` ``[B, N, 5 + nc]``: cx, cy, w, h (input pixels), sigmoid
  objectness, sigmoid class scores (the PyTorch eval output);
- with NMS, output ``detections`` ``[K, 7]``: batch index, x1, y1, x2, y2, score, class (see
  :mod:`yolov7_lightning.export.nms`).

``B`` is the symbolic ``batch`` when ``dynamic_batch``, ``H``/``W`` are ``height``/``width`` when
``dynamic_size``. The model's facts travel as ONNX metadata (``metadata_props``): ``names`` (JSON),
``stride``, ``image_size``, ``variant``, ``num_classes``, ``nms`` (JSON of the NMS options or null).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .nms import EndToEnd

MIN_OPSET = 11  # NonMaxSuppression


def export_onnx(model: torch.nn.Module, path: str | Path, example: torch.Tensor, *, opset: int = 17,
                dynamic_batch: bool = True, dynamic_size: bool = False, nms: Mapping[str, Any] | None = None,
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Export the deploy-form ``model`` (eval mode) traced on ``example`` ``[B, 3, H, W]``.

    ``nms``: ``None`` for the raw ``predictions`` graph, else :class:`EndToEnd` kwargs
    (``conf_thres``, ``iou_thres``, ``max_det``, ``multi_label``) for the ``detections`` graph.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} < {MIN_OPSET} (NonMaxSuppression, Resize)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = EndToEnd(model, **nms).eval() if nms is not None else model.eval()
    output = "detections" if nms is not None else "predictions"
    axes: dict[str, dict[int, str]] = {"images": {}, output: {}}
    if dynamic_batch:
        axes["images"][0] = "batch"
        if nms is None:
            axes[output][0] = "batch"
    if dynamic_size:
        axes["images"].update({2: "height", 3: "width"})
        if nms is None:
            axes[output][1] = "anchors"
    if nms is not None:
        axes[output][0] = "num_dets"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings on shape checks / deprecation of the TorchScript exporter
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=[output], dynamic_axes={k: v for k, v in axes.items() if v},
                          do_constant_folding=True)
    if metadata or nms is not None:
        add_metadata(path, {**dict(metadata or {}), "nms": json.dumps(dict(nms) if nms is not None else None)})
    return path


def add_metadata(path: str | Path, items: Mapping[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in items.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, text
    onnx.save(proto, str(path))


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``threads``: intra-op threads, default ORT's)."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover
        raise ImportError("ONNX Runtime is needed (a dependency of yolov7-lightning): pip install onnxruntime") from e
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
