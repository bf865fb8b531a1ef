"""usable.Tracker on small models: NC equal to usable_nc's measure_layers and to a naive
computation, DIB equal to usable_dib's estimator for a usable.Network, training unchanged by
measuring, resumable runs, decoder families, plots, errors."""
import random
import sys
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import usable

C = 4


def blobs(n, seed, shape=(3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    x = torch.randn(n, *shape, generator=g) + 0.7 * y.float().view(-1, 1, 1, 1) * torch.linspace(-1, 1, shape[-1])
    return x, y


TRAIN, TEST = blobs(120, 1), blobs(60, 2)


def cnn(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Dropout(dropout), nn.Linear(64, C))


def fit_some(model, epochs=2, tracker=None, seed=0):
    """A plain loop: shuffled loader (global RNG), dropout, BN in train mode."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(TensorDataset(*TRAIN), batch_size=32, shuffle=True)
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if tracker is not None:
            tracker.epoch_end(epoch)
    return model


def naive_nc1(h, y):
    """tr(Σ_W Σ_B⁺)/C from scratch in float64 (relative rank tolerance 1e-6)."""
    h = h.reshape(len(h), -1).astype(np.float64)
    mu = np.stack([h[y == c].mean(0) for c in range(C)])
    A = mu - h.mean(0)
    dev = h - mu[y]
    return float(np.trace(dev.T @ dev / len(h) @ np.linalg.pinv(A.T @ A / C, rcond=1e-6, hermitian=True)) / C)


def test_nc_equals_measure_layers_and_the_naive_value():
    model = fit_some(cnn())
    layers = ["2", "6", "penultimate"]
    t = usable.Tracker(model, layers, train=TensorDataset(*TRAIN), test=TEST, n_classes=C, metrics="nc")
    ds = t.epoch_end(1).sel(epoch=1)
    for split, (x, y) in (("train", TRAIN), ("test", TEST)):
        ref = usable.plugin("nc").measure_layers(model, (x, y), layers=layers, n_classes=C)
        assert ref.layers == ds.layer_name.values.tolist() == layers
        for k, name in enumerate(layers):
            m = ref.metrics[name]
            for key, var in (("nc1", "nc1"), ("trace_quotient", "nc_trace_quotient"), ("nc3", "nc3"), ("nc4", "nc4"),
                             ("cdnv_mean", "nc_cdnv_mean"), ("ncc_error", "ncc_error"), ("rank", "nc_rank")):
                got = ds[var].sel(layer=k + 1, split=split).item()
                assert got == pytest.approx(m[key], rel=1e-12, nan_ok=True), (split, name, key)
    assert np.isfinite(ds.nc3.sel(layer=3).values).all()          # the classifier's own layer: NC3
    assert ds.attrs.get("classifier_layer", "penultimate") in ("penultimate",)
    # pooling: global average of the (8, 8, 8) map of layer "2", against a naive computation
    t = usable.Tracker(model, ["input", "2"], train=TRAIN, test=TEST, n_classes=C, metrics="nc",
                       pool={"2": "avg"})
    ds = t.epoch_end(1).sel(epoch=1)
    assert ds.layer.values.tolist() == [0, 1] and ds.layer_pool.values.tolist() == ["full", "avg"]
    assert ds.layer_dim.values.tolist() == [3 * 8 * 8, 8]
    h = {}
    hook = model[2].register_forward_hook(lambda m, i, o: h.__setitem__("out", o))
    model.eval()
    with torch.no_grad():
        model(TRAIN[0])
    hook.remove()
    pooled = h["out"].mean(dim=(2, 3)).numpy()
    assert ds.nc1.sel(layer=1, split="train").item() == pytest.approx(naive_nc1(pooled, TRAIN[1].numpy()), rel=1e-5)
    # the input does not depend on the weights: its NC1 is a fixed number
    assert ds.nc1.sel(layer=0, split="test").item() == pytest.approx(naive_nc1(TEST[0].numpy(), TEST[1].numpy()),
                                                                     rel=1e-6)


def test_dib_of_a_network_equals_the_dib_estimator():
    """For a usable.Network the decoders are fresh copies of its suffix: the same numbers as
    usable_dib's estimator on the same frozen features."""
    torch.manual_seed(0)
    x, y = TRAIN[0].reshape(120, -1), TRAIN[1]
    xt, yt = TEST[0].reshape(60, -1), TEST[1]
    net = usable.create("decoders", "mlp:hidden=16+8").build((192,), C)
    kw = dict(dib_epochs=3, dib_batch_size=32)
    t = usable.Tracker(net, "auto", train=(x, y), test=(xt, yt), n_classes=C, metrics="dib", **kw)
    assert t.requested == ["fc1", "fc2", "penultimate"]
    ds = t.epoch_end(1).sel(epoch=1)
    assert ds.layer_name.values.tolist() == ["fc1", "fc2"]     # penultimate = fc2's output, measured once
    dib = usable.plugin("dib")
    feats = {s: dib.layer_features(net, xs, [1, 2]) for s, xs in (("train", x), ("test", xt))}
    cfg = dib.decoder_config(epochs=3, batch_size=32, device="cpu")
    ref = dib.measure(net, feats, {"train": y, "test": yt}, C, config=cfg, seed=0)
    np.testing.assert_array_equal(ds.sufficiency.values, ref.sufficiency)
    np.testing.assert_array_equal(ds.minimality.values, ref.minimality)
    np.testing.assert_array_equal(ds.sufficiency_heldout.values, ref.sufficiency_heldout)
    assert ds.attrs["dib_decoder"].startswith("suffix") and ds.attrs["blocks"] == ["fc1", "fc2", "head"]


def test_measuring_does_not_change_training():
    plain = fit_some(cnn(dropout=0.3), epochs=3)
    model = cnn(dropout=0.3)
    t = usable.Tracker(model, ["2", "6"], train=DataLoader(TensorDataset(*TRAIN), batch_size=32, shuffle=True),
                       test=TEST, n_classes=C, dib_epochs=2)
    random.seed(5), np.random.seed(5)
    before = (random.random(), np.random.rand())
    random.seed(5), np.random.seed(5)
    tracked = fit_some(model, epochs=3, tracker=t)
    assert (random.random(), np.random.rand()) == before   # Python's and numpy's generators untouched too
    a, b = tracked.state_dict(), plain.state_dict()
    for k in a:  # weights and every batch-norm statistic, bit for bit
        assert torch.equal(a[k], b[k]), k
    tracked.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(tracked(TEST[0]), plain(TEST[0]))
    assert t.done_epochs == [1, 2, 3] and all(not m._forward_hooks for m in tracked.modules())


def test_a_run_resumes_and_refuses_other_settings(tmp_path):
    store = tmp_path / "r.zarr"
    model = cnn()
    make = lambda **kw: usable.Tracker(model, ["2", "6"], train=TRAIN, test=TEST, n_classes=C, store=store,  # noqa: E731
                                       run="mine", every=2, **{"dib_epochs": 1, **kw})
    t = make()
    assert not t.resumed
    assert t.epoch_end(1) is None                     # every=2: epoch 1 is not measured
    with t.epoch(2):
        fit_some(model, epochs=1)
    with pytest.raises(ZeroDivisionError), t.epoch(4):
        1 / 0                                          # the epoch failed: nothing measured
    assert t.done_epochs == [2]
    t2 = make()                                        # the process "crashed"; a new one continues
    assert t2.resumed and t2.done_epochs == [2]
    t2.epoch_end(4)
    t2.epoch_end(5, force=True)
    ds = usable.open_results(store)["mine"].load()
    assert ds.epoch.values.tolist() == [2, 4, 5] and ds.attrs["epochs_measured"] == [2, 4, 5]
    assert np.isfinite(ds.nc1.values).all() and np.isfinite(ds.sufficiency.values).all()
    with pytest.warns(UserWarning, match=r"\[5\]"):   # retrained from an earlier checkpoint: 5 is dropped
        t2.epoch_end(4)
    assert usable.open_results(store)["mine"].load().epoch.values.tolist() == [2, 4]
    with pytest.raises(usable.SpecError, match="other settings.*dib_epochs"):
        make(metrics=("nc", "dib"), dib_epochs=3)
    assert usable.open_results(store).runs == ["mine"]
    # the run is shaped like track's: `usable results plot` draws it with track's plots
    from click.testing import CliRunner

    from usable.cli import make_cli
    out = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "mine", "--out", str(tmp_path / "p.png")])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in tmp_path.glob("p-*.png")) == ["p-curves.png", "p-dib.png", "p-equisep.png",
                                                                 "p-gap.png", "p-nc1.png", "p-plane.png"]


