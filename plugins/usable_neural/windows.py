"""Time windows relative to a trial event, and spike counting in them.

Windows are given in milliseconds relative to the event: ``50:150`` is one window,
``50:150;150:250`` two, and ``50:450:100`` (start:stop:width) the disjoint 100 ms windows
50:150, 150:250, 250:350, 350:450 (the RINE paper's figure 3).

Every window is HALF-OPEN, [event + a, event + b): a spike exactly on the start edge is counted,
a spike exactly on the end edge is not (it belongs to the next adjacent window, so disjoint
adjacent windows never count a spike twice). The edges are the float64 values
``event_time + a / 1000`` in the file's time base (seconds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usable import DataError

NORMALISATIONS = ("counts", "rate", "sqrt")
EDGE_SLACK_S = 1e-9


@dataclass(frozen=True)
class Window:
    start_ms: float
    stop_ms: float

    @property
    def width_s(self) -> float:
        return (self.stop_ms - self.start_ms) / 1000.0

    @property
    def label(self) -> str:
        return f"{_fmt(self.start_ms)}:{_fmt(self.stop_ms)}ms"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parse_windows(text: str) -> list[Window]:
    """``'50:150+150:250'`` or ``'50:450:100'`` (start:stop:width) -> list of Windows (ms)."""
    text = str(text).strip()
    if not text:
        raise DataError("no window given; write e.g. window=50:150 or window=50:450:100 (ms after the event)")
    out: list[Window] = []
    for item in text.split("+"):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise DataError(f"window {item!r} is not start:stop or start:stop:width in ms (numbers)") from None
        if len(nums) == 2:
            a, b = nums
            if not b > a:
                raise DataError(f"window {item!r}: the end ({_fmt(b)} ms) must be after the start ({_fmt(a)} ms)")
            out.append(Window(a, b))
        elif len(nums) == 3:
            a, b, w = nums
            if w <= 0 or b - a < w:
                raise DataError(f"window {item!r}: start:stop:width needs width > 0 and stop - start >= width")
            k = int(np.floor((b - a) / w + 1e-9))
            out.extend(Window(a + i * w, a + (i + 1) * w) for i in range(k))
        else:
            raise DataError(f"window {item!r}: write start:stop (e.g. 50:150) or start:stop:width (e.g. 50:450:100)")
    if not out:
        raise DataError(f"no window in {text!r}")
    return out


def count_spikes(spike_times: np.ndarray, events: np.ndarray, windows: list[Window]) -> np.ndarray:
    """Spike counts of one unit in [event + a, event + b) for every event and window: (N, W).

    ``spike_times`` need not be sorted. Two binary searches per edge: O((S + N·W) log S).
    """
    st = np.sort(np.asarray(spike_times, dtype=np.float64).reshape(-1))
    ev = np.asarray(events, dtype=np.float64)
    out = np.empty((ev.shape[0], len(windows)), dtype=np.int64)
    for k, w in enumerate(windows):
        lo = np.searchsorted(st, ev + w.start_ms / 1000.0, side="left")  # first spike >= start
        hi = np.searchsorted(st, ev + w.stop_ms / 1000.0, side="left")   # first spike >= stop (excluded)
        out[:, k] = hi - lo
    return out


def count_matrix(units_spike_times: list[np.ndarray], events: np.ndarray,
                 windows: list[Window]) -> np.ndarray:
    """Counts of every unit: (N trials, W windows, U units), int64."""
    if not units_spike_times:
        return np.zeros((len(events), len(windows), 0), dtype=np.int64)
    return np.stack([count_spikes(s, events, windows) for s in units_spike_times], axis=2)


def normalize(counts: np.ndarray, windows: list[Window], how: str) -> np.ndarray:
    """counts (N, W, U) -> float32 features: raw counts, rate in Hz, or sqrt(counts)
    (variance-stabilising for Poisson counts)."""
    c = counts.astype(np.float64)
    if how == "counts":
        out = c
    elif how == "rate":
        out = c / np.array([w.width_s for w in windows])[None, :, None]
    elif how == "sqrt":
        out = np.sqrt(c)
    else:
        raise DataError(f"normalize={how!r}; choose one of {', '.join(NORMALISATIONS)}")
    return out.astype(np.float32)


def check_within_trials(windows: list[Window], events: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                        event_name: str, where: str) -> None:
    """Every window must lie inside [start_time, stop_time] of every kept trial; else a clear error."""
    if len(events) == 0:
        return
    before = (starts - events) * 1000.0  # ms, <= 0 normally
    after = (stops - events) * 1000.0
    lo, hi = float(np.max(before)), float(np.min(after))
    # 1 ns slack: a window edge meant to sit on a trial boundary may miss it by float rounding.
    for w in windows:
        bad_start = events + w.start_ms / 1000.0 < starts - EDGE_SLACK_S
        bad_stop = events + w.stop_ms / 1000.0 > stops + EDGE_SLACK_S
        n_bad = int((bad_start | bad_stop).sum())
        if n_bad:
            raise DataError(
                f"{where}: window {w.label} lies outside {n_bad} of {len(events)} trials "
                f"(relative to {event_name}, every kept trial covers only {lo:.6g} to {hi:.6g} ms). "
                f"Choose windows inside that range, or pass check_bounds=false to count spikes "
                f"outside the trial boundaries anyway."
            )
