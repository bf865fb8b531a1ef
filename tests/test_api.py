"""The functional API on plain arrays: the same numbers as `usable run` on the same data and seeds,
ground-truth values, torch tensors, and one-line errors for bad input."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import usable
from usable import open_results
from usable.cli import make_cli

FAST = dict(epochs=3, threads=1)


def _data(n=600, k=3, seed=0):
    """Two noisy one-hot views of a k-class label (float64, as users hold them)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x1 = np.eye(k)[y] + rng.normal(0, 0.6, (n, k))
    x2 = np.eye(k)[y] + rng.normal(0, 0.6, (n, k))
    return x1, x2, y


def _cli_run(store, name, *args):
    out = CliRunner().invoke(make_cli(), ["run", *args, "--epochs", "3", "--threads", "1", "--no-progress",
                                          "--store", str(store), "--name", name])
    assert out.exit_code == 0, out.output
    return open_results(store)[name].load()


def _assert_same_run(api, cli):
    assert sorted(api.data_vars) == sorted(cli.data_vars)
    for v in api.data_vars:
        assert api[v].dims == cli[v].dims, v
        if api[v].dtype.kind in "fiub":
            np.testing.assert_allclose(api[v].values, cli[v].values, rtol=0, atol=1e-6, err_msg=v)
        else:  # text, e.g. flags naming what a value violates
            assert api[v].values.tolist() == cli[v].values.tolist(), v
    for c in api.coords:
        assert api[c].values.tolist() == cli[c].values.tolist(), c
    for key in ("metric", "decoder", "divergence", "schedule", "betas", "seeds", "fit", "headline"):
        assert api.attrs[key] == cli.attrs[key], key


def test_rine_and_usable_information_give_the_cli_numbers(tmp_path):
    x1, x2, y = _data()
    file = tmp_path / "data.npz"
    np.savez(file, x1=x1, x2=x2, y=y)
    store = tmp_path / "r.zarr"

    cli = _cli_run(store, "rine", "rine", "--source", f"arrays:file={file},sources=x1+x2,target=y",
                   "--beta", "15", "--seed", "0,1")
    api = usable.rine([x1, x2], y, beta=15, seeds=[0, 1], **FAST)
    _assert_same_run(api, cli)
    assert api.redundant_information.dims == ("seed", "beta")

    cli = _cli_run(store, "usable", "usable", "--source", f"arrays:file={file},sources=x1,target=y", "--seed", "0,1")
    api = usable.usable_information(x1, y, names=["x1"], seeds=[0, 1], **FAST)
    _assert_same_run(api, cli)
    # eager: plain numpy, and the headline of one seed is one number
    assert isinstance(api.usable_information.data, np.ndarray)
    one = usable.usable_information(x1, y, seeds=0, **FAST)
    assert one.usable_information.item() == pytest.approx(api.usable_information.sel(seed=0).item(), abs=1e-6)


def test_torch_tensors_give_the_numpy_numbers():
    x1, x2, y = _data(n=300)
    a = usable.rine([x1, x2], y, beta=5, **FAST)
    b = usable.rine([torch.tensor(x1), torch.tensor(x2, dtype=torch.float32)], torch.tensor(y), beta=5, **FAST)
    assert a.redundant_information.item() == pytest.approx(b.redundant_information.item(), abs=1e-6)


