"""Where sweep tasks run, as ``concurrent.futures`` executors: in this process (``serial``, for
debugging: plain tracebacks, pdb works) or on dask.distributed (``Client.get_executor()``: a
LocalCluster with one thread per worker, or an existing scheduler by address)."""
from __future__ import annotations

import contextlib
from concurrent.futures import Executor, Future
from typing import Iterator

from usable import SpecError, require

from .worker import warm_up


class SerialExecutor(Executor):
    """Runs each task when it is submitted, in this process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # one cell's failure must not stop the sweep
            fut.set_exception(exc)
        return fut


@contextlib.contextmanager
def open_executor(kind: str, workers: int, scheduler: str | None, echo) -> Iterator[tuple[Executor, str, int]]:
    """(executor, description, how many tasks to keep in flight)."""
    if kind == "serial":
        if scheduler:
            raise SpecError("--scheduler needs --executor dask (the default), not serial")
        warm_up()
        yield SerialExecutor(), "serial (this process)", 1
        return
    distributed = require("distributed", extra="sweep", what="usable sweep --executor dask")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    cluster = None
    if scheduler:
        client = Client(scheduler)
        n = len(client.scheduler_info().get("workers", {}))
        description = f"dask scheduler {scheduler} ({n} workers now)"
    else:
        # threads_per_worker=1: torch in each worker runs one thread too (worker.run_task), so N
        # workers use N cores and small fits do not oversubscribe the machine.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
        n, description = workers, f"dask LocalCluster ({workers} workers x 1 thread)"
        try:
            import bokeh  # noqa: F401
            note = ""
        except ImportError:
            note = " (install usable[sweep] to serve it)"
        echo(f"dask dashboard: {client.dashboard_link}{note}")
    try:
        client.run(warm_up)  # every worker imports torch and the plugins now, side by side
        yield client.get_executor(pure=False), description, max(2, 2 * n)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
