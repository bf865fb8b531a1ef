"""Pointwise V-information (PVI = log2 f(y|x) − log2 p_null(y)), stored by metric ``usable`` with
dim ``sample``: its mean is the reported usable information, and each sample's value matches the
exact pointwise information where the true conditional is known."""
import math

import numpy as np
import pytest

from usable import FitConfig, RunSpec, get_entry, open_results, run_metric, write_run
from usable_pid import exact_mutual_information

FAST = dict(epochs=10, batch_size=256, optimizer="adam", lr=0.1, lr_decay=0.9, weight_decay=0.0,
            progress=False)


def usable_run(source, seeds=(0, 1)):
    return run_metric(RunSpec.create("usable", [source], decoder="linear", seeds=seeds, fit=FitConfig(**FAST)))


def test_pvi_on_and_task_matches_exact_pointwise_information(store):
    """AND: p(y=1) = ¼; given X1 = 0, Y = 0 surely; given X1 = 1, Y is a fair bit. So the PVI of
    (x1, y) is log2(1/¾) = 0.415 for (0, 0), log2(½/¾) = −0.585 for (1, 0), log2(½/¼) = 1 for (1, 1)."""
    ds = usable_run("pid:task=and,n=4000")
    pvi = ds.pvi
    assert pvi.dims == ("seed", "source", "sample") and pvi.attrs["units"] == "bit"
    np.testing.assert_allclose(pvi.mean("sample").values, ds.usable_information.values, rtol=1e-12, atol=1e-12)
    data = get_entry("sources", "pid").create({"task": "and", "n": "4000"})
    x1, y = data.test.xs[0].argmax(1).numpy(), data.test.y.numpy()
    exact = {(0, 0): math.log2(4 / 3), (1, 0): math.log2(2 / 3), (1, 1): 1.0}
    got = pvi.sel(source="x1").values  # (seed, sample)
    for (a, b), value in exact.items():
        cell = (x1 == a) & (y == b)
        assert cell.sum() > 100
        assert np.abs(got[:, cell] - value).max() < 0.05, ((a, b), got[:, cell].mean(), value)
    assert not ((x1 == 0) & (y == 1)).any()
    # I(X1;Y) = Σ p(x, y)·PVI(x, y) = ½·0.415 + ¼·(−0.585) + ¼·1 = 0.311 bit
    truth = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
    assert truth == pytest.approx(exact_mutual_information("and", (0,)), abs=1e-12)
    assert float(ds.usable_information.sel(source="x1").mean()) == pytest.approx(truth, abs=0.03)
    run = write_run(store, ds)  # PVI survives the store round trip sample by sample
    back = open_results(store)[run]
    np.testing.assert_array_equal(back.pvi.values, pvi.values)


def test_pvi_on_gaussian_target_matches_closed_form():
    """X = Y + N(0, σ²), Y ~ N(0, 1): f(y|x) = N(x/(1+σ²), σ²/(1+σ²)), p_null = N(0, 1)."""
    sigma = 0.5
    ds = usable_run(f"gaussian:mode=copy,sigma={sigma},n=20000,test_fraction=0.5", seeds=(0,))
    np.testing.assert_allclose(ds.pvi.mean("sample").values, ds.usable_information.values, rtol=1e-12)
    data = get_entry("sources", "gaussian").create({"mode": "copy", "sigma": str(sigma), "n": "20000",
                                                    "test_fraction": "0.5"})
    x, y = data.test.xs[0][:, 0].double().numpy(), data.test.y.double().numpy()
    v = sigma ** 2 / (1 + sigma ** 2)
    log2n = lambda z, m, var: (-0.5 * np.log(2 * np.pi * var) - (z - m) ** 2 / (2 * var)) / math.log(2)
    exact = log2n(y, x / (1 + sigma ** 2), v) - log2n(y, 0.0, 1.0)
    got = ds.pvi.sel(seed=0, source="x1").values
    assert np.corrcoef(got, exact)[0, 1] > 0.999
    assert np.abs(got - exact).mean() < 0.03
    assert got.mean() == pytest.approx(0.5 * math.log2(1 + 1 / sigma ** 2), abs=0.03)
