"""The worker side of a sweep: one task = one RunSpec -> run_metric -> xr.Dataset.

Kept free of store and cluster code: a worker only computes and returns the Dataset; the
coordinator alone writes to the results store.
"""
from __future__ import annotations

import time
from dataclasses import replace


def run_task(spec):
    """Compute one task; returns (Dataset, seconds taken)."""
    import torch

    from usable import run_metric
    # One torch thread unless asked otherwise: many small fits side by side are fastest that way
    # (and a dask worker has one thread). The sweep shows its own progress over cells.
    threads = spec.fit.threads or 1
    spec = replace(spec, fit=replace(spec.fit, threads=threads, progress=False))
    torch.set_num_threads(threads)
    start = time.perf_counter()
    ds = run_metric(spec).load()
    return ds, time.perf_counter() - start


def warm_up() -> int:
    """Pay a worker's one-time costs before the first task: import torch and the plugins, and
    build one optimiser (torch imports its compiler stack lazily on the first one, seconds)."""
    import os

    import torch

    from usable import get_manager
    torch.set_num_threads(1)
    get_manager()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return os.getpid()
