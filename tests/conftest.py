"""Shared test setup: one torch thread (tiny models are fastest that way, and tests run side by
side), and only the built-in plugins, whatever else is installed in the environment."""
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def builtin_plugins() -> list[str]:
    """The entry-point names of ``[project.entry-points.usable]`` in pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return sorted(project["entry-points"]["usable"])


BUILTINS = ",".join(builtin_plugins())


@pytest.fixture
def store(tmp_path):
    """A path for a fresh results store."""
    return tmp_path / "results.zarr"


@pytest.fixture(autouse=True)
def _isolated_plugins(request, monkeypatch):
    """Each test sees the plugins afresh, and only the built-ins: a plugin someone installed in
    this environment must not change a result or a listing (the variable reaches subprocesses
    too). Modules that build plugin distributions (they import ``build_distribution``) test
    loading itself and see everything installed."""
    from usable.registry import reset_manager
    if hasattr(request.module, "build_distribution"):
        monkeypatch.delenv("USABLE_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("USABLE_LOAD_PLUGINS", BUILTINS)
    reset_manager()
    yield
    reset_manager()
