import numpy as np
import pytest
import torch

from yolov7_lightning.data.collate import ImageMeta
from yolov7_lightning.data.letterbox import letterbox

from .conftest import block_image


def _extent(img, colour):
    ys, xs = np.nonzero(np.all(np.abs(img.astype(int) - colour) < 40, axis=2))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("orig_hw,out_hw", [((200, 300), (256, 320)), ((300, 120), (320, 256)), ((100, 100), (96, 160))])
def test_letterbox_boxes_land_on_object_and_map_back_exactly(orig_hw, out_hw):
    box = np.array([[30, 40, 90, 80]], np.float32)
    img = block_image(*orig_hw, box[0].astype(int), 0)
    out, lb = letterbox(img, out_hw)
    assert out.shape == (*out_hw, 3)
    mapped = lb.to_input(box)
    assert np.abs(_extent(out, (255, 0, 0)) - mapped[0]).max() <= 1.0  # the red block is where the box says
    assert np.allclose(lb.to_original(mapped), box, atol=1e-4)
    meta = ImageMeta(1, None, lb.orig_hw, lb.input_hw, lb.ratio_hw, lb.pad_tl)
    assert torch.allclose(meta.to_original(torch.from_numpy(mapped)), torch.from_numpy(box), atol=1e-4)
    # padding is grey 114 and centred
    top, left = lb.pad_tl
    if top:
        assert (out[:top] == 114).all()
    if left:
        assert (out[:, :left] == 114).all()


def test_letterbox_no_scaleup_keeps_size():
    img = block_image(50, 80, (10, 10, 20, 20), 1)
    out, lb = letterbox(img, (128, 128), scaleup=False)
    assert lb.ratio_hw == (1.0, 1.0) and lb.pad_tl == (39, 24)
    assert (out[39:89, 24:104] == img).all()


def test_augmented_meta_refuses_to_map_back():
    with pytest.raises(ValueError, match="augmented"):
        ImageMeta(1, "x.jpg", (10, 10), (32, 32)).to_original(torch.zeros(1, 4))
