"""Progress of long work: a tqdm bar on a terminal, plain throttled lines in logs, nothing when quiet.

Every long step (fit epochs, sweep cells, dib decoders, nc passes) goes through ``progress``, so
the choice is made once, here. tqdm redraws its bar with carriage returns; written to a file or
a pipe those frames pile up on one physical line (thousands of them in a long run's log), so
when stderr is not a terminal progress is plain text, one line at a time and rarely.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

VERBOSITY = {"level": 1}  # 0 quiet, 1 normal, 2 verbose (the CLI's -q / -v)

STEP = 0.1       # a line for each further tenth of the total ...
EVERY = 30.0     # ... or after this many seconds without one (all a loop of unknown length gets)
MIN_GAP = 2.0    # never two lines closer than this, but for the last: fast loops print one line


class _Lines:
    """Progress as plain lines (no carriage returns), throttled so a log file stays readable.

    A line when another ``step`` of the total is done and ``min_gap`` seconds have passed since
    the last one, or when ``every`` seconds have passed; and a last line when the work ends (the
    total reached, the iterable exhausted, or ``close()`` after an early stop). Lines are written
    only from ``update`` (no thread), so one step longer than ``every`` shows when it ends.
    """

    def __init__(self, iterable, desc: str, total: int | None, unit: str = "it", *, step: float = STEP,
                 every: float = EVERY, min_gap: float = MIN_GAP, clock: Callable[[], float] = time.monotonic,
                 file: TextIO | None = None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.step, self.every, self.min_gap, self.clock, self.file = step, every, min_gap, clock, file
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.last_time = clock()
        self.last_n: int | None = None  # n at the last line written (None: no line yet)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, k: int = 1) -> None:
        self.n += k
        now = self.clock()
        if self._due(now):
            self._write(now)

    def _due(self, now: float) -> bool:
        since = now - self.last_time
        if since >= self.every or (self.total and self.n >= self.total):
            return True
        if not self.total or since < self.min_gap:
            return False
        done_before = 0 if self.last_n is None else self.last_n
        return (self.n - done_before) >= self.step * self.total

    def _write(self, now: float) -> None:
        self.last_time, self.last_n = now, self.n
        print(self.line(now), file=self.file or sys.stderr, flush=True)

    def line(self, now: float) -> str:
        unit = "" if self.unit == "it" else f" {self.unit}"
        count = f"{self.n}/{self.total}{unit} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}{unit}"
        return f"{self.desc}: {count}  {now - self.start:.1f}s{self.postfix}"

    def set_postfix(self, **kw) -> None:
        self.postfix = "  " + " ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        """The last line, unless the last update already wrote it (or nothing was done)."""
        if self.closed:
            return
        self.closed = True
        if self.n and self.last_n != self.n:
            self._write(self.clock())


class _Silent(_Lines):
    def _write(self, now: float) -> None:
        pass


def progress(iterable=None, desc: str = "", enabled: bool = True, total: int | None = None, unit: str = "it"):
    """``for x in progress(items, desc="fit"): ...``; also ``bar.update(k)``, ``set_postfix``, ``close``.

    ``enabled=False`` (a run's ``--no-progress``) or quiet verbosity (``-q``) shows nothing; a
    terminal gets a tqdm bar; anything else (a log file, a pipe, a batch job) gets ``_Lines``.
    """
    items = iterable if iterable is not None else ()
    if not enabled or VERBOSITY["level"] == 0:
        return _Silent(items, desc, total, unit)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr)
    return _Lines(items, desc, total, unit)
