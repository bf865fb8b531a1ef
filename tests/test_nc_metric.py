"""The ``nc`` metric end to end: train cnn_minus on digits, store (layer, split) arrays, show them."""
import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

import usable
from usable.cli import make_cli


def _run(args):
    r = CliRunner().invoke(make_cli(), args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    pytest.importorskip("usable_vision")
    d = tmp_path_factory.mktemp("nc")
    store, ck = d / "r.zarr", d / "cnn.pt"
    _run(["run", f"nc:save={ck}", "--source", "digits", "--decoder", "cnn_minus", "--epochs", "2",
          "--seed", "0", "--threads", "1", "--no-progress", "--store", str(store), "--name", "trained"])
    return store, ck


def test_every_layer_of_cnn_minus_is_stored_and_shown(cnn_run):
    store, ck = cnn_run
    ds = usable.open_results(store)["trained"].load()
    assert list(ds["layer"].values) == ["block1", "block2", "block3", "head"]
    assert list(ds["split"].values) == ["train", "test"]
    assert ds["nc1"].dims == ("seed", "layer", "split")
    assert ds["class_within_variance"].dims == ("seed", "layer", "split", "class")
    assert ds.attrs["classifier_layer"] == "block3" and ds.attrs["weighting"] == "sample"
    nc1 = ds["nc1"].values
    assert np.isfinite(nc1).all() and (nc1 > 0).all()
    # NC3 only where the classifier reads the layer; NC4 everywhere; the rank is C − 1 = 9
    assert np.isfinite(ds["nc3"].sel(layer="block3")).all() and np.isnan(ds["nc3"].sel(layer="block1")).all()
    assert (ds["rank"].values == 9).all()
    # per-class counts add up to the split sizes of the source
    data = usable.create("sources", "digits")
    assert int(ds["class_count"].sel(layer="head", split="train").sum()) == len(data.train)
    assert int(ds["class_count"].sel(layer="head", split="test").sum()) == len(data.test)
    out = _run(["results", "show", str(store), "trained"])
    for token in ("nc1", "trace_quotient", "nc4", "block1", "block3", "head", "train", "test"):
        assert token in out


def test_checkpoint_reproduces_the_trained_networks_measurement(cnn_run, tmp_path):
    store, ck = cnn_run
    _run(["run", f"nc:checkpoint={ck},splits=test", "--source", "digits", "--decoder", "cnn_minus",
          "--no-progress", "--store", str(store), "--name", "reloaded"])
    res = usable.open_results(store)
    a, b = res["trained"].sel(split="test").load(), res["reloaded"].load()
    np.testing.assert_allclose(b["nc1"].sel(split="test").values, a["nc1"].values, rtol=1e-12)
    assert b.attrs["checkpoint"] == str(ck)
    png = tmp_path / "nc.png"
    assert str(png) in _run(["results", "plot", str(store), "trained", "-o", str(png)])
    assert png.stat().st_size > 1000


def test_amortised_mode_says_so_and_measures_full_train_split():
    ctx = usable.RunContext(usable.RunSpec.create("nc:amortised=true,method=two_pass", ["digits"],
                                                  decoder="mlp:hidden=32+16", epochs=2, progress=False))
    ds = usable.run_metric(ctx)
    assert ds.attrs["amortised"] is True and ds.attrs["measurement"].startswith("amortised")
    n_train = len(ctx.data.train)
    assert (ds["n_samples"].sel(split="train").values == n_train).all()
    assert np.isfinite(ds["nc1"].values).all()


def test_nc_refuses_several_sources():
    ctx = usable.RunContext(usable.RunSpec.create("nc", ["pid:task=and"]))
    with pytest.raises(ValueError, match="single --source"):
        usable.run_metric(ctx)
