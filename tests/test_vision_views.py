"""Views of images against exact expectations: crop overlap, channel content, spectral split."""
import math

import numpy as np
import pytest
import torch

from usable import SpecError, get_entry
from usable_vision.views import channels, crops, frequency, lowpass_mask, overlap_columns, split_views


def _images(n=4, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g)


@pytest.mark.parametrize("W,w", [(8, 2), (8, 4), (8, 5), (8, 8), (32, 20), (7, 4)])
def test_crops_overlap_by_2w_minus_W_columns(W, w):
    x = _images(w=W)
    fill = torch.full((1, 3, 1, 1), -7.0)  # a value no pixel has, to see exactly which are kept
    left, right = crops(x, w, "mask", fill)
    kept_l = (left != -7.0).all(dim=(0, 1, 2))  # per column
    kept_r = (right != -7.0).all(dim=(0, 1, 2))
    assert kept_l.tolist() == [c < w for c in range(W)]
    assert kept_r.tolist() == [c >= W - w for c in range(W)]
    assert int((kept_l & kept_r).sum()) == max(0, 2 * w - W) == overlap_columns(w, W)
    # kept pixels are the image's own, untouched
    assert torch.equal(left[..., :w], x[..., :w]) and torch.equal(right[..., W - w:], x[..., W - w:])
    cl, cr = crops(x, w, "cut")
    assert cl.shape == (4, 3, 8, w) and cr.shape == (4, 3, 8, w)
    assert torch.equal(cl, x[..., :w]) and torch.equal(cr, x[..., W - w:])


def test_crop_fill_is_the_per_channel_training_mean():
    tr, te = _images(seed=1), _images(seed=2)
    names, (ltr, rtr), (lte, rte) = split_views(tr, te, "crops", width=3)
    mean = tr.double().mean(dim=(0, 2, 3))
    assert names == ["left", "right"]
    for c in range(3):  # both splits are filled with the *training* mean (no test leakage)
        assert torch.allclose(lte[:, c, :, 3:].double(), mean[c].expand(4, 8, 5).double(), atol=1e-6)
        assert torch.allclose(rtr[:, c, :, :5].double(), mean[c].expand(4, 8, 5).double(), atol=1e-6)


def test_channel_views_hold_only_the_named_channel():
    x = _images()
    red, blue = channels(x, "red", "blue")
    assert red.shape == (4, 1, 8, 8) and torch.equal(red[:, 0], x[:, 0]) and torch.equal(blue[:, 0], x[:, 2])
    g, r = channels(x, "green", 0)
    assert torch.equal(g[:, 0], x[:, 1]) and torch.equal(r[:, 0], x[:, 0])
    with pytest.raises(SpecError, match="1 channel"):
        channels(_images(c=1), "red", "blue")
    with pytest.raises(SpecError, match="same channel"):
        channels(x, "red", "r")


@pytest.mark.parametrize("h,w,k", [(8, 8, 3), (8, 8, 4), (32, 32, 8), (28, 28, 5), (7, 9, 4), (8, 8, 8)])
def test_low_plus_high_reconstructs_the_image(h, w, k):
    x = _images(n=3, c=3, h=h, w=w) * 255.0  # pixel range of uint8 images, in float
    low, high = frequency(x, k)
    assert low.dtype == torch.float32 and low.shape == x.shape
    assert float((low + high - x).abs().max()) < 1e-5 * 255.0


def test_frequency_split_of_known_spectra():
    """A constant plus a cosine of frequency 1 is all low-pass for k=3; a frequency-3 cosine is all
    high-pass; the low-pass mask is the central k×k of the shifted spectrum."""
    H = W = 8
    r = torch.arange(H, dtype=torch.float64)
    slow = 2.0 + torch.cos(2 * math.pi * r / H)[:, None] * torch.ones(W)
    fast = torch.cos(2 * math.pi * 3 * r / H)[None, :] * torch.ones(H, 1)
    x = torch.stack([slow, fast]).float().unsqueeze(0)  # (1, 2, 8, 8)
    low, high = frequency(x, 3)
    assert torch.allclose(low[0, 0], x[0, 0], atol=1e-5) and float(high[0, 0].abs().max()) < 1e-5
    assert float(low[0, 1].abs().max()) < 1e-5 and torch.allclose(high[0, 1], x[0, 1], atol=1e-5)
    m = lowpass_mask(8, 8, 3)
    assert m.sum() == 9 and m[3:6, 3:6].all()  # frequency 0 sits at index 4 after fftshift
    # the low-pass image keeps the exact mean (DC) of every channel; the high-pass has mean 0
    assert torch.allclose(low.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-6)
    assert float(high.mean(dim=(2, 3)).abs().max()) < 1e-6


def test_bad_view_parameters_name_the_problem():
    x = _images()
    with pytest.raises(SpecError, match=r"width=9 is outside 1..8"):
        crops(x, 9)
    with pytest.raises(SpecError, match="needs width"):
        split_views(x, x, "crops")
    with pytest.raises(SpecError, match=r"cutoff=0 is outside"):
        frequency(x, 0)
    with pytest.raises(SpecError, match="view=frequency needs cutoff"):
        split_views(x, x, "frequency")
    with pytest.raises(SpecError, match="allowed values"):
        get_entry("sources", "digits").create({"view": "patches"})


def test_views_through_the_digits_source():
    d = get_entry("sources", "digits").create({"view": "crops", "width": "3", "mode": "cut"})
    assert d.names == ["left", "right"] and d.in_shape(0) == (1, 8, 3) and d.attrs["overlap_columns"] == 0
    full = get_entry("sources", "digits").create({})
    assert torch.equal(d.train.xs[0], full.train.xs[0][..., :3])
    assert torch.equal(d.test.xs[1], full.test.xs[0][..., 5:])
    f = get_entry("sources", "digits").create({"view": "frequency", "cutoff": "4"})
    assert f.names == ["low", "high"]
    np.testing.assert_allclose((f.train.xs[0] + f.train.xs[1]).numpy(), full.train.xs[0].numpy(), atol=1e-5)
