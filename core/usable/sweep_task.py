"""The worker side of a sweep: one task = one RunContext -> run_metric -> xr.Dataset.

Kept free of store and cluster code: a worker only computes and returns the Dataset; the
coordinator alone writes to the results store.
"""
from __future__ import annotations

import time
from typing import Any

import xarray as xr


def run_task(settings: dict[str, Any]) -> tuple[xr.Dataset, float]:
    """Compute one task from its plain-text settings; returns (Dataset, seconds taken)."""
    import torch

    from .cli import build_context
    from .sweep_grid import fit_config_from

    fit = dict(settings["fit"])
    # One torch thread unless asked otherwise: many small fits side by side are fastest that way
    # (and a dask worker has one thread). The sweep shows its own progress bar over cells.
    fit["threads"] = fit.get("threads") or 1
    fit["progress"] = False
    torch.set_num_threads(int(fit["threads"]))
    ctx = build_context(settings["metric"], settings["sources"], settings["decoder"],
                        settings["divergence"], settings["schedule"], settings["betas"],
                        settings["seeds"], fit_config_from(fit))
    from .run import run_metric
    start = time.perf_counter()
    ds = run_metric(ctx).load()
    return ds, time.perf_counter() - start


def warm_up() -> int:
    """Pay a worker's one-time costs before the first task: import torch and the plugins, and
    build one optimiser (torch imports its compiler stack lazily on the first one, seconds)."""
    import os

    import torch

    from .registry import get_manager
    torch.set_num_threads(1)
    get_manager().load()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return os.getpid()
