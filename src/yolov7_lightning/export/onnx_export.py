"""ONNX export (TorchScript-based exporter, ``dynamo=False``: no extra package needed).

Graph interface:

- input ``images``: float32 ``[B, 3, H, W]``, RGB in [0, 1], letterboxed (pad 114/255), H and W
  multiples of the max stride (32 for P5, 64 for P6);
- without NMS, output ``predictions`` ``[B, N, 5 + nc]``: cx, cy, w, h (input pixels), sigmoid
  objectness, sigmoid class scores (the PyTorch eval output);
- with NMS, output ``detections`` ``[K, 7]``: batch index, x1, y1, x2, y2, score, class (see
  :mod:`yolov7_lightning.export.nms`). This graph is the ``predictions`` graph followed by the graph
  of the NMS stage (:class:`~.nms.Select`, its internal names prefixed ``nms/``), joined at the
  tensor ``predictions``: :func:`with_predictions_output` exposes it, :func:`nms_part` cuts the NMS
  part out, so the self-checks compare the model part with a tolerance and the NMS part exactly.

``B`` is the symbolic ``batch`` when ``dynamic_batch``, ``H``/``W`` are ``height``/``width`` when
``dynamic_size``. The model's facts travel as ONNX metadata (``metadata_props``): ``names`` (JSON),
``stride``, ``image_size``, ``variant``, ``num_classes``, ``precision``, ``simplified``, ``nms`` (JSON
of the NMS options or null). ``half``: the network in fp16 behind the same float32 interface;
``simplify``: each part simplified with onnxslim before they are joined.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_save_onnx
from .nms import Select
from ..errors import ConfigError

MIN_OPSET = 11  # NonMaxSuppression
NMS_PREFIX = "nms/"  # names of the NMS part of an end-to-end graph


def export_onnx(model: torch.nn.Module, path: str | Path, example: torch.Tensor, *, opset: int = 17,
                dynamic_batch: bool = True, dynamic_size: bool = False, nms: Mapping[str, Any] | None = None,
                metadata: Mapping[str, Any] | None = None, half: bool = False, simplify: bool = False) -> Path:
    """Export the deploy-form ``model`` (eval mode) traced on ``example`` ``[B, 3, H, W]``.

    ``nms``: ``None`` for the raw ``predictions`` graph, else :class:`~.nms.Select` kwargs
    (``conf_thres``, ``iou_thres``, ``max_det``, ``multi_label``) for the ``detections`` graph.
    ``half``: the network computes in fp16 (inputs and outputs stay float32: a Cast at each end; the
    NMS part stays float32, as the ONNX op requires). ``simplify``: each part is simplified with
    onnxslim (constant folding, fusions, dead nodes) before they are joined.
    """
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} < {MIN_OPSET} (NonMaxSuppression, Resize)")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes: dict[str, dict[int, str]] = {"images": {}, "predictions": {}}
    if dynamic_batch:
        axes["images"][0] = axes["predictions"][0] = "batch"
    if dynamic_size:
        axes["images"].update({2: "height", 3: "width"})
        axes["predictions"][1] = "anchors"
    net = Half(model).eval() if half else model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        _trace(net, example, Path(tmp) / "model.onnx", "images", "predictions", axes, opset)
        part = _simplified(onnx.load(str(Path(tmp) / "model.onnx")), simplify)
        if nms is not None:
            with torch.no_grad():
                pred = net(example)
            _trace(Select(**nms).eval(), pred, Path(tmp) / "nms.onnx", "predictions", "detections",
                   {"predictions": {0: "batch", 1: "anchors"}, "detections": {0: "num_dets"}}, opset)
            part = compose(part, _simplified(onnx.load(str(Path(tmp) / "nms.onnx")), simplify))
    if metadata or nms is not None:
        set_metadata(part, {**dict(metadata or {}), "nms": json.dumps(dict(nms) if nms is not None else None)})
    return atomic_save_onnx(part, path)  # the whole graph or nothing: a failed write keeps the earlier file


class Half(torch.nn.Module):
    """An fp16 copy of ``model`` behind a float32 interface: ``model.half()(x.half()).float()``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).half().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def _simplified(proto: Any, simplify: bool) -> Any:
    if not simplify:
        return proto
    try:
        import onnxslim
    except ImportError as e:  # pragma: no cover
        raise ImportError("simplify=true needs onnxslim: pip install onnxslim") from e
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    slim = onnxslim.slim(proto)
    if ([i.name for i in slim.graph.input], [o.name for o in slim.graph.output]) != names:
        raise RuntimeError(f"onnxslim changed the graph's inputs/outputs {names}")
    slim.ir_version = proto.ir_version
    return slim


