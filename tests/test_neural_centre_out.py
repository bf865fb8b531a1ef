"""The simulated centre-out task: firing matches the documented rate model, and the simulated
recording read back from an NWB file gives exactly the same sources as the centre_out source."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from usable import create, format_spec
from usable.cli import make_cli
from usable_neural.simulation import AREAS, simulate_session
from usable_neural.recording import trial_features
from usable_neural.windows import parse_windows


def source(name, **params):
    return create("sources", format_spec(name, {k: str(v) for k, v in params.items()}))


def test_mean_counts_match_the_cosine_rate_model():
    """drift=0 and gain_mod=0: the expected count of unit u for target k in [a, b) ms after onset is
    Σ_bins max(0, b_u + d_u (1 − e^{−t/60}) cos(θ_k − φ_u)) · 10 ms; baseline [-200, 0) is b_u · 0.2 s."""
    params = {a: {"baseline": np.array([10.0, 20.0]), "depth": np.array([8.0, 15.0]) * (1 if a == "PMd" else 0.5),
                  "preferred": np.array([0.0, np.pi / 2]), "gain_phase": np.zeros(2)} for a in AREAS}
    rec = simulate_session(n_trials=1000, targets=8, drift=0.0, gain_mod=0.0, unit_params=params, seed=11)
    feats = trial_features(rec, event="target_on_time", windows=parse_windows("-200:0+0:100+200:400"),
                           target="target_pos", warn=False)
    k = rec.trials["target_index"][feats.trial_index]

    def expected(t0, t1, theta):
        t = np.arange(t0, t1, 10.0)  # bin starts; the rate is constant within a 10 ms bin
        rate = b[None, :] + d[None, :] * (1 - np.exp(-t / 60.0))[:, None] * np.cos(theta - phi)[None, :]
        return np.clip(rate, 0, None).sum(axis=0) * 0.010

    b = np.concatenate([params[a]["baseline"] for a in AREAS])
    d = np.concatenate([params[a]["depth"] for a in AREAS])
    phi = np.concatenate([params[a]["preferred"] for a in AREAS])
    worst = 0.0
    for target in range(8):
        c = feats.counts[k == target]                      # (1000, 3 windows, 4 units)
        theta = 2 * np.pi * target / 8
        for window, exp in ((0, b * 0.2), (1, expected(0, 100, theta)), (2, expected(200, 400, theta))):
            se = np.sqrt(exp / len(c))                     # Poisson: var = mean
            z = np.abs(c[:, window, :].mean(axis=0) - exp) / se
            worst = max(worst, float(z.max()))
    assert worst < 4.5, f"a mean count is {worst:.1f} standard errors from the rate model"


def test_nwb_round_trip_gives_identical_sources(tmp_path):
    result = CliRunner().invoke(make_cli(), ["neural", "simulate", str(tmp_path), "--n-trials", "12", "--units", "6",
                                      "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "session1.nwb (96 trials, 12 units)" in result.output
    sim = source("centre_out", n_trials=12, units=6, seed=4, areas="PMd+M1", window="50:450:100")
    nwb = source("nwb", file=tmp_path / "session1.nwb", window="50:450:100", group_by="location",
                 target="target_pos", bins=8, seed=4)
    assert sim.names == nwb.names == [f"{a}/{w}" for a in AREAS
                                      for w in ("50:150ms", "150:250ms", "250:350ms", "350:450ms")]
    for a, b in zip(sim.train.xs + sim.test.xs, nwb.train.xs + nwb.test.xs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(sim.train.y, nwb.train.y) and torch.equal(sim.test.y, nwb.test.y)
    assert sim.train.xs[0].sum() > 0


def test_sessions_are_paired_and_named():
    data = source("centre_out", n_trials=10, units=5, sessions=3, window="50:150", areas="PMd")
    assert data.names == ["session1", "session2", "session3"]
    assert data.n_classes == 8
    assert np.bincount(torch.cat([data.train.y, data.test.y]).numpy()).tolist() == [10] * 8
    with pytest.raises(ValueError, match=r"the simulated areas are PMd\+M1"):
        source("centre_out", areas="V1")