class Skip(nn.Module):
    """Not a chain: the forward adds a skip connection around ``b``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, C)

    def forward(self, x):
        h = self.a(x)
        return self.head(h + self.b(h))


def test_decoder_families():
    torch.manual_seed(0)
    t = usable.Tracker(Skip(), ["a", "b"], train=TRAIN, test=TEST, n_classes=C, metrics="dib", dib_epochs=2,
                       probe="linear")
    ds = t.epoch_end(1)
    assert ds.attrs["dib_decoder"].startswith("probe: linear") and "not its children" in ds.attrs["dib_decoder"]
    assert ds.layer_decoder.values.tolist() == ["probe linear", "probe linear"]
    assert bool((ds.sufficiency <= ds.label_entropy + 1e-9).all()) and (ds.minimality.values >= 0).all()
    with pytest.raises(usable.SpecError, match="decoder='probe'"):
        usable.Tracker(Skip(), ["a", "b"], train=TRAIN, test=TEST, n_classes=C, metrics="dib",
                       decoder="suffix").epoch_end(1)
    # a chain measured with a declared probe on average-pooled maps
    t = usable.Tracker(cnn(), ["2", "6"], train=TRAIN, test=TEST, n_classes=C, metrics="dib", decoder="probe",
                       pool="avg", dib_epochs=1)
    ds = t.epoch_end(1)
    assert ds.attrs["dib_decoder"].startswith("probe: mlp:hidden=128") and ds.layer_dim.values.tolist() == [8, 16]
    assert "nc1" not in ds and np.isfinite(ds.sufficiency.values).all()


def test_layers_listed_and_chosen():
    rn = torchvision.models.resnet18(num_classes=C)
    names = usable.list_layers(rn)
    assert names[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"] and "layer3.1.conv2" in names
    shapes = usable.list_layers(rn, torch.zeros(2, 3, 32, 32))
    assert shapes["layer3.1.conv2"] == (2, 256, 2, 2) and shapes["fc"] == (2, C) and rn.training
    t = usable.Tracker(rn, train=TRAIN, test=TEST, n_classes=C)
    assert t.requested == ["layer1", "layer2", "layer3", "layer4", "penultimate"]

    class Wrapper(nn.Module):  # e.g. a LightningModule holding its network as self.net
        def __init__(self):
            super().__init__()
            self.net = cnn()

        def forward(self, x):
            return self.net(x)
    t = usable.Tracker(Wrapper(), train=TRAIN, test=TEST, n_classes=C)
    assert t.requested == ["net.0", "net.1", "net.4", "net.5", "penultimate"]


def test_user_errors_name_the_fix():
    m = cnn()
    with pytest.raises(usable.SpecError, match="choose from nc, dib"):
        usable.Tracker(m, ["2"], train=TRAIN, test=TEST, n_classes=C, metrics=("ncx",))
    with pytest.raises(usable.DataError, match="no layer 'layer9'.*available"):
        usable.Tracker(m, ["layer9"], train=TRAIN, test=TEST, n_classes=C)
    with pytest.raises(usable.SpecError, match="one-shot iterator"):
        usable.Tracker(m, ["2"], train=iter([TRAIN]), test=TEST, n_classes=C)
    with pytest.raises(usable.SpecError, match="pool='mean'"):
        usable.Tracker(m, ["2"], train=TRAIN, test=TEST, n_classes=C, pool="mean")
    with pytest.raises(usable.SpecError, match="every=0"):
        usable.Tracker(m, ["2"], train=TRAIN, test=TEST, n_classes=C, every=0)
    with pytest.raises(usable.SpecError, match="unknown classification model 'resnet19'.*resnet18"):
        usable.create("decoders", "torchvision:resnet19")
    with pytest.raises(usable.SpecError, match="3-channel"):
        usable.create("decoders", "torchvision:resnet18").build((1, 8, 8), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert usable.create("decoders", "torchvision:resnet18").build((3, 32, 32), 7).fc.out_features == 7


class Images(torch.utils.data.Dataset):
    """A plain map-style dataset (collated by a DataLoader), not a TensorDataset."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_memory_mapped_cache_and_collated_datasets_give_the_same_values():
    model = fit_some(cnn(), epochs=1)
    kw = dict(n_classes=C, metrics="nc", test=TEST)
    ref = usable.Tracker(model, ["2", "6"], train=TRAIN, **kw).epoch_end(1)
    loader = DataLoader(Images(*TRAIN), batch_size=7, shuffle=True)      # its batching and order are not used
    got = usable.Tracker(model, ["2", "6"], train=loader, memory_limit_mb=1e-3, **kw).epoch_end(1)
    assert "DataLoader" not in got.attrs["sources"][0] and "Images of 120 samples" in got.attrs["sources"][0]
    for v in ("nc1", "nc_trace_quotient", "nc_class_nc1", "loss", "accuracy"):
        np.testing.assert_allclose(got[v].values, ref[v].values, rtol=1e-5, err_msg=v)


def test_layers_inside_a_wrapping_module_cut_its_chain():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = cnn()
            self.loss = nn.CrossEntropyLoss()       # not part of the forward

        def forward(self, x):
            return self.net(x)
    ds = usable.Tracker(Wrapper(), ["net.2", "net.6"], train=TRAIN, test=TEST, n_classes=C, metrics="dib",
                        dib_epochs=1).epoch_end(1)
    assert ds.attrs["dib_decoder"].startswith("suffix") and "module 'net'" in ds.attrs["dib_decoder"]
    assert ds.layer_decoder.values.tolist() == ["suffix from block 3", "suffix from block 7"]


def test_the_lightning_callback_without_lightning_names_the_extra(monkeypatch):
    import usable_tracker
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)                # as if not installed
    monkeypatch.delitem(sys.modules, "usable_tracker.lightning_callback", raising=False)
    with pytest.raises(usable.SpecError, match=r"pip install 'usable\[lightning\]'"):
        usable_tracker.UsableCallback