def _trace(net: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str,
           axes: Mapping[str, Mapping[int, str]], opset: int) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings on shape checks / deprecation of the TorchScript exporter
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset, input_names=[input_name],
                          output_names=[output_name], dynamic_axes={k: dict(v) for k, v in axes.items() if v},
                          do_constant_folding=True)


def compose(model: Any, nms: Any) -> Any:
    """One graph: ``model`` (``images`` -> ``predictions``) then ``nms`` (``predictions`` -> ``detections``)."""
    import onnx
    from onnx import compose as onnx_compose

    nms = _prefixed(nms, NMS_PREFIX)
    merged = onnx_compose.merge_models(model, nms, io_map=[("predictions", "predictions")],
                                       producer_name=model.producer_name, producer_version=model.producer_version)
    merged.ir_version = model.ir_version
    onnx.checker.check_model(merged)
    return merged


def _prefixed(proto: Any, prefix: str) -> Any:
    """A copy of ``proto`` with ``prefix`` before every node, initializer and inner tensor name (the
    graph's inputs and outputs keep theirs)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output} | {""}
    name = lambda n: n if n in keep else prefix + n
    for node in g.node:
        node.name = prefix + node.name
        node.input[:] = [name(n) for n in node.input]
        node.output[:] = [name(n) for n in node.output]
    for t in g.initializer:
        t.name = name(t.name)
    for v in g.value_info:
        v.name = name(v.name)
    return out


def with_predictions_output(path: str | Path) -> Any:
    """The end-to-end graph at ``path`` with ``predictions`` as a second output (a ModelProto)."""
    import onnx

    proto = onnx.load(str(path))
    if "predictions" not in {o.name for o in proto.graph.output}:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info("predictions"))
    return proto


def nms_part(path: str | Path) -> Any:
    """The NMS part of the end-to-end graph at ``path``: ``predictions`` -> ``detections`` (a ModelProto)."""
    import onnx

    proto = onnx.load(str(path))
    graph = onnx.helper.make_graph(
        [n for n in proto.graph.node if n.name.startswith(NMS_PREFIX)], "nms",
        [onnx.helper.make_tensor_value_info("predictions", onnx.TensorProto.FLOAT, None)],
        [o for o in proto.graph.output if o.name == "detections"],
        [t for t in proto.graph.initializer if t.name.startswith(NMS_PREFIX)])
    part = onnx.helper.make_model(graph, opset_imports=proto.opset_import)
    part.ir_version = proto.ir_version
    return part


def set_metadata(proto: Any, items: Mapping[str, Any]) -> None:
    """Set metadata entries (text; other values as JSON) of a ModelProto."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in items.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, text


def onnx_session(path: Any, threads: int | None = None, providers: tuple[str, ...] = ("CPUExecutionProvider",)):
    """An ONNX Runtime session of a file or a ModelProto (``threads``: intra-op threads, default ORT's), on
    ``providers`` (default: the CPU; ``("CUDAExecutionProvider",)`` where ``onnxruntime-gpu`` provides it)."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover
        raise ImportError("ONNX Runtime is needed (a dependency of yolov7-lightning): pip install onnxruntime") from e
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    model = path.SerializeToString() if hasattr(path, "SerializeToString") else str(path)
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise RuntimeError(f"ONNX Runtime {ort.__version__} has no {', '.join(missing)} "
                           f"(available: {', '.join(ort.get_available_providers())})")
    return ort.InferenceSession(model, options, providers=list(providers))
