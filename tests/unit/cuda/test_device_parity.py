"""The GPU gives the CPU's results: the loss and the assigner (lead-only and coarse-to-fine, fp32 and the head
maps of an fp16 / bf16 autocast forward), NMS, COCO evaluation, deploy fusion and ONNX export of a model that
lives on the device.

Every test takes ``device``: "cpu" (runs everywhere: the code path, compared with a second CPU run) and "cuda"
(compared with the CPU; skipped without CUDA). ``pytest -m cuda`` runs them all on a GPU machine.

Tolerances: the loss and the assigner run in fp32 on both devices (autocast off, fp32 head maps), so their
results agree to float32 rounding of different kernels: loss components within ``LOSS_RTOL`` relative, the
positive assignment identical (ties of the cost broken the same way, ``argsort(stable=True)``), the gradients of
the head maps within ``GRAD_TOL`` of the largest, or within two units in the last place of the maps' dtype (the
fp16 / bf16 gradients are rounded to it on both devices). NMS and COCO evaluation: the same detections and the same 12 COCO numbers.
Fusion and export: the export self-check's tolerances (``Tolerances``: 1e-3 px + 2e-5 x box size, 1e-4 score),
with TF32 convolutions off (TF32 rounds inputs to 10 bits: not fp32).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.helpers import DEVICES, needs_cuda, randomise_statistics
from tests.unit.assign.test_assigner_parity import batched_positives, geometry_of, random_outputs, random_targets
from tests.unit.eval.conftest import CATEGORY_IDS, NAMES, coco_gt, identity_meta
from yolov7_lightning.assign import Assigner, HeadRule
from yolov7_lightning.eval import CocoEvaluator, non_max_suppression
from yolov7_lightning.export import Tolerances, export_onnx, onnx_session
from yolov7_lightning.export.check import compare_detections, prediction_diff
from yolov7_lightning.loss import YOLOv7Loss
from yolov7_lightning.models import HeadGeometry, build_model
from yolov7_lightning.models.fuse import to_deploy
from yolov7_lightning.numerics import fp32_outputs, no_autocast
from yolov7_lightning.testing.sync_counter import SyncCounter

pytestmark = pytest.mark.cuda

LOSS_RTOL = 1e-4
GRAD_TOL = 1e-4
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# strategy -> (variant whose anchors and levels it runs on, aux head, assigner)
STRATEGIES = {
    "lead_only": ("yolov7", False, Assigner(strategy="lead_only", lead=HeadRule(0.5, 10))),
    "coarse_to_fine": ("yolov7-w6", True, Assigner(strategy="coarse_to_fine")),
}


def no_tf32():
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


def head_maps(outputs, device: str, dtype: torch.dtype):
    """Head maps as an autocast forward leaves them on ``device`` (in ``dtype``), as leaves with gradients."""
    def move(maps):
        return None if maps is None else [m.detach().to(device, dtype).requires_grad_() for m in maps]
    return type(outputs)(move(outputs.lead), move(outputs.aux))


def training_loss(strategy: str, outputs, targets, device: str, precision: str):
    """The training step's loss call (``YOLOv7Module._loss``): inside the step's autocast, autocast off and fp32
    maps for the loss and the assigner; the geometry's anchors on ``device`` (the model's buffers)."""
    variant, _, assigner = STRATEGIES[strategy]
    geometry = geometry_of(variant)
    geometry = HeadGeometry.from_anchors(geometry.anchors.to(device), geometry.strides)
    loss_fn = YOLOv7Loss(5, geometry, assigner, image_size=640)
    maps = head_maps(outputs, device, DTYPES[precision])
    with torch.autocast(device, dtype=DTYPES[precision], enabled=precision != "fp32"):
        with no_autocast(device):
            fp32 = fp32_outputs(maps)
            result = loss_fn(fp32, targets.to(device).float())
            assignment = loss_fn.assigner(fp32, targets.to(device).float())
    result.total.backward()
    grads = [m.grad.float().cpu() for m in maps.lead + (maps.aux or [])]
    return result, assignment, grads


@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("device", DEVICES)
def test_loss_and_assigner_equal_the_cpu(device, strategy, precision):
    variant, aux, _ = STRATEGIES[strategy]
    strides = geometry_of(variant).strides
    size = (128, 192)
    outputs = random_outputs(2, size, strides, 5, aux=aux, seed=3)
    targets = random_targets(2, size, [9, 4], 5, seed=4)
    ref, ref_asg, ref_grads = training_loss(strategy, outputs, targets, "cpu", precision)
    got, asg, grads = training_loss(strategy, outputs, targets, device, precision)
    assert got.total.device.type == device and got.total.dtype == torch.float32
    assert ref_asg.lead.assignment.positive.sum() > 0
    for name in ("lead", "aux") if aux else ("lead",):
        assert batched_positives(getattr(asg, name)) == batched_positives(getattr(ref_asg, name)), name
    assert set(got.components) == set(ref.components)
    for key, value in ref.components.items():
        assert got.components[key].item() == pytest.approx(value.item(), rel=LOSS_RTOL, abs=1e-7), key
    tol = max(GRAD_TOL, 2 * torch.finfo(DTYPES[precision]).eps)
    for g, r in zip(grads, ref_grads):
        assert (g - r).abs().max() <= tol * r.abs().max()


@needs_cuda
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_loss_synchronises_the_gpu_only_where_the_cpu_count_says(strategy):
    # the CPU count (SyncCounter: size of the padded boxes, packed candidates per assignment) is every wait for the
    # device: CUDA's sync debug mode warns on each, including host-to-device copies a CPU run cannot see
    variant, aux, _ = STRATEGIES[strategy]
    outputs = random_outputs(4, (128, 128), geometry_of(variant).strides, 5, aux=aux, seed=0)
    targets = random_targets(4, (128, 128), [7, 3, 0, 12], 5, seed=1)
    geometry = geometry_of(variant)
    with SyncCounter() as counter:
        YOLOv7Loss(5, geometry, STRATEGIES[strategy][2])(head_maps(outputs, "cpu", torch.float32), targets).total.backward()
    maps = head_maps(outputs, "cuda", torch.float32)
    loss_fn = YOLOv7Loss(5, HeadGeometry.from_anchors(geometry.anchors.cuda(), geometry.strides), STRATEGIES[strategy][2])
    t = targets.cuda()
    loss_fn(maps, t).total.backward()  # warm-up (allocator, kernels)
    maps = head_maps(outputs, "cuda", torch.float32)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss_fn(maps, t).total.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert 1 <= len(syncs) <= counter.count, [str(w.message) for w in syncs]


def decoded_predictions(seed: int, n_images: int = 3, n: int = 600, nc: int = 2) -> torch.Tensor:
    """``[B, N, 5 + nc]`` decoded predictions clustered around a few objects (overlaps for NMS to resolve)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n_images, 6, 2, generator=g) * 400 + 100
    pick = torch.randint(0, 6, (n_images, n), generator=g)
    xy = torch.gather(centres, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(n_images, n, 2, generator=g) * 6
    wh = 40 + torch.rand(n_images, n, 2, generator=g) * 60
    scores = torch.rand(n_images, n, 1 + nc, generator=g)
    return torch.cat((xy, wh, scores), -1)


@pytest.mark.parametrize("device", DEVICES)
def test_nms_gives_the_cpu_detections(device):
    pred = decoded_predictions(0)
    ref = non_max_suppression(pred, conf_thres=0.05, iou_thres=0.5, max_det=100)
    got = non_max_suppression(pred.to(device), conf_thres=0.05, iou_thres=0.5, max_det=100)
    assert all(d.device.type == device for d in got)
    report = compare_detections(ref, [d.cpu() for d in got], max_det=100)
    assert report["reference_detections"] > 30 and report["passed"], report


@pytest.mark.parametrize("device", DEVICES)
def test_coco_evaluation_gives_the_cpu_numbers(device):
    pred = decoded_predictions(1)
    images = {i + 1: (480, 640) for i in range(len(pred))}
    anns = []
    for i, p in enumerate(pred):  # ground truth: a few of the predicted boxes, moved a little
        for row in p[:4]:
            cx, cy, w, h = (row[:4] + 3).tolist()
            anns.append((i + 1, CATEGORY_IDS[int(row[5] < row[6])], [cx - w / 2, cy - h / 2, w, h], 0))
    gt = coco_gt(images, anns)

    def evaluate(on: str) -> dict:
        evaluator = CocoEvaluator(gt, CATEGORY_IDS, NAMES)
        dets = non_max_suppression(pred.to(on), conf_thres=0.01, iou_thres=0.65)
        evaluator.update(dets, [identity_meta(i + 1) for i in range(len(pred))])
        return evaluator.compute()

    ref, got = evaluate("cpu"), evaluate(device)
    assert ref["map50"] > 0
    assert {k: float(v) for k, v in got.items() if isinstance(v, (int, float))} == \
        {k: float(v) for k, v in ref.items() if isinstance(v, (int, float))}


@pytest.mark.parametrize("device", DEVICES)
def test_deploy_fusion_and_onnx_export_from_a_model_on_the_device(device, tmp_path):
    torch.manual_seed(0)
    model = randomise_statistics(build_model("yolov7-tiny", num_classes=3), seed=1).eval()
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    tol = Tolerances()
    with torch.no_grad():
        ref = model(x)
        on_device = model.to(device).to(memory_format=torch.channels_last)  # as training leaves it
        with no_tf32():
            deploy = to_deploy(on_device)
            fused = deploy(x.to(device)).cpu()
        assert next(deploy.parameters()).device.type == device
    check = prediction_diff(ref, fused, tol)
    assert check["passed"], check
    path = export_onnx(deploy, tmp_path / "model.onnx", x.to(device), dynamic_batch=True)
    onnx_out = torch.from_numpy(onnx_session(path).run(None, {"images": x.numpy()})[0])
    check = prediction_diff(ref, onnx_out, tol)
    assert check["passed"], check
