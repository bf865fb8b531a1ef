"""measure_layers: hooks on real networks agree with features computed by hand, in eval mode."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from test_nc_accumulator import reference
from usable_mlp import make_mlp  # the plugin's factory, called directly
from usable_nc import NCStateError, measure_layers


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None], torch.tensor(d.target)


def _naive_ncc_vs_argmax(H, y, logits):
    classes = np.unique(y)
    mu = np.stack([H[y == c].mean(0) for c in classes])
    ncc = classes[np.argmin(((H[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)]
    return float(np.mean(ncc != logits.argmax(1)))


def test_mlp_layers_match_hand_computed_features(digits):
    x, y = digits
    torch.manual_seed(0)
    net = make_mlp([24, 12]).build((1, 8, 8), 10)
    net.train()
    with torch.no_grad():
        for s in range(0, 600, 100):  # give batch norm non-trivial running statistics
            net(x[s:s + 100])
    bn_before = {k: v.clone() for k, v in net.state_dict().items()}
    res = measure_layers(net, (x, y), n_classes=10, batch_size=128, method="two_pass")
    # the classifier's input is fc2's output: measured once, under that name
    assert res.layers == ["fc1", "fc2", "head"] and res.classifier_layer == "fc2"
    assert net.training  # mode restored
    for k, v in net.state_dict().items():  # eval mode: running statistics not touched
        assert torch.equal(v, bn_before[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    net.eval()
    with torch.no_grad():
        feats = {"fc1": net.blocks.fc1(x)}
        feats["fc2"] = net.blocks.fc2(feats["fc1"])
        feats["head"] = net.blocks.head(feats["fc2"])
    logits = feats["head"].double().numpy()
    yn = y.numpy()
    for name, h in feats.items():
        H = h.double().numpy()
        ref = reference(H, yn)
        m = res.metrics[name]
        assert m["rank"] == ref["rank"]
        assert m["nc1"] == pytest.approx(ref["nc1"], rel=1e-5), name  # float32 features
        assert m["nc4"] == pytest.approx(_naive_ncc_vs_argmax(H, yn, logits), abs=1.5 / len(yn)), name
    W = net.blocks.head[0].weight.detach().double().numpy()
    A = reference(feats["fc2"].double().numpy(), yn)["A"]
    nc3 = np.linalg.norm(W / np.linalg.norm(W) - A / np.linalg.norm(A))
    assert res.metrics["fc2"]["nc3"] == pytest.approx(nc3, rel=1e-6)
    assert np.isnan(res.metrics["fc1"]["nc3"])


def test_generic_module_gets_a_distinct_penultimate_layer(digits):
    x, y = digits
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(),
                          nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 10)))
    res = measure_layers(model, (x, y), n_classes=10, batch_size=300)
    assert res.layers == ["0", "1", "2", "3", "penultimate"] and res.classifier_layer == "penultimate"
    with torch.no_grad():
        pen = model[3][1](model[3][0](model[2](model[1](model[0](x))))).double().numpy()
    assert res.metrics["penultimate"]["dim"] == 16
    assert res.metrics["penultimate"]["nc1"] == pytest.approx(reference(pen, y.numpy())["nc1"], rel=1e-5)
    # a re-iterable loader gives the same answer; a one-shot generator is refused
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=300)
    res2 = measure_layers(model, loader, layers=["1", "penultimate"], n_classes=10)
    assert res2.metrics["penultimate"]["nc1"] == pytest.approx(res.metrics["penultimate"]["nc1"], rel=1e-6)
    with pytest.raises(NCStateError, match="one-shot iterator"):
        measure_layers(model, ((x[s:s + 50], y[s:s + 50]) for s in range(0, 200, 50)), n_classes=10)
    with pytest.raises(NCStateError, match="no layer 'fc9'"):
        measure_layers(model, (x, y), layers=["fc9"], n_classes=10)
