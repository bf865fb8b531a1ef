"""Where sweep tasks run: in this process (``serial``, for debugging) or on dask.distributed (a
LocalCluster with one thread per worker, or an existing scheduler by address).

Both give the coordinator the same small interface: ``submit(task_id, settings)``,
``cancel(task_id)`` and ``completed()``, an iterator of ``(task_id, result, error)`` that also
yields tasks submitted while iterating.
"""
from __future__ import annotations

import uuid
from collections import deque
from typing import Any, Iterator

import click

from .sweep_task import run_task, warm_up


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class SerialExecutor:
    """Runs each task when the coordinator asks for the next result: no processes, plain tracebacks."""

    description = "serial (this process)"

    def __init__(self, retries: int = 0):
        self.retries = retries
        self.queue: deque = deque()

    def __enter__(self):
        warm_up()
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, task_id: int, settings: dict[str, Any]) -> None:
        self.queue.append((task_id, settings))

    def cancel(self, task_id: int) -> None:
        self.queue = deque(t for t in self.queue if t[0] != task_id)

    def completed(self) -> Iterator[tuple[int, Any, str | None]]:
        while self.queue:
            task_id, settings = self.queue.popleft()
            err = None
            for attempt in range(self.retries + 1):
                try:
                    result = run_task(settings)
                    err = None
                    break
                except Exception as exc:  # one cell's failure must not stop the sweep
                    err = error_text(exc)
                    result = None
            if err and self.retries:
                err += f" (after {self.retries + 1} attempts)"
            yield task_id, result, err


class DaskExecutor:
    """Tasks as dask futures. ``retries`` is dask's own (a task that raises is re-run up to K
    times, possibly on another worker); a worker that dies is rescheduled by dask itself."""

    def __init__(self, workers: int = 2, scheduler: str | None = None, retries: int = 0,
                 echo=click.echo):
        self.workers, self.scheduler, self.retries, self.echo = workers, scheduler, retries, echo
        self.cluster = self.client = None
        self.futures: dict[int, Any] = {}
        self.ac = None

    def __enter__(self):
        from distributed import Client, LocalCluster
        if self.scheduler:
            self.client = Client(self.scheduler)
            n = len(self.client.scheduler_info().get("workers", {}))
            self.description = f"dask scheduler {self.scheduler} ({n} workers now)"
        else:
            # threads_per_worker=1: torch in each worker runs one thread too (sweep_task), so N
            # workers use N cores and small fits do not oversubscribe the machine.
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0")
            self.client = Client(self.cluster)
            self.description = f"dask LocalCluster ({self.workers} workers x 1 thread)"
            try:
                import bokeh  # noqa: F401
                note = ""
            except ImportError:
                note = " (install bokeh to serve it)"
            self.echo(f"dask dashboard: {self.client.dashboard_link}{note}")
            # every worker imports torch and the plugins now, side by side, not in its first task
            self.client.run(warm_up)
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def submit(self, task_id: int, settings: dict[str, Any]) -> None:
        from distributed import as_completed
        fut = self.client.submit(run_task, settings, pure=False, retries=self.retries,
                                 key=f"usable-sweep-task-{task_id}-{uuid.uuid4().hex[:12]}")
        self.futures[task_id] = fut
        if self.ac is None:
            self.ac = as_completed([fut])
        else:
            self.ac.add(fut)

    def cancel(self, task_id: int) -> None:
        fut = self.futures.pop(task_id, None)
        if fut is not None:
            fut.cancel()

    def completed(self) -> Iterator[tuple[int, Any, str | None]]:
        if self.ac is None:
            return
        for fut in self.ac:
            by_key = {f.key: t for t, f in self.futures.items()}
            task_id = by_key.get(fut.key)
            if task_id is None or fut.status == "cancelled":
                continue  # cancelled while queued (the task was re-planned)
            self.futures.pop(task_id, None)
            if fut.status == "error":
                exc = fut.exception()
                err = error_text(exc)
                if self.retries:
                    err += f" (after {self.retries + 1} attempts)"
                yield task_id, None, err
            else:
                try:
                    result, err = fut.result(), None
                except Exception as exc:  # e.g. the result could not be transferred
                    result, err = None, error_text(exc)
                fut.release()
                yield task_id, result, err
