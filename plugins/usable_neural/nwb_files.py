"""The ``nwb`` source: spike counts per unit in windows around a trial event, read with pynwb."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from usable import DataError, require

from .assemble import build_source_data, session_name
from .recording import Recording, trial_features
from .targets import parse_centre
from .windows import parse_windows


def _column_values(col) -> np.ndarray:
    """A DynamicTable column as an array; object references (e.g. electrode groups) by name."""
    data = col.data[:]
    arr = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if arr.dtype == object and len(arr) and hasattr(arr[0], "name"):
        return np.asarray([v.name for v in arr], dtype=object)
    return arr


def _unit_columns(units) -> dict[str, np.ndarray]:
    """Units-table columns usable for grouping. An electrode-group reference column also gives
    ``<column>.location`` (e.g. ``electrode_group.location``: the brain area of each unit's group)."""
    out = {}
    for c in units.colnames:
        if c in ("spike_times", "obs_intervals", "waveforms", "waveform_mean", "waveform_sd", "electrodes"):
            continue
        try:
            raw = units[c].data[:]
        except Exception:  # a column we cannot read flat is simply not offered for grouping
            continue
        out[c] = _column_values(units[c])
        if len(raw) and hasattr(raw[0], "location"):
            out[f"{c}.location"] = np.asarray([v.location for v in raw], dtype=object)
    return out


def read_recording(path: str | Path) -> Recording:
    """Load the trials table and units table (spike times + other unit columns) of one NWB file."""
    NWBHDF5IO = require("pynwb", extra="neural", what="source nwb").NWBHDF5IO

    path = Path(path)
    if not path.exists():
        raise DataError(f"NWB file {str(path)!r} does not exist")
    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        nwb = io.read()
        if nwb.trials is None:
            raise DataError(f"{path.name}: the NWB file has no trials table (nwbfile.trials); "
                             "the nwb source needs one with an event-time column")
        if nwb.units is None:
            raise DataError(f"{path.name}: the NWB file has no units table (nwbfile.units) with spike times")
        trials = {c: _column_values(nwb.trials[c]) for c in nwb.trials.colnames}
        units = nwb.units
        if "spike_times" not in units.colnames:
            raise DataError(f"{path.name}: the units table has no spike_times column; columns: {', '.join(units.colnames)}")
        # Ragged column: one flat array plus the end offset of each unit's spikes.
        flat = np.asarray(units.spike_times.data[:], dtype=np.float64)
        ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        spikes = [flat[a:b] for a, b in zip(starts, ends)]
        unit_cols = _unit_columns(units)
    return Recording(session_name(path), trials, spikes, unit_cols)


def nwb_source(*, file, event, window, target, bins, centre, condition, group_by, groups, normalize, pairing,
               check_bounds, test_fraction, seed):
    """Spike counts from NWB files; one source per (file, unit group, window)."""
    files = [f.strip() for f in str(file).split("+") if f.strip()]
    if not files:
        raise DataError("nwb: give file=PATH (several sessions: file=a.nwb+b.nwb)")
    windows = parse_windows(window)
    feats = [trial_features(read_recording(f), event=event, windows=windows, target=target,
                            condition=condition, group_by=group_by, check_bounds=check_bounds)
             for f in files]
    return build_source_data(feats, windows, target=target, bins=bins, centre=parse_centre(centre),
                             groups=[g for g in groups.split("+") if g], norm=normalize,
                             test_fraction=test_fraction, seed=seed, pairing=pairing,
                             attrs={"files": "+".join(files), "event": event, "condition": condition or "none",
                                    "group_by": group_by or "none"})
