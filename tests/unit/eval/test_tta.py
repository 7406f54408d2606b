"""Test-time augmentation (official --augment): every view's boxes come back to the input frame
(a flipped, scaled view finds a blob where it is), NMS merges them, and a real model's TTA output
is its plain output plus two more views."""

from __future__ import annotations

import pytest
import torch

from yolov7_lightning.eval.nms import non_max_suppression
from yolov7_lightning.eval.tta import predict_augmented, scale_image
from yolov7_lightning.models import build_model

BOX = (20, 10, 61, 31)  # x1, y1, x2, y2 (exclusive) of the white block, off-centre in a 96 x 128 image


def blob_finder(images):
    """A stand-in detector: one box around the bright pixels of each image (cx, cy, w, h, obj, cls)."""
    out = []
    for img in images:
        ys, xs = torch.nonzero(img[0] > 0.75, as_tuple=True)
        x1, x2, y1, y2 = xs.min().float(), xs.max().float() + 1, ys.min().float(), ys.max().float() + 1
        out.append(torch.tensor([[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 1.0, 1.0]]))
    return torch.stack(out)


def test_every_view_maps_back_to_the_input_frame_and_nms_merges_them():
    images = torch.zeros(1, 3, 96, 128)
    x1, y1, x2, y2 = BOX
    images[:, :, y1:y2, x1:x2] = 1.0
    got = predict_augmented(blob_finder, images, stride=32)
    assert got.shape == (1, 3, 6)
    want = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    for view in range(3):  # 1.0, flipped 0.83, 0.67: the same box within the resize blur
        assert torch.allclose(got[0, view, :4], want, atol=2.5), (view, got[0, view, :4])
    unflipped_wrong = 128 - got[0, 1, 0]  # without the mirror the flipped view would sit at W - cx
    assert (unflipped_wrong - want[0]).abs() > 20
    merged = non_max_suppression(got, conf_thres=0.25, iou_thres=0.45)[0]
    assert len(merged) == 1


def test_scale_image_pads_to_the_stride():
    out = scale_image(torch.zeros(2, 3, 96, 128), 0.67, 32)  # resized to 64 x 85, padded up to 96 x 96
    assert out.shape == (2, 3, 96, 96) and out[0, 0, -1, -1] == pytest.approx(0.447)
    assert out[0, 0, 63, 84] == 0.0 and out[0, 0, 64, 0] == pytest.approx(0.447)


def test_real_model_tta_is_plain_plus_two_views():
    model = build_model("yolov7-tiny", num_classes=2).eval()
    images = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(images)
        tta = predict_augmented(model, images, model.max_stride)
    n = plain.shape[1]
    # views: 96x128 (n rows), 0.83 -> padded 96x128 again (n rows), 0.67 -> padded 96x96
    assert tta.shape[1] == 2 * n + n * 96 // 128 and torch.allclose(tta[:, :n], plain)
    assert not torch.allclose(tta[:, n:2 * n], plain, atol=1e-3)  # the flipped, scaled view predicts otherwise