def test_ground_truth_copies_and_independent_noise():
    """Y uniform over 4 classes (H = 2 bits): a copy of Y carries it all, two copies share it all;
    a source independent of Y has nothing to share."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 300)
    copy = np.eye(4)[y]
    noise = rng.normal(size=(len(y), 4))
    # every setting pinned, so a change of the command line's defaults cannot move these numbers
    fit = dict(decoder="linear", optimizer="adam", lr=0.05, weight_decay=0.0, epochs=30, threads=1)
    pair = dict(divergence="l1", schedule="exp", **fit)
    u = usable.usable_information([copy, noise], y, **fit)
    h = float(u.null_entropy)
    assert h == pytest.approx(2.0, abs=1e-9)  # balanced classes, stratified split: exactly uniform
    assert u.usable_information.sel(source="x1").item() > 0.97 * h
    assert abs(u.usable_information.sel(source="x2").item()) < 0.05
    both = usable.rine([copy, copy], y, beta=5, **pair)
    assert both.redundant_information.item() > 0.97 * h
    none = usable.rine([copy, noise], y, beta=5, **pair)
    assert abs(none.redundant_information.item()) < 0.05


def _naive_nc(h, y):
    """NC1 = tr(Σ_W Σ_B⁺)/C and tr Σ_W / tr Σ_B with sample-weighted means, straight from the formulas."""
    h = h.astype(np.float64)
    classes = np.unique(y)
    mu = h.mean(0)
    means = np.stack([h[y == c].mean(0) for c in classes])
    centred = h - means[np.searchsorted(classes, y)]
    sw = centred.T @ centred / len(h)
    a = means - mu
    sb = a.T @ a / len(classes)
    return np.trace(sw @ np.linalg.pinv(sb, rcond=1e-8)) / len(classes), np.trace(sw) / np.trace(sb)


def test_neural_collapse_of_the_features_matches_the_formulas():
    x1, _, y = _data(n=500, k=4)
    nc = usable.neural_collapse(x1, y, **FAST)
    assert nc.nc1.dims == ("seed", "layer", "split") and nc.layer.values.tolist() == ["penultimate"]
    test = usable.from_arrays([x1], y).test  # the split every function uses
    nc1, quotient = _naive_nc(test.xs[0].numpy(), test.y.numpy())
    assert nc.nc1.sel(split="test").item() == pytest.approx(nc1, rel=1e-5)
    assert nc.trace_quotient.sel(split="test").item() == pytest.approx(quotient, rel=1e-5)
    # features that are their class means: fully collapsed
    means = np.eye(4)[y] * 3.0
    collapsed = usable.neural_collapse(means + 1e-4 * np.random.default_rng(0).normal(size=means.shape), y, **FAST)
    assert collapsed.nc1.sel(split="test").item() < 1e-6
    assert collapsed.ncc_error.sel(split="test").item() == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda x, y: usable.rine(x, y, beta=15), "rine needs a list of at least 2 sources"),
    (lambda x, y: usable.usable_information(x, y[:-1]), "has 100 samples but y has 99"),
    (lambda x, y: usable.usable_information(np.where(x > 1.5, np.nan, x), y), "NaN or infinite values"),
    (lambda x, y: usable.usable_information(x, y + 0.5), "non-integer numbers"),
    (lambda x, y: usable.usable_information(x, np.where(y == 0, np.nan, y)), "NaN labels"),
    (lambda x, y: usable.usable_information(x, y[:, None]), "y.ravel()"),
    (lambda x, y: usable.usable_information(x, np.zeros(100)), "single class"),
    (lambda x, y: usable.usable_information(np.array(["a"] * 100), y), "features must be numbers"),
    (lambda x, y: usable.usable_information(x, y, epoch=3), "Did you mean epochs?"),
    (lambda x, y: usable.usable_information(x, y, decoder="mpl"), "unknown decoder 'mpl'"),
    (lambda x, y: usable.rine([x, x], y, beta=-1), "finite numbers >= 0"),
])
def test_bad_input_is_one_line_naming_the_fix(call, message):
    x, _, y = _data(n=100)
    with pytest.raises(usable.UserError) as err:
        call(x, y)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_public_and_documented():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    for name in ("usable_information", "rine", "neural_collapse", "from_arrays", "query_runs", "require"):
        assert name in usable.__all__ and f"`{name}`" in text, name


def test_an_impossible_value_is_a_python_warning_and_a_flag():
    """Labels independent of 100 noise features (truth: 0 bit), a wide MLP trained 100 epochs:
    it memorises the 800 training samples and is far worse than the null model on the 200 held
    out. The call warns (GuardWarning) as `usable run` prints, and the flag says why."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 1000)
    x = rng.normal(size=(1000, 100)).astype(np.float32)
    with pytest.warns(usable.GuardWarning, match="negative .*over-fitting"):
        ds = usable.usable_information(x, y, decoder="mlp:hidden=64-64", epochs=100, lr=0.01, threads=1)
    assert ds.usable_information.item() < -1.0
    assert "over-fitting" in ds.flags.item()
