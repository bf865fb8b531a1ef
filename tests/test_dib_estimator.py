"""Sufficiency and minimality against known answers on synthetic representations h^l."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from usable_dib.estimator import SuffixDecoder, decoder_config, measure
from usable_dib.features import layer_features, set_bn_mode
from usable_dib.relabel import relabel
from usable_mlp.mlp import MLP

C = 10


def onehot(v, k):
    return nn.functional.one_hot(torch.as_tensor(v), k).float()


def plugin_mi(z, y):
    """Plug-in mutual information (bits) of two discrete label arrays: the in-sample optimum of
    a decoder that can fit any p(y | z) on the distinct values of z."""
    z, y = np.asarray(z), np.asarray(y)
    joint = np.zeros((z.max() + 1, y.max() + 1))
    np.add.at(joint, (z, y), 1.0)
    p = joint / joint.sum()
    pz, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pz @ py)[nz])).sum())


@pytest.fixture(scope="module")
def labels():
    y_tr = torch.arange(1000) % C  # balanced: 100 per class -> 2 digits in base 10
    y_te = torch.arange(500) % C   # 50 per class
    return {"train": y_tr, "test": y_te}


def cfg():
    return decoder_config(epochs=60, batch_size=100, lr=1e-2)


def net_for(width):
    """An mlp whose block 1 outputs ``width`` features: h^1 is what we feed, suffix(1) decodes it."""
    torch.manual_seed(0)
    return set_bn_mode(MLP([width, 32]).build((20,), C), "batch")


def test_onehot_label_is_sufficient_and_minimal(labels):
    feats = {s: {1: onehot(labels[s], C)} for s in labels}
    r = measure(net_for(C), feats, labels, C, config=cfg(), seed=0)
    # H(y) = log2 10 (balanced); a decoder reads y off exactly: CE -> 0 (stops at 0.02 nat)
    assert r.label_entropy == pytest.approx([math.log2(C)] * 2, abs=1e-12)
    assert r.sufficiency[0] == pytest.approx([math.log2(C)] * 2, abs=0.05)
    assert r.sufficiency_heldout[0] == pytest.approx(math.log2(C), abs=0.05)
    # the relabelling digits are independent of y in a balanced set: nothing to decode
    assert np.all(np.abs(r.minimality_digits[0][~np.isnan(r.minimality_digits[0])]) < 0.05)
    assert r.minimality[0] == pytest.approx([0.0, 0.0], abs=0.05)
    assert r.n_digits == [2, 2]
    # leading test digit takes 5 values (indices 0..49): its entropy is log2 5, not log2 10
    assert r.digit_entropy[1] == pytest.approx([math.log2(10), math.log2(5)], abs=1e-12)


def test_independent_representation_has_no_sufficiency(labels):
    g = torch.Generator().manual_seed(1)
    z = {s: torch.randint(0, 2, (len(labels[s]),), generator=g) for s in labels}
    feats = {s: {1: onehot(z[s], C)} for s in labels}  # 2 patterns, independent of y
    r = measure(net_for(C), feats, labels, C, config=cfg(), seed=0, minimality=False)
    for k, s in enumerate(("train", "test")):
        truth = plugin_mi(z[s].numpy(), labels[s].numpy())  # in-sample optimum, ~0.005 bit
        assert truth < 0.04  # plug-in bias (K_z−1)(C−1)/(2N ln 2) plus noise
        assert r.sufficiency[0, k] == pytest.approx(truth, abs=0.02)
    assert r.sufficiency_heldout[0] == pytest.approx(0.0, abs=0.05)
    assert np.isnan(r.minimality).all()


def test_representation_of_the_sample_index_is_not_minimal(labels):
    # h = the relabelling digits themselves (one-hot each): every head is decodable, so
    # minimality = mean digit entropy (its maximum), while sufficiency ~ 0 (index says nothing of y)
    feats, h_d = {}, {}
    for s in labels:
        d = relabel(labels[s], C)
        feats[s] = {1: torch.cat([onehot(d[:, j], C) for j in range(d.shape[1])], dim=1)}
    r = measure(net_for(2 * C), feats, labels, C, config=cfg(), seed=0)
    expected = np.nanmean(r.digit_entropy, axis=1)  # (split,)
    assert r.minimality[0] == pytest.approx(expected, abs=0.05)
    assert expected[0] == pytest.approx(math.log2(10), abs=1e-9)
    assert r.sufficiency_heldout[0] < 0.05


def test_layer_features_match_a_direct_forward_pass():
    torch.manual_seed(0)
    net = MLP([16, 8]).build((12,), 3)
    net.eval()
    x = torch.randn(50, 12)
    f = layer_features(net, x, [0, 1, 2], batch_size=7)  # chunks must not matter in eval mode
    blocks = list(net.blocks.values())
    with torch.no_grad():
        h1 = blocks[0](x)
        h2 = blocks[1](h1)
    assert torch.equal(f[0], x)
    assert torch.allclose(f[1], h1, atol=1e-6) and torch.allclose(f[2], h2, atol=1e-6)
    # the same through disk-backed memory maps
    g = layer_features(net, x, [2], batch_size=7, memory_limit_mb=0.0)
    assert torch.allclose(g[2], h2, atol=1e-6)
    with pytest.raises(ValueError, match="0..2"):
        layer_features(net, x, [3])


def test_suffix_decoder_is_fresh_and_sized():
    torch.manual_seed(0)
    net = MLP([16, 8]).build((12,), 3)
    dec = SuffixDecoder(net, 1)
    m = dec.build((16,), 3 * 4)  # 4 relabelling heads of 3 classes
    assert m(torch.randn(5, 16)).shape == (5, 12)
    assert list(m.blocks) == ["fc2", "head"]
    assert not torch.equal(m.blocks["fc2"][0].weight, net.blocks["fc2"][0].weight)  # re-initialised
    assert all(bn.running_mean is None for bn in m.modules() if isinstance(bn, nn.BatchNorm1d))
