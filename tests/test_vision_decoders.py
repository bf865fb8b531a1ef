"""Image decoders: exact architecture facts (thesis figure 2.3, parameter counts) and one epoch of
the one training loop on tiny images, checked against a naive recomputation of its output."""
import pytest
import torch
from torch import nn

from usable import FitConfig, Network, SourceData, Split, fit, get_entry
from usable_vision.decoders import count_parameters


def _decoder(spec_name, **params):
    name, _, pos = spec_name.partition(":")
    given = {k: str(v) for k, v in params.items()}
    if pos:
        given["_"] = pos
    return get_entry("decoders", name).create(given)


def _block_shapes(net: Network, in_shape):
    h = torch.zeros(2, *in_shape)
    net.eval()
    shapes = {}
    for name, block in net.blocks.items():
        h = block(h)
        shapes[name] = tuple(h.shape[1:])
    return shapes


def _conv_bn_params(c_in, c_out, k):
    return c_in * c_out * k * k + 2 * c_out  # no conv bias; BN weight and bias


def test_cnn_plus_matches_the_thesis():
    net = _decoder("cnn_plus").build((3, 32, 32), 10)
    assert net.layer_names == ["block1", "block2", "block3", "head"]
    # thesis section 3.3: h^l of f+ is 16×16×64, 8×8×128, 4×4×256 on CIFAR-10, 14×14×64, 7×7×128,
    # 3×3×256 on Fashion-MNIST (channels first here)
    s = _block_shapes(net, (3, 32, 32))
    assert [s["block1"], s["block2"], s["block3"], s["head"]] == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (10,)]
    s = _block_shapes(_decoder("cnn_plus").build((1, 28, 28), 10), (1, 28, 28))
    assert [s["block1"], s["block2"], s["block3"]] == [(64, 14, 14), (128, 7, 7), (256, 3, 3)]
    widths = [3, 64, 128, 256]
    expected = sum(_conv_bn_params(widths[l], widths[l], 3) + _conv_bn_params(widths[l], widths[l + 1], 3)
                   for l in range(3)) + 256 * 10 + 10
    assert count_parameters(net) == expected == 558_625
    assert not any(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))


def test_cnn_minus_matches_the_thesis():
    net = _decoder("cnn_minus").build((3, 32, 32), 10)
    assert net.layer_names == ["block1", "block2", "block3", "head"]
    s = _block_shapes(net, (3, 32, 32))
    assert [s["block1"], s["block2"], s["block3"], s["head"]] == [(16, 10, 10), (32, 3, 3), (64, 1, 1), (10,)]
    s = _block_shapes(_decoder("cnn_minus").build((1, 28, 28), 10), (1, 28, 28))
    assert [s["block1"], s["block2"], s["block3"]] == [(16, 9, 9), (32, 3, 3), (64, 1, 1)]
    expected = _conv_bn_params(3, 16, 5) + _conv_bn_params(16, 32, 5) + _conv_bn_params(32, 64, 5) + 64 * 10 + 10
    assert count_parameters(net) == expected == 66_074
    # small inputs (8×8 digits, cut crops) still work: pooling shrinks to the map that is left
    assert _block_shapes(_decoder("cnn_minus").build((1, 8, 3), 10), (1, 8, 3))["head"] == (10,)


