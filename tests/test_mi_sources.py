"""Ground-truth sources of the ``usable_mi`` plugin against closed forms and Monte Carlo.

Gaussian pairs: I(X;Y) = −½·log2(1 − ρ²) per independent pair. Student-t: the closed form of
Arellano-Valle, Contreras-Reyes & Genton (2013, Scand. J. Stat. 40:42-62), I = I_Gauss(Σ) + f(ν)
+ f(ν+m+n) − f(ν+m) − f(ν+n) with f(a) = log Γ(a/2) − (a/2)ψ(a/2), checked here against a Monte
Carlo average of log p(x,y)/(p(x)p(y)) with scipy's multivariate_t densities.
"""
import math
import subprocess
import sys

import numpy as np
import pytest

from usable import DataError, SpecError, create, get_entry
from usable_mi.sources import (gaussian_pair_bits, gaussian_pmi_bits, random_invertible_mlp, rho_for_bits,
                               student_correction_nats, student_pair_bits, student_pmi_bits, untransformed)


def _all(d):
    x = np.concatenate([d.train.xs[0].double().numpy(), d.test.xs[0].double().numpy()])
    y = np.concatenate([d.train.xs[1].double().numpy(), d.test.xs[1].double().numpy()])
    return x, y


@pytest.mark.parametrize("dim,bits", [(1, 1.0), (5, 4.0), (25, 1.0)])
def test_gaussian_pairs_have_the_mutual_information_they_claim(dim, bits):
    d = create("sources", f"mi_gaussian:dim={dim},bits={bits},n=20000")
    assert d.names == ["x", "y"] and d.in_shape(0) == (dim,) and d.in_shape(1) == (dim,)
    assert d.attrs["true_mi_bits"] == pytest.approx(bits, abs=1e-12)
    x, y = _all(d)
    rho = np.array([np.corrcoef(x[:, k], y[:, k])[0, 1] for k in range(dim)])
    assert rho == pytest.approx(d.attrs["rho"], abs=0.02)
    # pairs are independent of each other: cross-correlations vanish
    if dim > 1:
        assert abs(np.corrcoef(x[:, 0], y[:, 1])[0, 1]) < 0.03
    empirical = float(sum(-0.5 * math.log2(1 - r * r) for r in rho))
    assert empirical == pytest.approx(bits, abs=0.03 * dim)
    # the mean true pointwise MI of the draw is the truth up to sampling error
    assert gaussian_pmi_bits(x, y, d.attrs["rho"]).mean() == pytest.approx(bits, abs=0.05)


def test_rho_for_bits_inverts_the_closed_form():
    for bits, pairs in ((1.0, 1), (4.0, 5), (0.3, 25)):
        assert gaussian_pair_bits(rho_for_bits(bits, pairs), pairs) == pytest.approx(bits, rel=1e-12)


@pytest.mark.parametrize("transform", ["halfcube", "asinh", "mlp"])
def test_transforms_are_bijections_of_the_same_draw(transform):
    """MI-preserving maps act on the source's own draw: same truth, same ranks where monotone."""
    base = create("sources", "mi_gaussian:dim=3,bits=2,n=3000,seed=4")
    t = create("sources", f"mi_gaussian:dim=3,bits=2,n=3000,seed=4,transform={transform}")
    assert t.attrs["true_mi_bits"] == base.attrs["true_mi_bits"]
    bx, _ = _all(base)
    tx, _ = _all(t)
    assert not np.allclose(bx, tx)
    if transform != "mlp":  # coordinate-wise and increasing: the order of every coordinate is kept
        np.testing.assert_array_equal(np.argsort(bx, axis=0), np.argsort(tx, axis=0))
    ux, _ = untransformed("gaussian", 3, base.attrs["rho"], 3000, 4)
    np.testing.assert_allclose(np.sort(ux[:, 0]), np.sort(bx[:, 0]), atol=1e-6)


def test_random_mlp_is_invertible():
    f = random_invertible_mlp(4, np.random.default_rng(0))
    v = np.random.default_rng(1).normal(size=(2000, 4))
    eps = 1e-6
    jac = np.stack([(f(v + eps * np.eye(4)[k]) - f(v - eps * np.eye(4)[k])) / (2 * eps) for k in range(4)], axis=-1)
    # orthogonal layers and leaky-ReLU slopes 1 or 0.3: |det J| = 0.3^j, j ≤ 2 layers × 4 units, never 0
    assert (np.abs(np.linalg.det(jac)) > 0.99 * 0.3 ** 8).all()
    out = f(v)
    assert len(np.unique(out.round(9), axis=0)) == len(v)  # and injective on the sample


@pytest.mark.parametrize("dim,df,rho", [(1, 1.0, 0.0), (2, 3.0, 0.5), (3, 2.0, 0.0)])
def test_student_closed_form_matches_monte_carlo(dim, df, rho):
    truth = student_pair_bits(df, dim, rho)
    x, y = untransformed("student", dim, rho, 200_000, 11, df)
    pmi = student_pmi_bits(x, y, rho, df)
    se = pmi.std() / math.sqrt(len(pmi))
    assert abs(pmi.mean() - truth) < 4 * se + 1e-3, (pmi.mean(), truth, se)
    d = create("sources", f"mi_student:dim={dim},df={df},rho={rho},n=500")
    assert d.attrs["true_mi_bits"] == pytest.approx(truth)


def test_student_correction_known_values():
    # ν → ∞: a Student-t becomes Gaussian and the correction vanishes; it is positive for finite ν
    assert student_correction_nats(1e7, 2, 2) == pytest.approx(0.0, abs=1e-6)
    assert student_correction_nats(1.0, 1, 1) > student_correction_nats(3.0, 1, 1) > 0
    # 1 × 1 Cauchy (ν = 1, Σ = I): c = f(1) + f(3) − 2 f(2) in closed form
    f = lambda a: math.lgamma(a / 2) - (a / 2) * _digamma(a / 2)  # noqa: E731
    assert student_correction_nats(1.0, 1, 1) == pytest.approx(f(1) + f(3) - 2 * f(2))


def _digamma(v):
    from scipy.special import digamma
    return float(digamma(v))


def test_bad_parameters_are_clear_errors():
    make = get_entry("sources", "mi_gaussian").create
    with pytest.raises(SpecError, match="bits must be"):
        make({"bits": "-1"})
    with pytest.raises(SpecError, match="dim must be"):
        make({"dim": "0"})
    with pytest.raises(Exception, match="halfcube"):
        make({"transform": "square"})
    with pytest.raises(SpecError, match="rho"):
        get_entry("sources", "mi_student").create({"rho": "1"})


def test_bmi_source_without_benchmark_mi_is_a_one_line_error():
    try:
        import bmi  # noqa: F401
        pytest.skip("benchmark-mi is installed here")
    except ImportError:
        pass
    with pytest.raises(DataError, match=r"install usable\[bmi\]"):
        create("sources", "bmi:task=1v1-normal-0.75")
    out = subprocess.run([sys.executable, "-m", "usable.cli", "run", "ksg", "--source", "bmi:task=1v1-normal-0.75"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "install usable[bmi]" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
