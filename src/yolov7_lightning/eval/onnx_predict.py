"""ONNX Runtime prediction: the :class:`~.detector.Detector` of an exported graph, with the output of
the PyTorch one (:class:`~.detector.TorchDetector`: the network's eval output + ``non_max_suppression``).

    det = OnnxDetector("model.onnx")
    dets = det.detect(x)   # x: [B, 3, H, W] float in [0, 1]; thresholds: nms.PREDICT unless given

Works with both graphs of ``yolov7-export``: ``predictions`` (NMS here, with torchvision, the same
function as the PyTorch path) and ``detections`` (NMS inside the graph, thresholds fixed at export:
``conf_thres``/``max_det`` given here can only tighten them, ``iou_thres`` is the graph's (a warning if another is given)).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .detector import Detector
from .nms import PREDICT
from ..errors import MissingInputError, UserError


class OnnxDetector(Detector):
    """An exported YOLOv7 ONNX graph on ONNX Runtime (CPU by default).

    Attributes: ``names`` (class names, or ``None``), ``stride`` (max stride: input sides must be
    multiples of it), ``image_size`` ((h, w) it was exported/checked at), ``has_nms``, ``nms``
    (the graph's NMS options or ``None``), ``fixed_batch`` / ``fixed_size`` (``None`` when dynamic).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.names = json.loads(meta["names"]) if "names" in meta else None
        self.stride = int(meta.get("stride", 32))
        self.image_size = tuple(json.loads(meta["image_size"])) if "image_size" in meta else None
        self.nms = json.loads(meta["nms"]) if meta.get("nms") not in (None, "null") else None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.has_nms = self.output_name == "detections"
        dims = inp.shape  # ints for fixed axes, strings for symbolic ones
        self.fixed_batch = dims[0] if isinstance(dims[0], int) else None
        self.fixed_size = (dims[2], dims[3]) if all(isinstance(d, int) for d in dims[2:]) else None

    def raw(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The graph's output for ``images`` ``[B, 3, H, W]`` (a fixed-batch graph is run image by image)."""
        x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else \
            np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {x.shape}")
        if self.fixed_size is not None and tuple(x.shape[2:]) != tuple(self.fixed_size):
            raise UserError(f"this ONNX model was exported for {self.fixed_size[0]}x{self.fixed_size[1]} inputs, "
                            f"got {x.shape[2]}x{x.shape[3]}; letterbox to that size or export with dynamic_size=true")
        if x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise UserError(f"input {x.shape[2]}x{x.shape[3]} is not a multiple of the max stride {self.stride}")
        if self.fixed_batch is not None and len(x) != self.fixed_batch:
            if self.fixed_batch != 1:
                raise UserError(f"this ONNX model has a fixed batch of {self.fixed_batch}, got {len(x)} images")
            outs = [torch.from_numpy(self.session.run(None, {self.input_name: x[i:i + 1]})[0]) for i in range(len(x))]
            if self.has_nms:
                for i, o in enumerate(outs):
                    o[:, 0] = i
            return torch.cat(outs, 0)
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])

    def detect(self, images: torch.Tensor | np.ndarray, conf_thres: float = PREDICT.conf_thres,
               iou_thres: float = PREDICT.iou_thres, max_det: int = PREDICT.max_det,
               multi_label: bool = PREDICT.multi_label, classes: list[int] | None = None,
               agnostic: bool = False) -> list[torch.Tensor]:
        """``images`` float32 ``[B, 3, H, W]`` RGB in [0, 1], letterboxed to multiples of ``stride`` ->
        ``B`` float32 tensors ``[n, 6]``: x1, y1, x2, y2 (input pixels), score, class; highest scores
        first (the output of :meth:`Detector.detect`). ``classes``: keep only these class ids;
        ``agnostic``: class-blind NMS (not possible with the class-aware NMS inside a graph)."""
        if agnostic and self.has_nms:
            raise UserError("this ONNX model has class-aware NMS inside; export it with nms=false to predict with "
                            "agnostic_nms=true")
        if not self.has_nms:  # the PyTorch path's NMS on the graph's predictions
            return super().detect(images, conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                                  multi_label=multi_label, classes=classes, agnostic=agnostic)
        out = self.raw(images)
        n = len(images)
        if self.nms and abs(float(self.nms.get("iou_thres", iou_thres)) - iou_thres) > 1e-9:
            warnings.warn(f"this ONNX model has NMS inside with iou_thres={self.nms['iou_thres']}, which is used "
                          f"instead of iou_thres={iou_thres} (export without NMS to choose it at prediction)")
        dets = []
        for i in range(n):
            d = out[out[:, 0] == i, 1:]
            d = d[d[:, 4] > conf_thres]
            if classes is not None:  # class-aware NMS: filtering after it equals filtering before
                d = d[torch.isin(d[:, 5], torch.tensor(classes, dtype=d.dtype))]
            dets.append(d[torch.argsort(d[:, 4], descending=True)][:max_det])
        return dets
