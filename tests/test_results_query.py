"""`usable results ls STORE... --where ... --json`, `query_runs` and `to_dataframe(where=...)`: the
same table; each operator; values flattened to mean and sd; docs/results.md runs as written."""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import usable
from usable import SpecError, open_results, query_runs, write_run
from usable.cli import make_cli

ROOT = Path(__file__).resolve().parents[1]
FIT = {"epochs": 30, "batch_size": 128, "optimizer": "sgd", "lr": 0.01, "threads": 1}


def _run(metric, sources, betas, seeds, values, end_time, **fit):
    """A stored run as `usable run` stores one: provenance attrs and a headline variable."""
    dims = ("seed", "beta") if metric.startswith("rine") else ("seed", "source")
    coords = {"seed": seeds, **({"beta": betas} if dims[1] == "beta" else {"source": ["x1", "x2"]})}
    var = "redundant_information" if dims[1] == "beta" else "usable_information"
    return xr.Dataset({var: (dims, np.asarray(values, dtype=float), {"units": "bit"})}, coords=coords,
                      attrs={"metric": metric, "sources": sources, "decoder": "mlp", "divergence": "l1",
                             "schedule": "exp", "betas": betas, "seeds": seeds, "fit": json.dumps({**FIT, **fit}),
                             "end_time": end_time, "headline": [var]})


