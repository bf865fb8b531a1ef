"""`usable sweep`: grids on a real dask LocalCluster, resume after SIGKILL, failure isolation,
concurrent sweeps in one store. Every stored number is compared with the same cell computed on
its own (one seed, one β, in this process): the sweep must store exactly what a single run gives.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from usable import RunSpec, SpecError, open_results, run_metric
from usable.cli import make_cli

USABLE = str(Path(sys.executable).with_name("usable"))
FIT_BASE = ["--decoder", "linear", "--optimizer", "adam", "--lr", "0.05", "--divergence", "l1:reduction=mean",
            "--no-progress"]
FIT = [*FIT_BASE, "--epochs", "3"]
HEADLINE = ("redundant_information", "divergence", "cross_entropy", "usable_information")


def reference(task: str, seeds, betas, n=400, epochs=3, **source):
    """The same cell(s) run on their own, the ordinary way (run_metric on one RunSpec)."""
    extra = "".join(f",{k}={v}" for k, v in source.items())
    return run_metric(RunSpec.create("rine", [f"pid:task={task},n={n}{extra}"], decoder="linear",
                                     divergence="l1:reduction=mean", betas=betas, seeds=seeds, epochs=epochs,
                                     optimizer="adam", lr=0.05, progress=False, threads=1))


def sweep(args, store, expect=0):
    res = CliRunner().invoke(make_cli(), ["sweep", "rine", "--source", "pid:task=rdnxor,n=400", *FIT,
                                          "--store", str(store), *args])
    assert res.exit_code == expect, res.output + repr(res.exception)
    return res.output


def open_sweep(store, name):
    return open_results(store)[name].load()


def test_sweep_on_local_cluster_equals_cells_run_one_by_one(store, tmp_path):
    out = sweep(["--grid", "source.task=rdnxor,and,unq", "--grid", "beta=0,5", "--grid", "seed=0-1",
                 "--workers", "2", "--name", "grid"], store)
    assert "LocalCluster (2 workers x 1 thread)" in out and "dask dashboard: http" in out
    assert "12 cells, 12 to run in 3 tasks" in out  # seeds and βs of one task share one fit
    ds = open_sweep(store, "grid")
    assert ds.attrs["kind"] == "sweep" and list(ds.status.dims) == ["source_task", "beta", "seed"]
    assert (ds.status == 1).all()
    for task in ("rdnxor", "and", "unq"):
        for seed in (0, 1):
            for beta in (0.0, 5.0):
                ref = reference(task, [seed], [0.0, 5.0]).sel(seed=seed)  # rine refuses a lone β = 0
                cell = ds.sel(source_task=task, seed=seed, beta=beta)
                for v in HEADLINE:
                    want = ref[v].sel(beta=beta) if "beta" in ref[v].dims else ref[v]
                    np.testing.assert_allclose(cell[v].values, want.values, rtol=0, atol=1e-12, err_msg=f"{task} {seed} {beta} {v}")

    # querying a sweep like a run: --sel and --mean over the grid
    show = CliRunner().invoke(make_cli(), ["results", "show", str(store), "grid", "--sel", "beta=5", "--mean", "seed"])
    assert show.exit_code == 0, show.output
    assert show.output.splitlines()[1] == "sweep over source_task, seed: 6 cells: 6 done, 0 failed, 0 pending"
    want = float(ds.redundant_information.sel(source_task="and", beta=5).mean("seed"))
    row = [ln for ln in show.output.splitlines() if ln.strip().startswith("redundant_information") and " and " in ln]
    assert row and f"{want:.4f}" in row[0]
    png = tmp_path / "grid.png"
    plot = CliRunner().invoke(make_cli(), ["results", "plot", str(store), "grid", "-o", str(png)])
    assert plot.exit_code == 0 and png.stat().st_size > 5000, plot.output

    # the same command again: nothing to do, nothing rewritten
    before = ds.written_time.values.copy()
    again = sweep(["--grid", "source.task=rdnxor,and,unq", "--grid", "beta=0,5", "--grid", "seed=0-1",
                   "--workers", "2", "--name", "grid"], store)
    assert "all 12 cells already done" in again
    np.testing.assert_array_equal(open_sweep(store, "grid").written_time.values, before)


KILL_GRID = ["--grid", "source.seed=0-5", "--grid", "seed=0-1", "--beta", "5", "--epochs", "12"]


def test_sigkill_then_rerun_writes_every_cell_once(store):
    fit = FIT_BASE
    cmd = [USABLE, "sweep", "rine", "--source", "pid:task=rdnxor,n=2000", *fit, *KILL_GRID,
           "--executor", "serial", "--store", str(store), "--name", "killed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    status_path = store / "killed"
    deadline = time.time() + 120
    while time.time() < deadline:
        if (status_path / "status" / "zarr.json").exists():
            st = zarr.open_group(str(status_path), mode="r")["status"][...]
            if (st == 1).sum() >= 2:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    before = open_sweep(store, "killed")
    done_before = before.status.values == 1
    assert 2 <= done_before.sum() < 12, "the kill must land mid-sweep"
    for v in HEADLINE:  # a cell marked done has all of its data
        assert np.isfinite(before[v].values[done_before]).all()

    runner = CliRunner().invoke(make_cli(), ["sweep", "rine", "--source", "pid:task=rdnxor,n=2000", *fit,
                                             *KILL_GRID, "--executor", "serial", "--store", str(store),
                                             "--name", "killed"])
    assert runner.exit_code == 0, runner.output
    n_before = int(done_before.sum())
    assert f"{12 - n_before} to run" in runner.output and f"{n_before} already done" in runner.output
    after = open_sweep(store, "killed")
    assert (after.status == 1).all() and (after.error == "").all()
    # cells done before the kill were not written again
    np.testing.assert_array_equal(after.written_time.values[done_before], before.written_time.values[done_before])
    for s in range(6):  # every cell holds exactly what it holds when run on its own
        ref = reference("rdnxor", [0, 1], [5.0], n=2000, epochs=12, seed=s)
        for v in HEADLINE:
            got = after[v].sel(source_seed=s)
            got, want = ((got.sel(beta=5.0), ref[v].sel(beta=5.0)) if "beta" in ref[v].dims else (got, ref[v]))
            np.testing.assert_allclose(got.values, want.transpose("seed", ...).values, atol=1e-12, err_msg=f"{s} {v}")


def test_failing_cell_is_recorded_and_others_finish(store):
    # test_fraction=0 leaves no test samples: that cell's fit raises, the others must not care.
    res = CliRunner().invoke(make_cli(), ["sweep", "rine", "--source", "pid:task=rdnxor,n=400", *FIT, "--beta", "5",
                                          "--grid", "source.test_fraction=0.2,0,0.3", "--grid", "seed=0-1",
                                          "--executor", "serial", "--retries", "1", "--store", str(store),
                                          "--name", "fails"])
    assert res.exit_code == 1
    assert "2 failed cells" in res.output and "source_test_fraction=0.0, seed=0" in res.output
    ds = open_sweep(store, "fails")
    st = ds.status.values
    assert st.tolist() == [[1, 1], [2, 2], [1, 1]]
    msg = str(ds.error.sel(source_test_fraction=0.0, seed=1).values)
    assert "held-out fraction must lie strictly between 0 and 1" in msg and "after 2 attempts" in msg
    assert np.isnan(ds.redundant_information.sel(source_test_fraction=0.0)).all()
    ref = reference("rdnxor", [0, 1], [5.0], test_fraction=0.3)
    np.testing.assert_allclose(ds.redundant_information.sel(source_test_fraction=0.3, beta=5.0).values,
                               ref.redundant_information.sel(beta=5.0).values, atol=1e-12)


def test_two_sweeps_write_one_store_at_the_same_time(store):
    grid = ["--grid", "source.task=rdnxor,and", "--grid", "source.seed=0-3", "--grid", "seed=0-1",
            "--executor", "serial", "--store", str(store)]
    args = ["sweep", "rine", "--source", "pid:task=rdnxor,n=400", *FIT, "--beta", "5", *grid]
    left = subprocess.Popen([USABLE, *args, "--name", "left"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (store / "left" / "status" / "zarr.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    left_running = left.poll() is None
    right = CliRunner().invoke(make_cli(), [*args, "--name", "right"])  # this process, meanwhile
    out = left.communicate(timeout=300)[0]
    assert left_running and left.returncode == 0 and right.exit_code == 0, (out, right.output)
    res = open_results(store)
    assert res.runs == ["left", "right"] and set(res.table().kind) == {"sweep"}
    a, b = res["left"].load(), res["right"].load()
    assert (a.status == 1).all() and (b.status == 1).all()
    # the two sweeps really wrote at the same time: their commit times interleave
    assert b.written_time.min() < a.written_time.max()
    for v in HEADLINE:
        np.testing.assert_array_equal(a[v].values, b[v].values)
    ref = reference("and", [0, 1], [5.0], seed=3)
    np.testing.assert_allclose(a.redundant_information.sel(source_task="and", source_seed=3, beta=5.0).values,
                               ref.redundant_information.sel(beta=5.0).values, atol=1e-12)


def test_resume_grows_the_grid_and_refuses_conflicts(store):
    grid = ["--grid", "seed=0-1", "--grid", "beta=0,5", "--executor", "serial", "--name", "grow"]
    sweep(grid, store)
    first = open_sweep(store, "grow")
    out = sweep(["--grid", "seed=0-3", *grid[2:]], store)
    assert "growing sweep" in out and "4 to run" in out and "4 already done" in out
    ds = open_sweep(store, "grow")
    assert ds.seed.values.tolist() == [0, 1, 2, 3] and (ds.status == 1).all()
    np.testing.assert_array_equal(ds.written_time.sel(seed=[0, 1]).values, first.written_time.values)
    ref = reference("rdnxor", [2, 3], [0.0, 5.0])
    np.testing.assert_allclose(ds.redundant_information.sel(seed=[2, 3]).transpose("seed", "beta").values,
                               ref.redundant_information.values, atol=1e-12)

    dropped = sweep(["--grid", "seed=0,2", *grid[2:]], store, expect=1)
    assert "drops [1, 3]" in dropped
    changed = CliRunner().invoke(make_cli(), ["sweep", "rine", "--source", "pid:task=rdnxor,n=400",
                                              *FIT_BASE, "--epochs", "4", *grid, "--store", str(store)])
    assert changed.exit_code == 1 and "epochs" in changed.output and "other settings" in changed.output


def test_metric_without_a_beta_dim_is_split_per_beta(store):
    # `usable` fits β = 0 only and returns no beta dim: the sweep must run one task per β.
    res = CliRunner().invoke(make_cli(), ["sweep", "usable:pvi=false", "--source", "pid:task=and,n=400", *FIT,
                                          "--grid", "beta=0,5", "--grid", "seed=0-1", "--executor", "serial",
                                          "--store", str(store), "--name", "u"])
    assert res.exit_code == 0, res.output
    ds = open_sweep(store, "u")
    assert ds.attrs["split_dims"] == '["beta"]' and (ds.status == 1).all()
    np.testing.assert_array_equal(ds.usable_information.sel(beta=0).values, ds.usable_information.sel(beta=5).values)
    assert np.isfinite(ds.usable_information.values).all()


def test_grid_from_toml_typed_grouped_and_validated(tmp_path, store):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('metric = "rine"\nsource = "pid:task=rdnxor,n=400"\ndecoder = "linear"\nepochs = 2\n'
                   '[grid]\nbeta = [0, 5]\nseed = "0-2"\nsource.task = ["and", "xor"]\n'
                   '[sweep]\nexecutor = "serial"\n')
    res = CliRunner().invoke(make_cli(), ["sweep", "--config", str(cfg), "--store", str(store), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "12 cells in 2 tasks" in lines[0]  # 2 tasks × (3 seeds × 2 βs) per fit
    assert "pid:task=and,n=400" in lines[1] and "seeds=[0, 1, 2] betas=[0.0, 5.0]" in lines[1]

    from usable_sweep.grid import all_cells, build_axes, flatten_grid_table, plan_tasks
    base = RunSpec.create("rine", ["pid:task=and"])
    axes = build_axes(flatten_grid_table({"seed": "0-2", "source": {"n": "100,200"}, "lr": [0.1, 0.01],
                                          "decoder.hidden": "5+5,10"}), base)
    assert [(a.dim, a.values) for a in axes] == [("seed", (0, 1, 2)), ("source_n", (100, 200)),
                                                 ("lr", (0.1, 0.01)), ("decoder_hidden", ("5+5", "10"))]
    assert len(plan_tasks(axes, set(all_cells(axes)))) == 8
    assert len(plan_tasks(axes, set(all_cells(axes)), frozenset({"seed"}))) == 24
    with pytest.raises(SpecError, match="has no parameter 'width'.*takes: task, n"):
        build_axes({"source.width": "2,4"}, base)
    with pytest.raises(SpecError, match="allowed values"):
        build_axes({"source.task": "and,bogus"}, base)
    both = CliRunner().invoke(make_cli(), ["sweep", "--config", str(cfg), "--store", str(store), "--seed", "0"])
    assert both.exit_code != 0 and "seed is on the grid and also given" in both.output
