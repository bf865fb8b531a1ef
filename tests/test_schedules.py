"""β-schedules: exact factor values, and that ``fit`` applies them per epoch or per step as stated."""

import numpy as np
import pytest
import torch

from usable import FitConfig, SourceData, SpecError, Split, fit, get_entry


def sched(name, **params):
    return get_entry("schedules", name).create({k: str(v) for k, v in params.items()})


def test_schedule_values_match_their_formulas():
    ts = np.array([0, 0.25, 1, 2.5, 5, 9, 10, 29, 40])
    exp = sched("exp", gamma=0.97)
    np.testing.assert_allclose([exp(t, 30) for t in ts], 1 - 0.97 ** ts, rtol=1e-12)
    assert exp(0, 30) == 0.0  # RINE paper eq. A9: β_0 = β(1 − γ⁰) = 0
    assert [sched("constant")(t, 30) for t in ts] == [1.0] * len(ts)
    lin = sched("linear")  # warmup 0 = the whole run: reaches β at the last epoch (29 of 30)
    np.testing.assert_allclose([lin(t, 30) for t in ts], np.minimum(1, ts / 29), rtol=1e-12)
    lin5 = sched("linear", warmup=5)
    np.testing.assert_allclose([lin5(t, 30) for t in ts], np.minimum(1, ts / 5), rtol=1e-12)
    cos = sched("cosine", warmup=10)
    np.testing.assert_allclose([cos(t, 30) for t in ts],
                               (1 - np.cos(np.pi * np.minimum(1, ts / 10))) / 2, rtol=1e-12, atol=1e-15)
    assert cos(5, 30) == pytest.approx(0.5) and cos(10, 30) == 1.0
    step = sched("step", at=10)
    assert [step(t, 30) for t in ts] == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    for f in (exp, lin, lin5, cos, step):  # every factor is a fraction of β, monotone in t
        vals = [f(t, 30) for t in np.linspace(0, 35, 141)]
        assert min(vals) >= 0 and max(vals) <= 1 and np.all(np.diff(vals) >= -1e-15)


def test_bad_schedule_parameters_are_clear_errors():
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\)"):
        sched("exp", gamma=1.5)
    with pytest.raises(SpecError, match="gamma"):
        sched("exp", gamma="fast")


def _two_sources(n=1000, seed=0):
    """Two noisy copies of a 3-class label: the decoders disagree unless β pulls them together."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    xs = [torch.nn.functional.one_hot(y, 3).float() + torch.randn(n, 3, generator=g) for _ in range(2)]
    tr, te = slice(0, 800), slice(800, n)
    return SourceData(Split([x[tr] for x in xs], y[tr]), Split([x[te] for x in xs], y[te]), ["a", "b"])


LINEAR = get_entry("decoders", "linear").create({})


@pytest.mark.parametrize("per_step", [False, True])
def test_fit_applies_the_schedule_per_epoch_or_per_step(per_step):
    """history['beta'] is the batch-weighted mean β in force over each epoch: β·s(epoch) per epoch,
    β·mean_k s(epoch + k/steps) per step (800 samples, batch 200: 4 equal steps)."""
    data, betas, epochs = _two_sources(), [0.0, 2.0, 10.0], 4
    s = sched("exp", gamma=0.5)
    cfg = FitConfig(epochs=epochs, batch_size=200, optimizer="sgd", lr=0.1, schedule_per_step=per_step,
                    eval_every=0, progress=False)
    res = fit(data, LINEAR, divergence=get_entry("divergences", "l1").create({}), schedule=s, betas=betas,
              seeds=[0], config=cfg)
    factors = [np.mean([s(e + k / 4, epochs) for k in range(4)]) if per_step else s(e, epochs)
               for e in range(epochs)]
    np.testing.assert_allclose(res.history["beta"], np.outer(factors, betas), rtol=1e-6, atol=1e-12)
    if not per_step:
        assert res.history["beta"][0].max() == 0.0  # exp starts at β = 0 (reverse annealing)
    else:
        assert res.history["beta"][0, 2] == pytest.approx(10 * (1 - (1 + 0.5 ** 0.25 + 0.5 ** 0.5 + 0.5 ** 0.75) / 4))


def test_step_schedule_leaves_training_untouched_until_it_switches_on():
    """Members with the same seed share their initialisation and mini-batch order, so until the
    step schedule switches β on, the β = 10 member follows the β = 0 member exactly; after the
    switch it trades cross-entropy for agreement."""
    data = _two_sources(seed=1)
    cfg = FitConfig(epochs=8, batch_size=100, optimizer="sgd", lr=0.2, eval_every=0, progress=False)
    res = fit(data, LINEAR, divergence=get_entry("divergences", "l1").create({}), schedule=sched("step", at=3),
              betas=[0.0, 10.0], seeds=[5], config=cfg)
    h = res.history
    np.testing.assert_allclose(h["beta"][:, 1], [0, 0, 0, 10, 10, 10, 10, 10])
    before = slice(0, 3)
    np.testing.assert_allclose(h["train_ce"][before, 1], h["train_ce"][before, 0], rtol=1e-5)
    np.testing.assert_allclose(h["train_divergence"][before, 1], h["train_divergence"][before, 0], rtol=1e-5)
    assert h["train_divergence"][2, 0] > 0.2  # the sources' noise makes free decoders disagree
    assert h["train_divergence"][-1, 1] < 0.5 * h["train_divergence"][-1, 0]
    assert h["train_ce"][-1, 1].mean() > h["train_ce"][-1, 0].mean()
    assert res.test_divergence[1] < 0.5 * res.test_divergence[0]
