"""Results store: atomic runs, string coordinates, provenance, Python API."""
import numpy as np
import pytest
import xarray as xr

from usable import StoreError, open_results, write_run


def _dataset():
    return xr.Dataset(
        {"value": (("seed", "source"), np.arange(6.0).reshape(3, 2), {"units": "bit", "long_name": "a value"})},
        coords={"seed": [0, 1, 2], "source": ["left crop", "right crop — ü"]},
        attrs={"metric": "usable", "sources": ["pid:task=and"], "nested": {"a": 1}},
    )


def test_round_trip_with_string_coordinates(store):
    run = write_run(store, _dataset(), run_id="first")
    ds = xr.open_zarr(store, group=run, consolidated=False)  # plain xarray reads the store
    assert ds["source"].values.tolist() == ["left crop", "right crop — ü"]
    np.testing.assert_array_equal(ds["value"].values, np.arange(6.0).reshape(3, 2))
    assert ds["value"].attrs == {"units": "bit", "long_name": "a value"}
    assert ds.attrs["sources"] == ["pid:task=and"] and ds.attrs["nested"] == '{"a": 1}'
    res = open_results(store)
    assert res.runs == ["first"] and res["first"].attrs["run_id"] == "first"
    assert res.table().metric.tolist() == ["usable"]


def test_duplicate_run_id_is_refused(store):
    write_run(store, _dataset(), run_id="x")
    with pytest.raises(StoreError, match="already exists"):
        write_run(store, _dataset(), run_id="x")


def test_failure_mid_write_leaves_no_visible_run(store, monkeypatch):
    write_run(store, _dataset(), run_id="good")

    def explode(*args, **kwargs):  # the rename never happens: the write died before its commit
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr("usable.store.os.rename", explode)
    with pytest.raises(KeyboardInterrupt):
        write_run(store, _dataset(), run_id="doomed")
    assert open_results(store).runs == ["good"]
    assert not (store / ".staging").exists()  # the staged copy was cleaned up
    monkeypatch.undo()

    bad = _dataset()
    monkeypatch.setattr(xr.Dataset, "to_zarr", lambda self, *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(StoreError, match="disk full"):
        write_run(store, bad, run_id="half")
    assert open_results(store).runs == ["good"]


def test_provenance_attrs_of_a_real_run(store):
    from click.testing import CliRunner
    from usable.cli import make_cli
    out = CliRunner().invoke(make_cli(), ["run", "usable", "--source", "pid:task=xor,n=400", "--decoder", "linear",
                                          "--epochs", "2", "--seed", "0-1", "--no-progress", "--store", str(store)])
    assert out.exit_code == 0, out.output
    res = open_results(store)
    a = res.attrs(res.runs[0])
    for key in ("metric", "sources", "decoder", "divergence", "schedule", "betas", "seeds", "fit",
                "usable_version", "plugin_versions", "git_commit", "start_time", "end_time", "command_line",
                "torch_version", "run_id"):
        assert key in a, key
    assert a["metric"] == "usable" and a["sources"] == ["pid:task=xor,n=400"] and a["seeds"] == [0, 1]
    assert a["start_time"] <= a["end_time"]
    show = CliRunner().invoke(make_cli(), ["results", "show", str(store), "--sel", "source=x1"])
    assert show.exit_code == 0 and "usable_information" in show.output
    ls = CliRunner().invoke(make_cli(), ["results", "ls", str(store)])
    assert res.runs[0] in ls.output and "pid:task=xor,n=400" in ls.output


def test_export_csv_and_netcdf(store, tmp_path):
    from click.testing import CliRunner
    from usable.cli import make_cli
    run = write_run(store, _dataset(), run_id="r")
    for out in ("x.csv", "x.nc"):
        res = CliRunner().invoke(make_cli(), ["results", "export", str(store), run, str(tmp_path / out)])
        assert res.exit_code == 0, res.output
    import pandas as pd
    df = pd.read_csv(tmp_path / "x.csv")
    assert len(df) == 6 and set(df.columns) >= {"seed", "source", "value", "variable"}
    back = xr.open_dataset(tmp_path / "x.nc")
    np.testing.assert_array_equal(back["value"].values, np.arange(6.0).reshape(3, 2))


def test_missing_run_suggests(store):
    write_run(store, _dataset(), run_id="rine-abc")
    with pytest.raises(StoreError, match="Close matches: rine-abc"):
        open_results(store)["rine-abd"]


def test_a_corrupt_run_is_named_and_the_others_still_listed(store):
    from click.testing import CliRunner
    from usable.cli import make_cli
    write_run(store, _dataset(), run_id="good")
    write_run(store, _dataset(), run_id="bad")
    (store / "bad" / "zarr.json").write_text("{ not json")
    out = CliRunner().invoke(make_cli(), ["results", "ls", str(store)])
    assert out.exit_code == 0, out.output
    assert "good" in out.output and "unreadable" in out.output and str(store / "bad" / "zarr.json") in out.output
    out = CliRunner().invoke(make_cli(), ["results", "show", str(store), "bad"])
    assert out.exit_code == 1 and "its metadata" in out.output and "Traceback" not in out.output
