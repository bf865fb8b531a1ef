"""Bad input, as a hostile but realistic user gives it: every case must fail with a non-zero exit,
one ``Error:`` line naming the problem, no traceback, and nothing written anywhere (the tree
around the store is compared file by file before and after). Most cases run in-process through
click's runner; SUBPROCESS cases go through the installed console script, so the start-up paths
are covered too. Runs use huge epoch counts and sample sizes where training could start: a case
that trained before failing would not finish in time, so passing shows the check came first.
"""
from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from usable import write_run
from usable.cli import make_cli

USABLE = str(Path(sys.executable).with_name("usable"))
SLOW = ["--epochs", "100000"]          # a case that reached training would never end
BIG = "pid:task=and,n=200000"
OK = ["rine", "--source", "pid:task=and", "--beta", "5"]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store holding one run, a regular file, a folder with other content, data files."""
    root = tmp_path_factory.mktemp("world")
    import xarray as xr
    write_run(root / "s.zarr", xr.Dataset({"v": ("seed", np.arange(2.0))}, coords={"seed": [0, 1]},
                                          attrs={"metric": "usable"}), run_id="old")
    (root / "file.zarr").write_text("x")
    (root / "other").mkdir()
    (root / "other" / "notes.txt").write_text("mine")
    np.savez(root / "nan.npz", x=np.array([[1.0], [np.nan], [2.0], [3.0]]), y=np.array([0, 1, 0, 1]))
    np.savez(root / "good.npz", x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2,
             words=np.array(["a", "b"] * 10), split=np.array(["test"] * 20))
    np.savez(root / "empty.npz")
    (root / "text.npz").write_text("not a zip archive")
    np.save(root / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with open(root / "objects.npz", "wb") as fh:  # an .npz whose array is pickled objects
        import zipfile
        with zipfile.ZipFile(fh, "w") as z:
            z.write(root / "obj.npy", "x.npy")
    (root / "bad.toml").write_text('metric = "rine"\nepochs = "two"\n')
    (root / "bad_lr.toml").write_text('metric = "rine"\nlr = "fast"\n')
    (root / "bad_progress.toml").write_text('metric = "rine"\nprogress = "maybe"\n')
    (root / "unknown.toml").write_text('metric = "rine"\nepoch = 3\n')
    (root / "broken.toml").write_text('metric = "rine\n')
    cifar = root / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'pwned'}",))
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        with open(cifar / name, "wb") as fh:
            pickle.dump({"data": Evil()}, fh, protocol=2)
    ro = root / "readonly"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return root


def S(world):  # noqa: N802 - short for the store path in the table below
    return str(world / "s.zarr")


# (id, argv with {w} = the world folder, needle expected in the error line, via subprocess?)
CASES = [
    # 1. store and name problems, found before any training
    ("store-is-a-file", ["run", *OK, *SLOW, "--store", "{w}/file.zarr"], "is a file", True),
    ("store-is-root", ["run", *OK, *SLOW, "--store", "/"], "filesystem root", True),
    ("store-has-other-content", ["run", *OK, *SLOW, "--store", "{w}/other"], "other content", False),
    ("store-read-only-parent", ["run", *OK, *SLOW, "--store", "{w}/readonly/r.zarr"], "not writable", False),
    ("name-dotdot", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "../x"], "run name", True),
    ("name-slash", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "a/b"], "run name", False),
    ("name-hidden", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", ".h"], "run name", False),
    ("name-zarr-json", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "zarr.json"], "run name", False),
    ("name-space", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "a b"], "run name", False),
    ("name-newline", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "a\nb"], "run name", False),
    ("name-duplicate", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "old"], "already exists", True),
    ("name-empty", ["run", *OK, *SLOW, "--store", "{w}/s.zarr", "--name", "-x"], "run name", False),
    # 2. querying results
    ("show-no-such-run", ["results", "show", "{w}/s.zarr", "nosuchrun"], "no run 'nosuchrun'", True),
    ("ls-a-file", ["results", "ls", "{w}/file.zarr"], "not a results store", True),
    ("ls-missing", ["results", "ls", "{w}/nowhere.zarr"], "does not exist", False),
    ("show-missing-store", ["results", "show", "{w}/nowhere.zarr"], "does not exist", False),
    ("export-no-folder", ["results", "export", "{w}/s.zarr", "old", "/nodir/out.csv"], "does not exist", True),
    ("export-bad-suffix", ["results", "export", "{w}/s.zarr", "old", "{w}/out.txt"], "must end in .csv or .nc", False),
    ("export-literal-RUN", ["results", "export", "{w}/s.zarr", "RUN", "{w}/out.csv"], "no run 'RUN'", False),
    ("plot-no-such-run", ["results", "plot", "{w}/s.zarr", "nope", "-o", "{w}/p.png"], "no run 'nope'", False),
    ("show-sel-bad-dim", ["results", "show", "{w}/s.zarr", "old", "--sel", "beta=5"], "no dimension ['beta']", False),
    ("show-sel-bad-value", ["results", "show", "{w}/s.zarr", "old", "--sel", "seed=7"], "value not found", False),
    ("show-sel-no-equals", ["results", "show", "{w}/s.zarr", "old", "--sel", "seed"], "write dim=value", False),
    ("ls-where-bad", ["results", "ls", "{w}/s.zarr", "--where", "metric"], "--where", False),
    ("ls-where-unknown-col", ["results", "ls", "{w}/s.zarr", "--where", "colour=red"], "no column 'colour'", False),
    # 3. training settings
    ("batch-size-0", ["run", *OK, "--batch-size", "0"], "batch_size=0 must be >= 1", True),
    ("batch-size-negative", ["run", *OK, "--batch-size", "-5"], "batch_size=-5", False),
    ("threads-negative", ["run", *OK, "--threads", "-1"], "threads=-1 must be >= 1", True),
    ("threads-zero", ["run", *OK, "--threads", "0"], "threads=0", False),
    ("device-cuda", ["run", *OK, *SLOW, "--device", "cuda"], "CUDA is not available", True),
    ("device-gpu", ["run", *OK, "--device", "gpu"], "device='gpu'", False),
    ("epochs-zero", ["run", *OK, "--epochs", "0"], "epochs=0 must be >= 1", False),
    ("epochs-text", ["run", *OK, "--epochs", "two"], "'two' is not a valid integer", False),
    ("lr-zero", ["run", *OK, "--lr", "0"], "lr=0.0 must be > 0", False),
    ("lr-negative", ["run", *OK, "--lr", "-1"], "lr=-1.0", False),
    ("lr-nan", ["run", *OK, "--lr", "nan"], "not a finite number", True),
    ("lr-inf", ["run", *OK, "--lr", "inf"], "not a finite number", False),
    ("lr-text", ["run", *OK, "--lr", "fast"], "'fast' is not a valid float", False),
    ("lr-decay-zero", ["run", *OK, "--lr-decay", "0"], "lr_decay=0.0 must be > 0", False),
    ("momentum-nan", ["run", *OK, "--momentum", "nan"], "not a finite number", False),
    ("momentum-one", ["run", *OK, "--momentum", "1"], "momentum=1.0 must be below 1", False),
    ("momentum-negative", ["run", *OK, "--momentum", "-0.1"], "momentum=-0.1", False),
    ("weight-decay-negative", ["run", *OK, "--weight-decay", "-1"], "weight_decay=-1.0", False),
    ("eval-every-negative", ["run", *OK, "--eval-every", "-1"], "eval_every=-1", False),
    ("eval-batch-zero", ["run", *OK, "--eval-batch-size", "0"], "eval_batch_size=0", False),
    ("optimizer-unknown", ["run", *OK, "--optimizer", "lbfgs"], "'lbfgs' is not one of", False),
    ("divergence-form-unknown", ["run", *OK, "--divergence-form", "median"], "'median' is not one of", False),
    ("stop-loss-nan", ["run", *OK, "--stop-loss", "nan"], "not a finite number", False),
    ("toml-epochs-text", ["run", "--config", "{w}/bad.toml", "--source", "pid:task=and"], "'two'", True),
    ("toml-lr-text", ["run", "--config", "{w}/bad_lr.toml", "--source", "pid:task=and"], "'fast'", False),
    ("toml-progress-maybe", ["run", "--config", "{w}/bad_progress.toml", "--source", "pid:task=and"], "'maybe'", False),
    ("toml-unknown-key", ["run", "--config", "{w}/unknown.toml"], "unknown keys ['epoch']", False),
    ("toml-broken", ["run", "--config", "{w}/broken.toml"], "not valid TOML", False),
    ("config-missing", ["run", "--config", "{w}/none.toml"], "neither a file nor a shipped config", True),
    ("no-metric", ["run", "--source", "pid:task=and"], "give a METRIC", False),
    # 4. β and seeds
    ("beta-nan", ["run", "rine", "--source", "pid:task=and", "--beta", "nan"], "finite numbers >= 0", True),
    ("beta-inf", ["run", "rine", "--source", "pid:task=and", "--beta", "inf"], "finite numbers >= 0", False),
    ("beta-negative", ["run", "rine", "--source", "pid:task=and", "--beta", "-1"], "got [-1.0]", False),
    ("beta-text", ["run", "rine", "--source", "pid:task=and", "--beta", "high"], "is not a number", False),
    ("beta-twice", ["run", "rine", "--source", "pid:task=and", "--beta", "5,5"], "more than once", False),
    ("seed-descending", ["run", *OK, "--seed", "4-0"], "descending range", True),
    ("seed-negative", ["run", *OK, "--seed", "-1"], "non-negative", False),
    ("seed-text", ["run", *OK, "--seed", "x"], "'x' is not an integer or a range", False),
    ("seed-twice", ["run", *OK, "--seed", "0,0"], "more than once", False),
    ("rine-without-beta", ["run", "rine", "--source", BIG, *SLOW], "rine needs a β > 0", True),
    ("rine-beta-zero", ["run", "rine", "--source", BIG, *SLOW, "--beta", "0"], "rine needs a β > 0", False),
    # 5. plugin specs
    ("unknown-metric", ["run", "rien", "--source", "pid"], "unknown metric 'rien'", True),
    ("unknown-source", ["run", *OK[:1], "--source", "pdi:task=and", "--beta", "5"], "unknown source 'pdi'", False),
    ("unknown-decoder", ["run", *OK, "--decoder", "mpl"], "unknown decoder 'mpl'", False),
    ("unknown-divergence", ["run", *OK, "--divergence", "l3"], "unknown divergence 'l3'", False),
    ("unknown-schedule", ["run", *OK, "--schedule", "expo"], "unknown schedule 'expo'", False),
    ("unknown-param", ["run", *OK, "--decoder", "mlp:hiden=5"], "unknown parameter 'hiden'", True),
    ("divergence-typo-at-beta-0", ["run", "usable", "--source", BIG, *SLOW, "--divergence", "l1:reductin=mean"],
     "unknown parameter 'reductin'", False),
    ("param-bad-type", ["run", "rine", "--source", "pid:n=many", "--beta", "5"], "not a valid int", False),
    ("param-bad-choice", ["run", "rine", "--source", "pid:task=nand", "--beta", "5"], "allowed values", False),
    ("param-positional", ["run", "rine", "--source", "pid:and", "--beta", "5"], "takes no positional value", False),
    ("param-twice", ["run", "rine", "--source", "pid:task=and,task=xor", "--beta", "5"], "given twice", False),
    ("param-not-key-value", ["run", "rine", "--source", "pid:task=and,n", "--beta", "5"], "is not key=value", False),
    ("param-empty-key", ["run", "rine", "--source", "pid:=3", "--beta", "5"], "empty parameter name", False),
    ("pid-n-zero", ["run", "rine", "--source", "pid:n=0", "--beta", "5"], "n=0 samples", True),
    ("pid-n-negative", ["run", "rine", "--source", "pid:n=-5", "--beta", "5"], "n=-5 samples", False),
    ("pid-test-fraction-one", ["run", "rine", "--source", "pid:test_fraction=1", "--beta", "5"],
     "strictly between 0 and 1", False),
    ("pid-test-fraction-zero", ["run", "rine", "--source", "pid:test_fraction=0", "--beta", "5"],
     "strictly between 0 and 1", False),
    ("pid-n-one", ["run", "rine", "--source", "pid:n=1", "--beta", "5"], "n=1 samples", False),
    ("mlp-hidden-zero", ["run", *OK, "--decoder", "mlp:hidden=0"], "hidden sizes must be >= 1", True),
    ("mlp-hidden-negative", ["run", *OK, "--decoder", "mlp:hidden=-3"], "hidden sizes must be >= 1", False),
    ("mlp-hidden-old-grammar", ["run", *OK, "--decoder", "mlp:hidden=25-15-10"], "join list items with '+'", False),
    ("mlp-hidden-text", ["run", *OK, "--decoder", "mlp:hidden=wide"], "not a valid list of int", False),
    ("exp-gamma-one", ["run", *OK, "--schedule", "exp:gamma=1"], "gamma must be in (0, 1)", False),
    ("linear-warmup-negative", ["run", *OK, "--schedule", "linear:warmup=-1"], "warmup=-1.0", False),
    ("divergence-wrong-target", ["run", "rine", "--source", "gaussian", "--beta", "5", "--decoder", "linear"],
     "works on classes targets", True),
    ("timm-unknown-model", ["run", "usable", "--source", "digits", "--decoder", "timm:nosuchnet"],
     "unknown timm model", False),
    ("image-decoder-on-vectors", ["run", *OK, "--decoder", "resnet18"], "needs image sources", False),
    # 6. data files
    ("arrays-nan", ["run", "usable", "--source", "arrays:file={w}/nan.npz,sources=x,target=y"], "NaN or infinite", True),
    ("arrays-string-mask", ["run", "usable", "--source", "arrays:file={w}/good.npz,sources=x,target=y,test=words"],
     "must be a boolean mask", True),
    ("arrays-all-test", ["run", "usable", "--source", "arrays:file={w}/good.npz,sources=x,target=y,test=split"],
     "the train split is empty", False),
    ("arrays-empty-npz", ["run", "usable", "--source", "arrays:file={w}/empty.npz,sources=x,target=y"],
     "no arrays at all", False),
    ("arrays-text-file", ["run", "usable", "--source", "arrays:file={w}/text.npz,sources=x,target=y"],
     "not a readable .npz archive", False),
    ("arrays-pickled-objects", ["run", "usable", "--source", "arrays:file={w}/objects.npz,sources=x,target=x"],
     "pickled object arrays", False),
    ("arrays-missing-file", ["run", "usable", "--source", "arrays:file={w}/none.npz,sources=x,target=y"],
     "does not exist", False),
    ("arrays-missing-variable", ["run", "usable", "--source", "arrays:file={w}/good.npz,sources=z,target=y"],
     "has no array(s) z", False),
    ("arrays-missing-required", ["run", "usable", "--source", "arrays:file={w}/good.npz"], "is required", False),
    ("cifar-missing", ["run", "usable", "--source", "cifar10:root={w}/nothing"], "was not found under", False),
    ("cifar-crafted-pickle", ["run", "usable", "--source", "cifar10:root={w}/cifar,verify=false"],
     "refusing to unpickle", True),
    ("cifar-not-official", ["run", "usable", "--source", "cifar10:root={w}/cifar"], "md5", False),
    ("nwb-missing", ["run", "usable", "--source", "nwb:file={w}/none.nwb"], "does not exist", False),
    ("digits-test-fraction-zero", ["run", "usable", "--source", "digits:test_fraction=0"], "strictly between", False),
    ("centre-out-unknown-area", ["run", "usable", "--source", "centre_out:areas=V1"], "simulated areas are", False),
    ("synthetic-bad-n", ["run", "rine", "--source", "synthetic:n=3", "--beta", "5"], "must lie in 4..8", False),
    ("rine-max-divergence-negative", ["run", "rine:max_divergence=-1", "--source", "pid:task=and", "--beta", "5"],
     "max_divergence=-1.0 must be >= 0", False),
    ("tv-smooth-out-of-range", ["run", "rine", "--source", "pid:task=and", "--divergence", "tv:smooth=1.5", "--beta",
                                "5"], "smooth=1.5 must be in [0, 1)", False),
    # 7. a metric given data it cannot use
    ("rine-one-source", ["run", "rine", "--source", "digits", "--beta", "5"], "at least 2 sources", False),
    ("cosine-unequal-widths", ["run", "cosine", "--source", "pid:task=and", "--source", "pid:task=and,encoding=index"],
     "same number of features", False),
    ("nc-two-sources", ["run", "nc", "--source", "pid:task=and"], "single --source", False),
    ("matrix-one-source", ["run", "redundancy_matrix", "--source", "digits", "--beta", "5"], "at least 2 sources", False),
    ("table-with-source", ["run", "rine_table", "--source", "pid", "--beta", "5"], "drop --source", False),
    ("table-unknown-task", ["run", "rine_table:tasks=unq+nope", "--beta", "5"], "unknown task", False),
    ("track-two-seeds", ["run", "track", "--source", "digits", "--seed", "0-1"], "follows one training run", False),
    ("dib-real-target", ["run", "dib", "--source", "gaussian"], "class target", False),
    # 8. sweeps
    ("sweep-beta-nan", ["sweep", "rine", "--source", "pid", "--grid", "beta=nan,0", "--store", "{w}/sw.zarr"],
     "finite numbers >= 0", True),
    ("sweep-unknown-key", ["sweep", "rine", "--source", "pid", "--grid", "colour=1,2", "--store", "{w}/sw.zarr"],
     "unknown key", False),
    ("sweep-seed-twice", ["sweep", "rine", "--source", "pid", "--grid", "seed=0-2", "--seed", "0", "--store",
                          "{w}/sw.zarr"], "seed is on the grid and also given", False),
    ("sweep-no-store", ["sweep", "rine", "--source", "pid", "--grid", "beta=0,5"], "give --store PATH", False),
    ("sweep-no-grid", ["sweep", "rine", "--source", "pid", "--store", "{w}/sw.zarr"], "at least one --grid", False),
    ("sweep-param-unknown", ["sweep", "rine", "--source", "pid", "--grid", "source.width=2,4", "--store",
                             "{w}/sw.zarr"], "has no parameter 'width'", False),
    ("sweep-repeated-values", ["sweep", "rine", "--source", "pid", "--grid", "epochs=3,3", "--store", "{w}/sw.zarr"],
     "repeated values", False),
    ("sweep-retries-negative", ["sweep", "rine", "--source", "pid", "--grid", "beta=0,5", "--retries", "-1",
                                "--store", "{w}/sw.zarr"], "-1 is not in the range", False),
    ("sweep-serial-scheduler", ["sweep", "rine", "--source", "pid", "--grid", "beta=0,5", "--executor", "serial",
                                "--scheduler", "tcp://x:1", "--store", "{w}/sw.zarr"], "needs --executor dask", False),
    ("sweep-store-is-file", ["sweep", "rine", "--source", "pid", "--grid", "beta=0,5", "--store", "{w}/file.zarr"],
     "is a file", False),
    # 9. training that diverges stops with a clear error instead of storing NaN
    ("diverging-training", ["run", "rine", "--source", "pid:task=and,n=400", "--beta", "5", "--lr", "1e30",
                            "--epochs", "3", "--store", "{w}/s.zarr"], "training diverged", False),
]
IDS = [c[0] for c in CASES]


def _argv(case, world):
    return [a.replace("{w}", str(world)) for a in case[1]]


def _check(output: str, needle: str, case_id: str) -> None:
    assert "Traceback" not in output, (case_id, output)
    errors = [ln for ln in output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, (case_id, output)
    assert needle in errors[0], (case_id, errors[0])


def test_there_are_over_a_hundred_cases_and_twenty_through_the_console_script():
    assert len(CASES) >= 100 and sum(c[3] for c in CASES) >= 20 and len(set(IDS)) == len(IDS)


ROOT_IGNORES_PERMISSIONS = ("store-read-only-parent",)


def _skip_if_root(case):
    if case[0] in ROOT_IGNORES_PERMISSIONS and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the check cannot be exercised as root")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_in_process(case, world):
    _skip_if_root(case)
    before = _tree(world)
    out = CliRunner().invoke(make_cli(), _argv(case, world), catch_exceptions=True)
    assert out.exit_code != 0, (case[0], out.output)
    assert out.exception is None or isinstance(out.exception, SystemExit), (case[0], repr(out.exception))
    _check(out.output, case[2], case[0])
    assert _tree(world) == before, case[0]
    assert not (world / "pwned").exists()


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_bad_input_through_the_console_script(case, world):
    _skip_if_root(case)
    before = _tree(world)
    out = subprocess.run([USABLE, *_argv(case, world)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "USABLE_DATA": str(world / "nodata")})
    assert out.returncode != 0, (case[0], out.stdout, out.stderr)
    _check(out.stdout + out.stderr, case[2], case[0])
    assert _tree(world) == before, case[0]
    assert not (world / "pwned").exists()


def test_traceback_flag_shows_the_traceback_of_a_user_error():
    out = CliRunner().invoke(make_cli(), ["--traceback", "run", *OK, "--decoder", "mpl"])
    assert out.exit_code != 0 and "UnknownName" in repr(out.exception)


def test_a_genuine_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import usable_info.metrics as metrics

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a user error")
    monkeypatch.setattr(metrics, "compute_rine", broken)
    out = CliRunner().invoke(make_cli(), ["run", *OK])
    assert out.exit_code != 0 and isinstance(out.exception, ZeroDivisionError)


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    """torch.save can pickle anything; usable reads checkpoints with weights_only=True only."""
    import torch
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    torch.save({"format": "usable-networks/1", "meta": {}, "state_dicts": [Evil()]}, tmp_path / "ck.pt")
    for metric in (f"nc:checkpoint={tmp_path / 'ck.pt'}", f"dib:checkpoint={tmp_path / 'ck.pt'}"):
        out = CliRunner().invoke(make_cli(), ["run", metric, "--source", "digits", "--decoder", "mlp"])
        assert out.exit_code == 1 and "not a usable checkpoint" in out.output, out.output
        assert "Traceback" not in out.output and not marker.exists()