@pytest.fixture
def stores(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write_run(a, _run("rine", ["pid:task=and", "pid:task=xor"], [5.0, 15.0], [0, 1], [[0.1, 0.5], [0.3, 0.7]],
                      "2026-01-02T00:00:00"), run_id="and-xor")
    write_run(a, _run("usable", ["pid:task=and"], [0.0], [0], [[0.25, 0.75]], "2026-01-03T00:00:00"), run_id="u")
    write_run(b, _run("rine:per_class=true", ["synthetic:n=4"], [0.0, 2.0], [0, 1, 2],
                      [[0.0, 0.2], [0.0, 0.4], [0.0, 0.6]], "2026-02-01T00:00:00", lr=1e-3, optimizer="adam"),
              run_id="syn")
    return str(a), str(b)


def _ls(*args, expect=0):
    out = CliRunner().invoke(make_cli(), ["results", "ls", *args])
    assert out.exit_code == expect, out.output
    return out.output


def test_ls_json_flattens_settings_and_values_across_stores(stores):
    rows = json.loads(_ls(*stores, "--where", "metric=rine", "--where", "beta>=5", "--json"))
    assert [r["run"] for r in rows] == ["and-xor"]  # syn's βs are 0 and 2
    r = rows[0]
    assert r["store"] == stores[0] and r["metric"] == "rine" and r["decoder"] == "mlp"
    assert r["sources"] == "pid:task=and pid:task=xor"
    assert (r["source1"], r["source2"]) == ("pid:task=and", "pid:task=xor")
    assert r["betas"] == [5.0, 15.0] and r["seeds"] == [0, 1]
    assert (r["lr"], r["epochs"], r["optimizer"]) == (0.01, 30, "sgd")
    # mean and sd (ddof 1) over seeds of [0.1, 0.3] and [0.5, 0.7]
    assert r["redundant_information[beta=5.0]"] == pytest.approx(0.2)
    assert r["redundant_information[beta=15.0]"] == pytest.approx(0.6)
    assert r["redundant_information[beta=5.0] sd"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert not any(k.startswith("usable_information") for k in r)  # no remaining run has that value

    everything = json.loads(_ls(*stores, "--json"))
    assert [(r["store"], r["run"]) for r in everything] == [(stores[0], "and-xor"), (stores[0], "u"),
                                                             (stores[1], "syn")]


@pytest.mark.parametrize("where, runs", [
    (["metric=rine"], ["and-xor", "syn"]),                  # the plugin name matches rine:per_class=true
    (["metric=rine:per_class=true"], ["syn"]),
    (["metric!=rine"], ["u"]),
    (["decoder~ml*"], ["and-xor", "u", "syn"]),
    (["sources~*xor*"], ["and-xor"]),
    (["sources=pid"], ["and-xor", "u"]),                    # each spec of sources, by plugin name
    (["source2=pid:task=xor"], ["and-xor"]),
    (["lr=1e-2"], ["and-xor", "u"]),                        # numbers compare as numbers
    (["lr<0.005"], ["syn"]),
    (["lr<=0.01", "optimizer=sgd"], ["and-xor", "u"]),
    (["beta>10"], ["and-xor"]),
    (["beta<1"], ["u", "syn"]),
    (["seed=2"], ["syn"]),
    (["end_time>=2026-01-03"], ["u", "syn"]),               # text compares as text
    (["redundant_information[beta=2.0]>0.3"], ["syn"]),
    (["usable_information[source=x2]>=0.75"], ["u"]),
    (["usable_information[source=x2]<0.5"], []),            # a run without the value does not pass
])
def test_where_operators(stores, where, runs):
    assert query_runs(stores, where).run.tolist() == runs
    args = [a for w in where for a in ("--where", w)]
    assert [r["run"] for r in json.loads(_ls(*stores, *args, "--json"))] == runs


def test_python_and_cli_give_the_same_table(stores):
    df = open_results(stores[0]).to_dataframe(where=["metric=rine"])
    rows = json.loads(_ls(stores[0], "--where", "metric=rine", "--json"))
    assert list(df.columns) == list(rows[0]) and df.run.tolist() == [r["run"] for r in rows]
    sd = "redundant_information[beta=15.0] sd"
    assert df[sd].item() == pytest.approx(rows[0][sd])
    assert list(query_runs(stores).columns) == list(json.loads(_ls(*stores, "--json"))[0])


def test_terminal_table_shows_mean_and_sd(stores):
    out = _ls(stores[0], "--where", "metric=rine")
    assert "0.2000 ± 0.1414" in out and "0.6000 ± 0.1414" in out and "pid:task=and pid:task=xor" in out
    assert _ls(stores[0], "--where", "metric=nc") == "no runs match\n"


def test_unknown_column_and_bad_condition_are_one_line(stores):
    out = _ls(*stores, "--where", "betta>=5", expect=1)
    assert out.count("\n") == 1 and "no column 'betta'" in out and "columns: store, run, kind, metric" in out
    assert "redundant_information[beta=5.0]" in out  # value columns are listed too
    out = _ls(stores[0], "--where", "lr", expect=1)
    assert "write KEY=VALUE" in out and out.count("\n") == 1
    with pytest.raises(SpecError, match="no column 'bogus'"):
        open_results(stores[0]).to_dataframe(where=["bogus=1"])


def test_an_empty_store_has_every_settings_column(tmp_path):
    empty = usable.Results(tmp_path / "e.zarr", create=True)
    df = empty.to_dataframe(where=["metric=rine"])
    assert df.empty and {"store", "run", "metric", "sources", "betas", "seeds", "lr", "epochs"} <= set(df.columns)
    assert _ls(str(empty.path)) == "no runs\n"


def test_the_results_doc_runs_as_written(tmp_path):
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("A complete example"):]
    code, printed = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)[:2]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == printed
    # the documented shell commands run on that store and find its runs
    shell = re.findall(r"^usable results ls .*$", section, flags=re.M)
    assert len(shell) == 2
    table = _ls_in(tmp_path, shell[0])
    assert "copies" in table and "copy-noise" in table and "each" not in table
    rows = json.loads(_ls_in(tmp_path, shell[1]))
    assert [r["run"] for r in rows] == ["copies", "copy-noise", "each"]  # x1, the copy, always carries ~1 bit


def _ls_in(cwd: Path, command: str) -> str:
    """A documented `usable ...` command, run by the installed console script in ``cwd``."""
    out = subprocess.run([str(Path(sys.executable).with_name("usable")), *shlex.split(command)[1:]], cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
