"""Every divergence plugin against a direct numpy formula, plus the metric properties it must have:
zero for identical predictions, symmetric, non-negative, and its documented maximum."""
import math

import numpy as np
import pytest
import torch

from usable.registry import get_entry

RNG = np.random.default_rng(7)
K = 6
P = RNG.dirichlet(np.full(K, 0.7), size=200)
Q = RNG.dirichlet(np.full(K, 0.7), size=200)


def _kl(p, q):
    with np.errstate(divide="ignore", invalid="ignore"):  # 0·log 0 = 0; p > 0 = q gives +inf
        return np.sum(np.where(p > 0, p * np.log(p / q), 0.0), axis=-1)


# name, spec params, numpy reference, maximum (disjoint supports; None = unbounded)
CASES = [
    ("l1", {}, lambda p, q: np.abs(p - q).sum(-1), 2.0),
    ("l1", {"reduction": "mean"}, lambda p, q: np.abs(p - q).sum(-1) / p.shape[-1], 2.0 / K),
    ("tv", {}, lambda p, q: 0.5 * np.abs(p - q).sum(-1), 1.0),
    ("js", {}, lambda p, q: (0.5 * _kl(p, (p + q) / 2) + 0.5 * _kl(q, (p + q) / 2)) / math.log(2), 1.0),
    ("skl", {}, lambda p, q: _kl(p, q) + _kl(q, p), None),
    ("hellinger", {}, lambda p, q: np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)), 1.0),
    ("hellinger", {"squared": "true"}, lambda p, q: 0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1), 1.0),
    ("l2", {}, lambda p, q: np.sqrt(((p - q) ** 2).sum(-1)), math.sqrt(2)),
    ("l2", {"squared": "true"}, lambda p, q: ((p - q) ** 2).sum(-1), 2.0),
]
IDS = [f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in p.items()) if p else ''}" for n, p, _, _ in CASES]


def _fn(name, params):
    return get_entry("divergences", name).create(params)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("name,params,ref,top", CASES, ids=IDS)
def test_divergence_matches_numpy_and_is_a_proper_divergence(name, params, ref, top):
    d = _fn(name, params)
    got = d(_t(P), _t(Q)).numpy()
    assert got.shape == (len(P),)
    np.testing.assert_allclose(got, ref(P, Q), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d(_t(Q), _t(P)).numpy(), got, rtol=1e-12, atol=1e-15)  # symmetric
    assert (got > 0).all()  # non-negative, and positive for distinct distributions
    assert np.abs(d(_t(P), _t(P)).numpy()).max() == 0.0  # exactly zero for identical predictions
    if top is not None:
        assert got.max() <= top + 1e-12
        one_hot = torch.eye(K, dtype=torch.float64)
        disjoint = d(one_hot[:-1], one_hot[1:]).numpy()
        np.testing.assert_allclose(disjoint, top, rtol=1e-5)  # the documented range is attained


@pytest.mark.parametrize("name,params,ref,top", CASES, ids=IDS)
def test_divergence_keeps_leading_dims_and_has_finite_gradients(name, params, ref, top):
    """fit calls divergences on (members, batch[, heads], classes) softmax outputs, including saturated
    ones (exact 0 probabilities in float32), and backpropagates through them."""
    d = _fn(name, params)
    torch.manual_seed(5)  # the draw below must not depend on which tests ran before
    logits = torch.randn(3, 5, 2, K, dtype=torch.float32) * 3
    logits[0, 0, 0, 0] = 200.0  # saturated softmax: other probabilities underflow to exactly 0
    logits.requires_grad_(True)
    p = torch.softmax(logits, -1)
    q = torch.softmax(torch.randn(3, 5, 2, K), -1)
    out = d(p, q)
    assert out.shape == (3, 5, 2)
    want = ref(p.detach().double().numpy(), q.double().numpy())
    if name == "skl":  # true SKL is infinite when p_k = 0 < q_k; the plugin clamps at 1e-12 (documented)
        assert np.isinf(want[0, 0, 0])
        pc, qc = (np.clip(a[0, 0, 0], 1e-12, None) for a in (p.detach().double().numpy(), q.double().numpy()))
        clamped = float((p.detach().double().numpy()[0, 0, 0] * (np.log(pc) - np.log(qc))).sum()
                        + (q.double().numpy()[0, 0, 0] * (np.log(qc) - np.log(pc))).sum())
        assert float(out[0, 0, 0].detach()) == pytest.approx(clamped, rel=1e-4)  # the clamped formula, exactly
        want[0, 0, 0] = clamped
    np.testing.assert_allclose(out.detach().double().numpy(), want, rtol=2e-4, atol=2e-6)
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()
    same = torch.softmax(torch.randn(4, K, requires_grad=True), -1)
    z = d(same, same.detach().clone())
    z.sum().backward()  # at p = q (where training ends up) the gradient must exist, not be NaN


def test_mean_sq_for_gaussian_means():
    d = _fn("mean_sq", {})
    mu_p, mu_q = RNG.normal(size=(50, 1)), RNG.normal(size=(50, 1))
    got = d(_t(mu_p), _t(mu_q)).numpy()
    np.testing.assert_allclose(got, ((mu_p - mu_q) ** 2)[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(d(_t(mu_q), _t(mu_p)).numpy(), got)
    assert d(_t(mu_p), _t(mu_p)).abs().max() == 0 and (got >= 0).all()


def test_divergences_declare_their_targets_and_wrong_target_is_a_clear_error():
    from usable import RunContext, RunSpec, SpecError

    assert get_entry("divergences", "mean_sq").extra["targets"] == ("real",)
    for name in ("l1", "tv", "js", "skl", "hellinger", "l2"):
        assert get_entry("divergences", name).extra["targets"] == ("classes",)
    ctx = RunContext(RunSpec.create("rine", ["gaussian"], divergence="l1"))
    with pytest.raises(SpecError, match=r"l1.*classes.*real.*mean_sq"):
        ctx.divergence_fn("real")
    with pytest.raises(SpecError, match="reduction"):
        _fn("l1", {"reduction": "max"})
