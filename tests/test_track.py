"""The training tracker on real digits: stored (epoch, layer, split) arrays, ground truths that
do not depend on training (NC1 of the raw input), resume from a checkpoint, plots."""
import numpy as np
import pytest
import torch
import xarray as xr

from usable import RunContext, RunSpec, open_results, run_metric, write_run
from usable_dib import EpochStore, equi_separation
from usable_dib.subset import balanced_subset
from usable_dib.progressive_store import CheckpointMismatch

SOURCE = "digits:test_fraction=0.1"  # ~180 test images -> a balanced training subset of that size


def make_ctx(ckpt, max_epochs, **extra):
    params = {"max_epochs": max_epochs, "dib_epochs": 3, "layers": "0+1+2", "checkpoint": str(ckpt), **extra}
    spec = "track:" + ",".join(f"{k}={v}" for k, v in params.items())
    return RunContext(RunSpec.create(spec, [SOURCE], decoder="mlp:hidden=32+16", batch_size=32, progress=False,
                                     threads=1))


def naive_nc1(h, y, C):
    """tr(Σ_W Σ_B⁺)/C with an explicit relative rank tolerance, from scratch in float64."""
    h = h.reshape(len(h), -1).astype(np.float64)
    mu = np.stack([h[y == c].mean(0) for c in range(C)])
    A = mu - h.mean(0)
    sb = A.T @ A / C
    dev = h - mu[y]
    sw = dev.T @ dev / len(h)
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-6, hermitian=True)) / C)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("track")
    ckpt = tmp / "ckpt"
    first = run_metric(make_ctx(ckpt, 1)).load()        # one epoch, then "interrupted"
    ctx = make_ctx(ckpt, 2)
    ds = run_metric(ctx).load()                          # resumes from the checkpoint
    return tmp, ckpt, first, ds, ctx


def test_stored_arrays_and_units(tracked):
    tmp, ckpt, first, ds, ctx = tracked
    for v in ("nc1", "sufficiency", "minimality"):
        assert ds[v].dims == ("epoch", "layer", "split"), v
        assert np.isfinite(ds[v].values).all(), v
    assert ds["loss"].dims == ("epoch", "split") and ds["accuracy"].dims == ("epoch", "split")
    assert ds.epoch.values.tolist() == [1, 2]
    assert ds.layer.values.tolist() == [0, 1, 2]
    assert ds.layer_name.values.tolist() == ["input", "fc1", "fc2"]
    assert ds.split.values.tolist() == ["train", "test"]
    assert ds.sufficiency.attrs["units"] == "bit"
    # information is bounded by the label entropy (balanced: log2 10) and minimality is >= 0
    assert bool((ds.sufficiency <= ds.label_entropy + 1e-9).all())
    assert (ds.minimality.values >= 0).all()
    per = len(ctx.data.test) // 10  # balanced subset the size of the test set
    assert ds.attrs["train_size"] == 10 * per and ds.attrs["balanced_per_class"] == per
    assert "fitted and evaluated on the training split" in ds.attrs["fit_and_evaluation"]


def test_input_nc1_matches_naive_computation(tracked):
    # layer 0 is the raw input: its NC1 does not depend on training, so it has an exact value
    tmp, ckpt, first, ds, ctx = tracked
    data, _ = balanced_subset(ctx.data, len(ctx.data.test), 0)
    for s, split in (("train", data.train), ("test", data.test)):
        truth = naive_nc1(split.xs[0].numpy(), split.y.numpy(), 10)
        got = ds.nc1.sel(layer=0, split=s).values
        assert got == pytest.approx([truth, truth], rel=1e-6)


def test_loss_and_accuracy_match_the_checkpointed_network(tracked):
    tmp, ckpt, first, ds, ctx = tracked
    from usable.ensemble import make_ensemble
    from usable_dib.evaluation import loss_accuracy
    from usable_dib.network import NetworkDecoder
    state = EpochStore(ckpt).load_state()
    assert state["epochs_done"] == 2
    model = make_ensemble(NetworkDecoder(ctx.decoder_obj()), (1, 8, 8), 10, [0])
    model.load_state_dict(state["model"])
    net = model.members[0]
    loss, acc, _ = loss_accuracy(net, ctx.data.test.xs[0], ctx.data.test.y, 4096)
    assert float(ds.loss.sel(epoch=2, split="test")) == pytest.approx(loss, rel=1e-6)
    assert float(ds.accuracy.sel(epoch=2, split="test")) == pytest.approx(acc, abs=1e-12)
    acc_direct = float((net.eval()(ctx.data.test.xs[0]).argmax(1) == ctx.data.test.y).double().mean())
    assert acc == pytest.approx(acc_direct, abs=1e-12)


def test_resume_keeps_finished_epochs(tracked):
    tmp, ckpt, first, ds, ctx = tracked
    assert EpochStore(ckpt).done_epochs() == [1, 2]
    for v in ("nc1", "sufficiency", "minimality", "loss", "accuracy"):
        np.testing.assert_array_equal(ds[v].sel(epoch=1).values, first[v].sel(epoch=1).values)
    with pytest.raises(CheckpointMismatch, match="dib_epochs"):
        run_metric(make_ctx(ckpt, 2, dib_epochs=4))


def test_equi_separation_is_pearson_of_log_nc1(tracked):
    tmp, ckpt, first, ds, ctx = tracked
    r = equi_separation(ds)
    for e in ds.epoch.values:
        for s in ("train", "test"):
            v = ds.nc1.sel(epoch=e, split=s).sel(layer=[1, 2]).values
            expected = np.corrcoef(np.log(v), [1.0, 2.0])[0, 1]
            assert float(r.sel(epoch=e, split=s)) == pytest.approx(expected, abs=1e-12)


def test_plots_render_png(tracked):
    tmp, ckpt, first, ds, ctx = tracked
    from usable_results.plots import plot_run
    store = tmp / "res.zarr"
    rid = write_run(store, ds)
    written = plot_run(open_results(store)[rid], str(tmp / "t.png"))
    assert len(written) == 6
    for p in written:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_digits_config_end_to_end(tmp_path):
    """The shipped digits config (cnn_minus, 10 epochs, all layers) on CPU, then every plot."""
    import tomllib
    from pathlib import Path
    from click.testing import CliRunner
    from usable.cli import make_cli
    cfg = tomllib.loads(Path("core/usable/configs/track-digits.toml").read_text())
    metric = cfg["metric"].replace("results/track-digits.ckpt", str(tmp_path / "ckpt"))
    store = tmp_path / "r.zarr"
    out = CliRunner().invoke(make_cli(), ["run", metric, "--config", "track-digits",
                                          "--store", str(store), "--no-progress"])
    assert out.exit_code == 0, out.output
    res = open_results(store)
    ds = res[res.runs[0]].load()
    for v in ("nc1", "sufficiency", "minimality"):
        assert ds[v].dims == ("epoch", "layer", "split")
    assert float(ds.accuracy.isel(epoch=-1).sel(split="train")) > 0.9
    out = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "-o", str(tmp_path / "p.png")])
    assert out.exit_code == 0 and out.output.count("wrote") == 6
