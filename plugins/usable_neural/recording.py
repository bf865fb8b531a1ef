"""One recorded session in memory (a trials table + units' spike times), and the per-trial
features taken from it. Both the ``nwb`` source and the simulated ``centre_out`` source go
through this one code path, so what the tests check on one holds for the other."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from usable import DataError

from .targets import as_text
from .windows import Window, check_within_trials, count_matrix


@dataclass
class Recording:
    """``trials``: columns of the trials table (start_time, stop_time, events, flags, targets),
    each an array with one row per trial. ``units``: columns of the units table other than spike
    times (e.g. ``location``, ``electrode_group``), one row per unit. Times in seconds."""

    name: str
    trials: dict[str, np.ndarray]
    spike_times: list[np.ndarray]
    units: dict[str, np.ndarray] = field(default_factory=dict)

    def trial_column(self, col: str) -> np.ndarray:
        if col not in self.trials:
            raise DataError(f"{self.name}: the trials table has no column {col!r}; "
                             f"its columns are: {', '.join(self.trials)}")
        return np.asarray(self.trials[col])

    def unit_column(self, col: str) -> np.ndarray:
        if col not in self.units:
            raise DataError(f"{self.name}: the units table has no column {col!r}; its columns are: "
                             f"{', '.join(list(self.units) + ['spike_times'])}")
        return as_text(self.units[col])


@dataclass
class TrialFeatures:
    """What one session contributes: counts (N, W, U) of the kept trials, their raw target
    values, each unit's group label, and how many trials each filter dropped."""

    name: str
    counts: np.ndarray
    target_raw: np.ndarray
    unit_groups: np.ndarray
    trial_index: np.ndarray
    dropped: dict[str, int]


def parse_condition(text: str) -> list[tuple[str, str | None]]:
    """'success' -> keep truthy rows; 'outcome:hit' -> keep rows equal to 'hit'; '+' joins several."""
    out = []
    for item in str(text or "").split("+"):
        item = item.strip()
        if not item:
            continue
        col, sep, value = item.partition(":")
        out.append((col.strip(), value.strip() if sep else None))
    return out


def _truthy(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind == "b":
        return v
    if v.dtype.kind in "iuf":
        return np.nan_to_num(v.astype(float)) != 0
    text = np.char.lower(as_text(v).astype(str))
    return np.isin(text, ["1", "true", "yes", "y", "t"])


def trial_features(rec: Recording, *, event: str, windows: list[Window], target: str,
                   condition: str = "", group_by: str = "", check_bounds: bool = True,
                   warn: bool = True) -> TrialFeatures:
    """Filter trials (condition, NaN event, NaN target), check the windows, count spikes."""
    n_all = len(rec.trial_column("start_time"))
    keep = np.ones(n_all, dtype=bool)
    dropped: dict[str, int] = {}
    for col, value in parse_condition(condition):
        vals = rec.trial_column(col)
        ok = _truthy(vals) if value is None else as_text(vals) == value
        dropped[f"condition {col}" + (f"={value}" if value is not None else "")] = int((keep & ~ok).sum())
        keep &= ok
    ev = rec.trial_column(event).astype(np.float64)
    if ev.ndim != 1:
        raise DataError(f"{rec.name}: event column {event!r} must hold one time per trial, got shape {ev.shape}")
    nan_ev = keep & np.isnan(ev)
    dropped[f"NaN {event}"] = int(nan_ev.sum())
    keep &= ~nan_ev
    raw = rec.trial_column(target)
    if raw.dtype.kind == "f":
        bad = np.isnan(raw).any(axis=tuple(range(1, raw.ndim))) if raw.ndim > 1 else np.isnan(raw)
        dropped[f"NaN {target}"] = int((keep & bad).sum())
        keep &= ~bad
    idx = np.flatnonzero(keep)
    if warn and any(dropped.values()):
        msg = ", ".join(f"{n} for {why}" for why, n in dropped.items() if n)
        warnings.warn(f"{rec.name}: kept {len(idx)} of {n_all} trials; dropped {msg}", UserWarning, stacklevel=3)
    if len(idx) == 0:
        raise DataError(f"{rec.name}: no trials left after the filters ({dropped}); check condition=... and event={event}")
    events = ev[idx]
    if check_bounds:
        check_within_trials(windows, events, rec.trial_column("start_time").astype(float)[idx],
                            rec.trial_column("stop_time").astype(float)[idx], event, rec.name)
    groups = rec.unit_column(group_by) if group_by else np.full(len(rec.spike_times), "all", dtype=object)
    counts = count_matrix(rec.spike_times, events, windows)
    return TrialFeatures(rec.name, counts, raw[idx], groups, idx, dropped)