def test_resnet18_is_the_cifar_variant():
    net = _decoder("resnet18").build((3, 32, 32), 10)
    assert net.layer_names == ["stem", "layer1", "layer2", "layer3", "layer4", "pool", "head"]
    stem = net.blocks["stem"][0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    # torchvision's resnet18 with 10 classes is 11,181,642 parameters; its 7×7×3×64 stem (9,408)
    # becomes 3×3×3×64 (1,728): the well-known 11,173,962 of the CIFAR ResNet-18
    assert count_parameters(net) == 11_181_642 - 9_408 + 1_728 == 11_173_962
    s = _block_shapes(net, (3, 32, 32))
    assert s["layer1"] == (64, 32, 32) and s["layer4"] == (512, 4, 4) and s["pool"] == (512,)
    # any size and channel count
    assert _block_shapes(_decoder("resnet18", width=8).build((5, 9, 7), 3), (5, 9, 7))["head"] == (3,)


def test_timm_creates_any_model_by_name():
    import timm
    dec = _decoder("timm:resnet18")
    net = dec.build((1, 8, 8), 7)
    assert net.layer_names == ["features", "head"]
    ref = timm.create_model("resnet18", pretrained=False, num_classes=7, in_chans=1)
    assert count_parameters(net) == count_parameters(ref)  # shared halves are counted once
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    with pytest.raises(Exception, match="unknown timm model 'resnet_18'"):
        _decoder("timm:resnet_18")
    with pytest.raises(Exception, match=r"timm:convnext_atto cannot take 1×8×8 images"):
        _decoder("timm:convnext_atto").build((1, 8, 8), 10)


def _tiny(in_shape=(3, 12, 12), n_train=24, n_test=12, K=4, seed=0):
    """Images whose class sets their mean brightness: a learnable task of any shape."""
    g = torch.Generator().manual_seed(seed)
    def split(n):
        y = torch.arange(n) % K
        x = torch.randn(n, *in_shape, generator=g) + y.view(-1, *[1] * len(in_shape)).float()
        return Split([x], y.long())
    return SourceData(split(n_train), split(n_test), ["img"], "classes", K)


@pytest.mark.parametrize("spec,params", [
    ("resnet18", {}),
    ("cnn_plus", {}),
    ("cnn_minus", {}),
    ("timm:resnet18", {}),
    ("timm:mobilenetv3_small_050", {}),
    ("mlp", {}),
])
def test_one_epoch_of_fit_and_its_evaluation(spec, params):
    """Each decoder trains one epoch through ``usable.fit`` (two members: BN networks go through
    ModuleEnsemble); the reported test log-likelihoods equal a naive recomputation with member 1."""
    data = _tiny()
    dec = _decoder(spec, **params)
    res = fit(data, dec, seeds=[0, 1], config=FitConfig(epochs=1, batch_size=12, optimizer="adam", lr=1e-3,
                                                        progress=False))
    assert res.test_logp.shape == (2, 1, 12)
    assert torch.isfinite(res.test_logp).all() and (res.test_logp <= 0).all()
    model = res.models[0]
    member = model.members[1] if hasattr(model, "members") else None
    if member is not None:
        member.eval()
        with torch.no_grad():
            logits = member(data.test.xs[0])
        naive = torch.log_softmax(logits.double(), dim=1)[torch.arange(12), data.test.y] / torch.log(torch.tensor(2.0))
        torch.testing.assert_close(res.test_logp[1, 0].double(), naive, atol=1e-4, rtol=1e-4)
    # the members start from different seeds, so they end in different places
    assert not torch.equal(res.test_logp[0], res.test_logp[1])


def test_decoders_need_images():
    with pytest.raises(Exception, match=r"needs image sources shaped \(C, H, W\)"):
        _decoder("cnn_plus").build((64,), 10)


@pytest.mark.parametrize("spec,params", [("cnn_plus", {"widths": "8+16+32"}), ("cnn_minus", {}),
                                         ("resnet18", {"width": 8}), ("timm:resnet18", {})])
def test_named_layers_split_the_network_exactly(spec, params):
    """What nc and dib rely on: running blocks ..l then forward_from(h, l) is the whole network,
    and suffix(l) is a fresh re-initialised copy of the rest (same output shape, new weights)."""
    torch.manual_seed(0)
    net = _decoder(spec, **params).build((3, 16, 16), 5).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        full = net(x)
        for l in range(1, len(net.layer_names)):
            h = x
            for block in list(net.blocks.values())[:l]:
                h = block(h)
            torch.testing.assert_close(net.forward_from(h, l), full)
            tail = net.suffix(l).eval()
            out = tail(h)
            assert out.shape == full.shape and not torch.allclose(out, full)
