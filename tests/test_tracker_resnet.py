"""A torchvision resnet18 (random init) trained in a plain loop on CIFAR-shaped files, tracked:
per-epoch NC1, sufficiency and minimality of 4 layers in a zarr run; the tracker's NC values
equal those of ``usable run nc:checkpoint=...`` on the same weights; tracking changes nothing
in training (weights, batch-norm running statistics, outputs)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset

import usable
from usable_vision.fixtures import write_cifar10

LAYERS = ["layer1", "layer2", "layer3", "layer4"]
EPOCHS = 2
# name in the nc metric's run -> name in a track-shaped run
NC_VARS = {"nc1": "nc1", "trace_quotient": "nc_trace_quotient", "cdnv_mean": "nc_cdnv_mean",
           "nc2_etf_error": "nc2_etf_error", "nc4": "nc4", "ncc_error": "ncc_error", "rank": "nc_rank",
           "trace_within": "nc_trace_within", "class_nc1": "nc_class_nc1"}


def train(data, tracker=None):
    """The researcher's own loop: SGD on shuffled batches, BN in train mode; optionally tracked."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(data.train.xs[0], data.train.y), batch_size=25, shuffle=True)
    tracker = tracker(model) if tracker else None
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if tracker is not None:
            tracker.epoch_end(epoch)
    return model, tracker


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("resnet")
    write_cifar10(tmp / "cifar", train_per_class=10, test_per_class=5)
    source = f"cifar10:root={tmp / 'cifar'},verify=false"
    data = usable.create("sources", source)
    store = tmp / "runs.zarr"

    def make(model):
        test = (data.test.xs[0], data.test.y)
        return usable.Tracker(model, LAYERS, train=TensorDataset(data.train.xs[0], data.train.y), test=test,
                              n_classes=10, store=store, run="resnet18-s0", dib_epochs=1)
    model, tracker = train(data, make)
    return tmp, source, data, store, model, tracker


def test_per_epoch_nc_and_dib_of_four_layers_in_a_zarr_run(run):
    tmp, source, data, store, model, tracker = run
    ds = usable.open_results(store)["resnet18-s0"].load()
    assert ds.epoch.values.tolist() == [1, 2]
    assert ds.layer_name.values.tolist() == LAYERS and ds.layer.values.tolist() == [1, 2, 3, 4]
    for v in ("nc1", "sufficiency", "minimality"):
        assert ds[v].dims == ("epoch", "layer", "split"), v
        assert np.isfinite(ds[v].values).all(), v
    assert ds.nc_class_nc1.dims == ("epoch", "layer", "split", "class")
    # information is bounded by the label entropy (balanced 10 classes: log2 10) and minimality is >= 0
    assert ds.label_entropy.values == pytest.approx(np.full((2, 2), np.log2(10)))
    assert bool((ds.sufficiency <= ds.label_entropy + 1e-9).all()) and bool((ds.minimality >= 0).all())
    assert ds.attrs["metric"] == "track" and ds.attrs["kind"] == "tracker"
    assert ds.attrs["dib_decoder"].startswith("suffix") and "layer4 -> avgpool -> fc" in ds.attrs["dib_decoder"]
    assert ds.layer_decoder.values.tolist() == [f"suffix from block {k}" for k in (5, 6, 7, 8)]
    assert ds.layer_dim.values.tolist() == [64 * 8 * 8, 128 * 4 * 4, 256 * 2 * 2, 512]
    assert ds.attrs["classifier_layer"] == "none" and np.isnan(ds.nc3.values).all()  # no 'penultimate' asked for
    # the network's own loss, from the logits of the measurement pass
    with torch.no_grad():
        model.eval()
        logits = model(data.test.xs[0]).double()
    ce = torch.nn.functional.cross_entropy(logits, data.test.y).item()
    assert ds.loss.sel(epoch=2, split="test").item() == pytest.approx(ce, rel=1e-6)


def test_tracker_and_nc_checkpoint_give_equal_nc_values(run):
    tmp, source, data, store, model, tracker = run
    ckpt = usable.save_checkpoint(tmp / "resnet18.pt", [model.state_dict()], in_shape=[3, 32, 32], n_out=10,
                                  seeds=[0], decoder="torchvision:resnet18")
    exe = str(Path(sys.executable).with_name("usable"))
    out = subprocess.run([exe, "-q", "run", f"nc:checkpoint={ckpt},layers={'+'.join(LAYERS)}", "--source", source,
                          "--decoder", "torchvision:resnet18", "--store", str(tmp / "nc.zarr"), "--name", "nc",
                          "--threads", "1", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ref = usable.open_results(tmp / "nc.zarr")["nc"].load().sel(seed=0)
    ds = usable.open_results(store)["resnet18-s0"].load().sel(epoch=EPOCHS)
    assert ref.layer.values.tolist() == LAYERS
    for nc_name, name in NC_VARS.items():
        for layer in LAYERS:
            want = ref[nc_name].sel(layer=layer).values
            got = ds[name].sel(layer=LAYERS.index(layer) + 1).values
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=0, equal_nan=True, err_msg=f"{name} {layer}")
    assert np.isfinite(ds.nc1.values).all()


def test_training_is_the_same_without_the_tracker(run):
    tmp, source, data, store, tracked, tracker = run
    plain, _ = train(data)
    a, b = tracked.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # weights and batch-norm running statistics (num_batches_tracked included), bit for bit
        assert torch.equal(a[k], b[k]), k
    tracked.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(tracked(data.test.xs[0]), plain(data.test.xs[0]))
    assert tracked.training is False and all(not m._forward_hooks for m in tracked.modules())
