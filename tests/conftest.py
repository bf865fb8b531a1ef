"""Shared test setup: one torch thread (tiny models are fastest that way, and tests run side by side)."""
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def store(tmp_path):
    """A path for a fresh results store."""
    return tmp_path / "results.zarr"


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch):
    """Each test sees the installed plugins afresh (tests may change USABLE_LOAD_PLUGINS / sys.path)."""
    from usable.registry import reset_manager
    monkeypatch.delenv("USABLE_LOAD_PLUGINS", raising=False)
    reset_manager()
    yield
    reset_manager()
