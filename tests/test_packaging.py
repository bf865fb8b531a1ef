"""Packaging: extras for the heavy optional packages, a missing one reported as one line naming the
extra, the licence, test isolation from installed plugins, and (slow) a non-editable install."""
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

import usable
from conftest import BUILTINS, builtin_plugins

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = {"vision": ["timm"], "neural": ["pynwb", "h5py"], "sweep": ["dask", "bokeh"]}


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()


def test_heavy_packages_are_extras_and_test_installs_them_all():
    hard = {_name(r) for r in PROJECT["dependencies"]}
    extras = PROJECT["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert not hard & set(packages), extra
        assert {_name(r) for r in extras[extra]} == set(packages), extra
    assert "dask[distributed]" in extras["sweep"][0]  # the LocalCluster, not dask alone
    assert extras["all"] == ["usable[vision,neural,sweep,lightning]"]
    assert "usable[all]" in extras["test"] and {"pytest", "dit", "netcdf4"} <= {_name(r) for r in extras["test"]}


def test_mit_licence():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the usable developers\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_require_returns_the_module_or_names_the_extra():
    assert usable.require("json", extra="neural") is __import__("json")
    with pytest.raises(usable.MissingDependency) as err:
        usable.require("no_such_package_xyz", extra="neural", what="source nwb")
    assert str(err.value) == ("source nwb needs no_such_package_xyz, which is not installed: install usable[neural], "
                              "e.g. pip install 'usable[neural]'")
    assert isinstance(err.value, usable.UserError) and isinstance(err.value, ImportError)


def test_a_missing_dependency_of_the_package_is_named(monkeypatch):
    import importlib
    real = importlib.import_module

    def import_module(name, package=None):  # fake_pkg is installed but cannot import its own dependency
        if name == "fake_pkg":
            raise ModuleNotFoundError("No module named 'fake_dep'", name="fake_dep")
        return real(name, package)
    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(usable.MissingDependency, match=r"^fake_pkg cannot import fake_dep: install usable\[neural\]"):
        usable.require("fake_pkg", extra="neural")


@pytest.mark.parametrize("hidden, args, message", [
    (["pynwb"], ["neural", "simulate", "{tmp}/nwb"], "writing NWB files needs pynwb, which is not installed: "
                                                      "install usable[neural]"),
    (["pynwb"], ["run", "usable", "--source", "nwb:file={tmp}/x.nwb"], "source nwb needs pynwb"),
    (["timm"], ["run", "usable", "--source", "digits", "--decoder", "timm:resnet18", "--epochs", "1"],
     "decoder timm needs timm, which is not installed: install usable[vision]"),
    (["dask", "dask.array", "distributed"], ["sweep", "usable", "--source", "pid:n=200", "--grid", "seed=0",
                                              "--executor", "serial", "--store", "{tmp}/s.zarr"],
     "usable sweep needs dask.array, which is not installed: install usable[sweep]"),
])
def test_each_plugin_reports_its_missing_extra_in_one_line(tmp_path, monkeypatch, hidden, args, message):
    for module in hidden:  # as if not installed: importing it raises ModuleNotFoundError
        monkeypatch.setitem(sys.modules, module, None)
    from usable.cli import make_cli
    out = CliRunner().invoke(make_cli(), [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert out.exit_code == 1, out.output
    errors = [line for line in out.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in out.output


def test_tests_load_only_the_builtin_plugins(tmp_path, monkeypatch):
    """conftest.py sets USABLE_LOAD_PLUGINS to pyproject's entry points: a plugin installed on the
    path is not loaded in the tests (here: a distribution put on sys.path)."""
    from thirdparty import build_distribution  # imported here, so this module stays isolated
    assert os.environ["USABLE_LOAD_PLUGINS"] == BUILTINS
    assert {"pid", "info", "results", "tracker"} <= set(builtin_plugins())
    monkeypatch.syspath_prepend(str(build_distribution(tmp_path / "site")))
    from usable.registry import get_manager, reset_manager
    reset_manager()
    assert sorted(p.name for p in get_manager().plugins) == builtin_plugins()
    assert "logistic" not in usable.list_names("decoders")


def _copy_project(dest: Path) -> Path:
    """The files a build reads, so a build leaves nothing in the working tree (build/, egg-info)."""
    for name in ("core", "plugins"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@pytest.mark.slow
def test_a_non_editable_install_runs_a_shipped_config(tmp_path):
    """pip install (not -e) into a fresh venv that borrows this environment's dependencies; then a
    shipped config, found by name, runs from another folder."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    site = next(env_dir.glob("lib/python*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    # a .pth line adds the directory but not its own .pth files, so this environment's editable
    # `usable` stays out and the installed copy is the one imported
    (site / "zz_deps.pth").write_text(f"{deps}\n")
    for bundled in site.glob("setuptools*"):  # the venv's own old setuptools would shadow ours (>=77)
        shutil.rmtree(bundled)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    out = subprocess.run([*pip, str(_copy_project(tmp_path / "src"))], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    exe = str(env_dir / "bin" / "usable")
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import usable, usable_pid; print(usable.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert where.stdout.startswith(str(site))
    run = subprocess.run([exe, "-q", "run", "--config", "rine-table-a5", "--store", str(tmp_path / "x.zarr"),
                          "--threads", "1", "--epochs", "1", "--seed", "0"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RINE paper Table A5" in run.stdout and "stored as run 'rine_table-" in run.stdout
