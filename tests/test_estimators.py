"""End-to-end estimators against exact values of the canonical PID tasks."""
import numpy as np
import pytest
from click.testing import CliRunner

from usable import DataError, FitConfig, RunContext, RunSpec, run_metric
from usable.cli import make_cli
from usable_pid import REDUNDANCY, exact_mutual_information


def _ctx(metric, source, **fit):
    cfg = dict(epochs=30, progress=False)
    cfg.update(fit)
    return RunContext(RunSpec.create(metric, [source], decoder="mlp", divergence="l1:reduction=mean", schedule="exp",
                                     fit=FitConfig(**cfg)))


def test_exact_mutual_information_of_the_tables():
    # closed forms: I(X1;Y) for AND = 1.5 − 0.75·log2(3)·... computed independently here
    h_and = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))         # H(Y) = 0.8113
    i1_and = h_and - 0.5 * (-(0.5 * np.log2(0.5) * 2))              # H(Y) − H(Y|X1) = 0.3113
    assert exact_mutual_information("and", (0,)) == pytest.approx(i1_and, abs=1e-12)
    assert exact_mutual_information("and", (0, 1)) == pytest.approx(h_and, abs=1e-12)
    assert exact_mutual_information("rdnxor", (0,)) == pytest.approx(1.0, abs=1e-12)
    assert exact_mutual_information("rdnxor", (0, 1)) == pytest.approx(2.0, abs=1e-12)
    assert exact_mutual_information("xor3", (0, 1)) == pytest.approx(0.0, abs=1e-12)
    assert exact_mutual_information("xor3", (0, 1, 2)) == pytest.approx(1.0, abs=1e-12)


def test_usable_information_of_and_matches_mutual_information():
    """I_V(X_i→Y) ≈ I(X_i;Y) = 0.311 bit per source and 0.811 bit jointly (MLPs can represent the
    Bayes decoder of these discrete tasks, so usable and Shannon information coincide)."""
    # Adam without weight decay reaches the Bayes decoder (SGD with the paper's weight decay
    # stops ~0.02 bit short in 30 epochs).
    ds = run_metric(_ctx("usable:joint=true", "pid:task=and", optimizer="adam", weight_decay=0.0, epochs=20))
    ui = ds["usable_information"].sel(seed=0)
    assert list(ds["source"].values) == ["x1", "x2", "x1+x2"]
    for src in ("x1", "x2"):
        assert float(ui.sel(source=src)) == pytest.approx(exact_mutual_information("and", (0,)), abs=0.03)
    assert float(ui.sel(source="x1+x2")) == pytest.approx(exact_mutual_information("and", (0, 1)), abs=0.03)
    # the null model is the fitted label marginal, not log2 K: H(Y) = 0.811 for AND, not 1 bit
    assert float(ds["null_entropy"]) == pytest.approx(0.8113, abs=0.02)


def test_same_seed_gives_identical_results_on_cpu():
    a = run_metric(_ctx("usable", "pid:task=and,n=1000", epochs=3))
    b = run_metric(_ctx("usable", "pid:task=and,n=1000", epochs=3))
    np.testing.assert_array_equal(a["cross_entropy"].values, b["cross_entropy"].values)
    np.testing.assert_array_equal(a["pvi"].values, b["pvi"].values)
    c = run_metric(_ctx("usable", "pid:task=and,n=1000,seed=1", epochs=3))
    assert not np.array_equal(a["pvi"].values, c["pvi"].values)


def test_demo_command_reports_rdnxor_redundancy(tmp_path):
    """The `make demo` command: RDNXOR has exactly 1 bit of redundant information."""
    store = tmp_path / "demo.zarr"
    out = CliRunner().invoke(make_cli(), ["run", "rine", "--source", "pid:task=rdnxor", "--beta", "15", "--seed", "0",
                                          "--divergence", "l1:reduction=mean", "--no-progress", "--store", str(store)])
    assert out.exit_code == 0, out.output
    line = next(l for l in out.output.splitlines() if l.strip().startswith("redundant_information"))
    value = float(line.split()[2])
    assert 0.90 <= value <= 1.05 and abs(value - REDUNDANCY["rdnxor"]) < 0.05
    ls = CliRunner().invoke(make_cli(), ["results", "ls", str(store)])
    assert "rine" in ls.output and "pid:task=rdnxor" in ls.output and "l1:reduction=mean" in ls.output


def test_rine_needs_two_sources():
    ctx = _ctx("rine", "pid:task=and", epochs=1)
    ctx.__dict__["data"] = ctx.data.select([0])  # one source only
    with pytest.raises(DataError, match="rine needs at least 2 sources"):
        run_metric(ctx)
