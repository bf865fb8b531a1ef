"""Registries: entry-point loading, third-party plugins, duplicates, unknown names, broken plugins,
USABLE_LOAD_PLUGINS, register_commands. Plugins here are real distributions on sys.path."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from thirdparty import build_distribution
from usable.registry import PluginError, UnknownName, get_manager, reset_manager


def _activate(monkeypatch, path: Path):
    monkeypatch.syspath_prepend(str(path))
    importlib.invalidate_caches()
    reset_manager()


def _cli():
    from usable.cli import make_cli
    return make_cli()


def test_builtins_are_loaded_through_entry_points():
    pm = get_manager()
    by_name = {p.name: p for p in pm.plugins}
    assert {"pid", "mlp", "divergences", "schedules", "info"} <= set(by_name)
    assert by_name["pid"].distribution == "usable" and by_name["pid"].error is None
    assert pm.registry("sources").get("pid").plugin == "pid"
    assert "l1" in pm.registry("divergences").names()
    assert pm.registry("decoders").names("ml*") == ["mlp"]  # wildcards


def test_third_party_plugin_from_the_cli(tmp_path, monkeypatch):
    """A separately installed distribution provides a source, decoder, divergence, schedule,
    metric and command, used by name from the CLI, and `usable plugins` shows its version."""
    root = build_distribution(tmp_path / "site")
    _activate(monkeypatch, root)
    runner = CliRunner()
    out = runner.invoke(_cli(), ["plugins"])
    assert out.exit_code == 0, out.output
    assert "thirdparty  (usable-thirdparty 1.2.3" in out.output
    assert "sources: copy_bits" in out.output and "decoders: logistic" in out.output

    # Both sources copy the same bit: redundancy is the full 1 bit (H(Y) ≈ 1 for a uniform bit).
    store = tmp_path / "r.zarr"
    out = runner.invoke(_cli(), ["run", "rine", "--source", "copy_bits:n=2000", "--decoder", "logistic",
                                 "--divergence", "sqdiff", "--schedule", "half", "--beta", "5", "--epochs", "30",
                                 "--optimizer", "adam", "--lr", "0.05", "--no-progress", "--store", str(store)])
    assert out.exit_code == 0, out.output
    from usable import open_results
    res = open_results(store)
    ds = res[res.runs[0]]
    assert ds.attrs["sources"] == ["copy_bits:n=2000"] and ds.attrs["decoder"] == "logistic"
    assert "usable-thirdparty 1.2.3" in ds.attrs["plugin_versions"]
    h_y = float(ds["null_entropy"])
    assert abs(h_y - 1.0) < 0.01
    assert float(ds["redundant_information"].mean()) > 0.9 * h_y

    out = runner.invoke(_cli(), ["run", "count_sources:scale=2", "--source", "copy_bits"])
    assert out.exit_code == 0, out.output
    assert "4.0000" in out.output
    assert runner.invoke(_cli(), ["hello"]).output.strip() == "hello from thirdparty"


def test_third_party_plugin_in_a_fresh_process(tmp_path):
    """The same, through the installed console script in a new interpreter (no in-process state)."""
    root = build_distribution(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=str(root))
    exe = Path(sys.executable).with_name("usable")
    out = subprocess.run([str(exe), "list", "decoders", "log*"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("logistic")


def test_duplicate_names_are_reported_and_everything_else_keeps_working(tmp_path, monkeypatch):
    code = '''
import usable
@usable.hookimpl
def register_sources(register):
    register("pid", lambda: None)
'''
    root = build_distribution(tmp_path / "dup", dist="usable-clash", package="usable_clash", ep_name="clash",
                              code=code)
    _activate(monkeypatch, root)
    pm = get_manager()  # loading does not fail: the clashing name alone is unusable
    with pytest.raises(PluginError) as err:
        pm.registry("sources").get("pid")
    msg = str(err.value)
    assert "'pid'" in msg and "clash" in msg and "usable-clash" in msg and "(usable)" in msg
    assert "USABLE_LOAD_PLUGINS" in msg
    runner = CliRunner()
    assert runner.invoke(_cli(), ["--version"]).exit_code == 0
    assert runner.invoke(_cli(), ["--help"]).exit_code == 0
    out = runner.invoke(_cli(), ["plugins"])
    assert out.exit_code == 0 and "CLASH: duplicate source name 'pid'" in out.output and "usable-clash" in out.output
    out = runner.invoke(_cli(), ["list", "sources"])
    assert out.exit_code == 0 and "digits" in out.output and "pid " not in out.output
    out = runner.invoke(_cli(), ["run", "rine", "--source", "pid:task=and"])
    assert out.exit_code == 1 and "duplicate source name 'pid'" in out.output and "Traceback" not in out.output


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownName) as err:
        get_manager().registry("decoders").get("mpl")
    assert "mlp" in str(err.value) and "usable list decoders" in str(err.value)
    out = CliRunner().invoke(_cli(), ["run", "rine", "--source", "pdi:task=and"])
    assert out.exit_code != 0
    assert "unknown source 'pdi'" in out.output and "pid" in out.output


def test_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    root = build_distribution(tmp_path / "broken", dist="usable-broken", package="usable_broken",
                              ep_name="broken", code="raise RuntimeError('boom at import')\n")
    _activate(monkeypatch, root)
    pm = get_manager()
    broken = [p for p in pm.plugins if p.name == "broken"]
    assert broken and "boom at import" in broken[0].error
    runner = CliRunner()
    out = runner.invoke(_cli(), ["plugins"])
    assert out.exit_code == 0 and "FAILED TO LOAD: RuntimeError: boom at import" in out.output
    out = runner.invoke(_cli(), ["list", "sources"])
    assert out.exit_code == 0 and "pid" in out.output


def test_usable_load_plugins_limits_loading(tmp_path, monkeypatch):
    root = build_distribution(tmp_path / "site")
    _activate(monkeypatch, root)
    monkeypatch.setenv("USABLE_LOAD_PLUGINS", "pid,usable-thirdparty")
    pm = get_manager()
    assert sorted(p.name for p in pm.plugins) == ["pid", "thirdparty"]
    assert pm.registry("decoders").names() == ["logistic"]
    monkeypatch.setenv("USABLE_LOAD_PLUGINS", "")
    reset_manager()
    pm = get_manager()
    assert pm.plugins == [] and pm.registry("sources").names() == []


def test_a_plugin_that_exits_at_import_is_reported_and_the_cli_keeps_working(tmp_path, monkeypatch):
    root = build_distribution(tmp_path / "exits", dist="usable-exits", package="usable_exits", ep_name="exits",
                              code="import sys\nsys.exit(3)\n")
    _activate(monkeypatch, root)
    runner = CliRunner()
    assert runner.invoke(_cli(), ["--version"]).exit_code == 0
    out = runner.invoke(_cli(), ["plugins"])
    assert out.exit_code == 0 and "exits  (usable-exits 1.2.3" in out.output and "FAILED TO LOAD: SystemExit: 3" in out.output
    out = runner.invoke(_cli(), ["list", "sources"])
    assert out.exit_code == 0 and "pid" in out.output
