"""Continuous targets: the ``gaussian`` source and linear-Gaussian decoders N(w·x + c, s²) with s
learned, against closed forms in bits. Held-out sets of 10,000 samples keep the sampling error of
each estimate near 0.01 bit (sd of the pointwise information ≈ 1 bit / √10,000)."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from usable import FitConfig, RunContext, RunSpec, get_entry, run_metric

FAST = dict(epochs=10, batch_size=512, optimizer="adam", lr=0.1, lr_decay=0.9, weight_decay=0.0,
            progress=False)
SIZE = "n=20000,test_fraction=0.5"


def half_log2(sigma):
    return 0.5 * math.log2(1 + 1 / sigma ** 2)


def ctx_for(metric, source, betas=(15.0,), seeds=(0, 1)):
    return RunContext(RunSpec.create(metric, [source], decoder="linear", divergence="mean_sq", schedule="exp:gamma=0.7",
                                     betas=betas, seeds=seeds, fit=FitConfig(**FAST)))


def test_source_modes_are_what_they_claim():
    make = get_entry("sources", "gaussian").create
    for mode in ("copy", "transform", "halves", "noise"):
        d = make({"mode": mode, "sigma": "0.5", "n": "20000", "a": "-3", "b": "2"})
        assert d.target == "real" and d.names == ["x1", "x2"] and d.in_shape(0) == (1,)
        x1 = torch.cat([d.train.xs[0][:, 0], d.test.xs[0][:, 0]]).double().numpy()
        x2 = torch.cat([d.train.xs[1][:, 0], d.test.xs[1][:, 0]]).double().numpy()
        y = torch.cat([d.train.y, d.test.y]).double().numpy()
        assert abs(y.mean()) < 0.03 and abs(y.var() - 1) < 0.04  # Y ~ N(0, 1) in every mode
        if mode == "copy":
            np.testing.assert_array_equal(x1, x2)
        if mode == "transform":
            np.testing.assert_allclose(x2, -3 * x1 + 2, rtol=1e-5, atol=1e-5)
        if mode == "halves":
            np.testing.assert_allclose(x1 + x2, y, atol=1e-5)
            assert abs(x1.var() - 0.5) < 0.02 and abs(np.corrcoef(x1, x2)[0, 1]) < 0.03
        # jointly Gaussian: I(X;Y) = −½·log2(1 − ρ²); compare with the attrs' closed forms
        for x, key in ((x1, "mi_x1_bits"), (x2, "mi_x2_bits")):
            rho = np.corrcoef(x, y)[0, 1]
            assert -0.5 * math.log2(1 - rho ** 2) == pytest.approx(d.attrs[key], abs=0.02), (mode, key)
    assert make({"mode": "copy", "sigma": "1"}).attrs["true_redundancy_bits"] == 0.5


def test_bad_parameters_are_clear_errors():
    make = get_entry("sources", "gaussian").create
    with pytest.raises(ValueError, match="sigma must be > 0"):
        make({"sigma": "0"})
    with pytest.raises(ValueError, match="a != 0"):
        make({"mode": "transform", "a": "0"})
    with pytest.raises(Exception, match="copy, transform, halves, noise"):
        make({"mode": "mirror"})


def test_usable_information_of_one_source_matches_closed_form():
    ds = run_metric(ctx_for("usable", f"gaussian:mode=copy,sigma=0.5,{SIZE}", betas=(0.0,)))
    got = ds.usable_information.sel(source="x1").values  # (seed,)
    assert np.abs(got - half_log2(0.5)).max() < 0.03, (got, half_log2(0.5))  # 1.1610 bits
    # H_V(Y|∅) is the fitted marginal Gaussian: ½·log2(2πe·var) ≈ 2.047 bits for var 1
    assert float(ds.null_entropy) == pytest.approx(0.5 * math.log2(2 * math.pi * math.e), abs=0.03)
    assert ds.attrs["null_model"] == "Gaussian fitted on the training split"


@pytest.mark.parametrize("mode", ["copy", "transform"])
@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_rine_of_copy_and_transform_is_the_mutual_information(mode, sigma):
    """Redundancy = I(X1;Y) = ½·log2(1 + 1/σ²) (RINE paper prop. 2 for the invertible transform)."""
    ds = run_metric(ctx_for("rine", f"gaussian:mode={mode},sigma={sigma},a=-2,b=3,{SIZE}"))
    truth = half_log2(sigma)
    rine = ds.redundant_information.sel(beta=15.0).values
    assert np.abs(rine - truth).max() < 0.05, (rine, truth)
    assert np.abs(ds.usable_information.values - truth).max() < 0.03  # β = 0: each source alone
    assert float(ds.divergence.max()) < 0.01  # the two means agree


def _penalised_optimum(mode, beta, sigma):
    """Exact I∩ at finite β for linear-Gaussian decoders and the mean_sq divergence: minimise
    (1/2)·Σ_i CE_i + β·E(μ1 − μ2)² over the slopes (offsets = E Y = 0, s² = residual variance)."""
    if mode == "halves":  # μ_i = w·X_i, Var X_i = ½: s² = 1 − w + w²/2, E(μ1 − μ2)² = w²
        f = lambda w: 0.5 * math.log(1 - w + w * w / 2) + beta * w * w
        w = minimize_scalar(f, bounds=(0, 1), method="bounded", options={"xatol": 1e-10}).x
        return -0.5 * math.log2(1 - w + w * w / 2)
    v = 1 + sigma ** 2  # noise: μ1 = w·X1, μ2 constant (X2 ⊥ Y); source 2 contributes 0 bit
    f = lambda w: 0.25 * math.log(1 - 2 * w + w * w * v) + beta * w * w * v
    w = minimize_scalar(f, bounds=(0, 1), method="bounded", options={"xatol": 1e-10}).x
    return 0.5 * (-0.5 * math.log2(1 - 2 * w + w * w * v))


@pytest.mark.parametrize("mode", ["halves", "noise"])
def test_rine_of_halves_and_noise_vanishes(mode):
    """No common function carries information: RINE → 0 as β grows, although I(X1;Y) ≥ 0.5 bit.
    At β = 15 the remaining value is the exact optimum of the penalised objective (≈ 0.012 bit)."""
    ds = run_metric(ctx_for("rine", f"gaussian:mode={mode},sigma=1,{SIZE}", betas=(0.0, 15.0)))
    rine = ds.redundant_information
    assert float(rine.sel(beta=15.0).max()) <= 0.05
    assert np.abs(rine.sel(beta=15.0).values - _penalised_optimum(mode, 15.0, 1.0)).max() < 0.01
    ui = ds.usable_information.mean("seed").values
    np.testing.assert_allclose(ui, [0.5, 0.5] if mode == "halves" else [0.5, 0.0], atol=0.03)
    np.testing.assert_allclose(rine.sel(beta=0.0).values, ui.mean(), atol=0.03)  # β = 0: mean of the two


def test_gaussian_decoder_learns_the_residual_sd():
    """fit's Gaussian path: log σ per member and source converges to the residual sd σ/√(1+σ²)."""
    from usable import fit
    data = get_entry("sources", "gaussian").create({"mode": "noise", "sigma": "0.5", "n": "20000"})
    res = fit(data, get_entry("decoders", "linear").create({}), betas=[0.0], seeds=[0, 1],
              config=FitConfig(**FAST))
    sd = res.log_sigma.exp().numpy()  # (member, source)
    np.testing.assert_allclose(sd[:, 0], 0.5 / math.sqrt(1.25), rtol=0.03)  # X1 = Y + N(0, ¼)
    np.testing.assert_allclose(sd[:, 1], 1.0, rtol=0.03)  # X2 ⊥ Y: the marginal sd
