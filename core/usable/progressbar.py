"""Progress of long work: a tqdm bar on a terminal, plain throttled lines in logs, nothing when quiet."""
from __future__ import annotations

import sys
import time

VERBOSITY = {"level": 1}  # 0 quiet, 1 normal, 2 verbose (the CLI's -q / -v)


class _Lines:
    """One line per update at most every ``every`` seconds (and at the end): readable in a log file."""

    def __init__(self, iterable, desc: str, total: int | None, every: float = 10.0):
        self.iterable, self.desc, self.every = iterable, desc, every
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix, self.last = 0, "", time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.monotonic() - self.last >= self.every or self.n == self.total:
            self.last = time.monotonic()
            of = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.n}{of}{self.postfix}", file=sys.stderr, flush=True)

    def set_postfix(self, **kw) -> None:
        self.postfix = "  " + " ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        pass


class _Silent(_Lines):
    def update(self, k: int = 1) -> None:
        self.n += k


def progress(iterable=None, desc: str = "", enabled: bool = True, total: int | None = None, unit: str = "it"):
    """``for x in progress(items, desc="fit"): ...``; also ``bar.update(k)``, ``set_postfix``, ``close``."""
    if not enabled or VERBOSITY["level"] == 0:
        return _Silent(iterable if iterable is not None else (), desc, total)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr)
    return _Lines(iterable if iterable is not None else (), desc, total)
