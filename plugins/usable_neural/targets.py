"""Turning a trials-table column into class labels.

Categorical columns (strings, ints, bools, or anything with few distinct values) map to classes
0..K-1 in sorted order of their values. A continuous 2-D position (x, y) is binned into K
angular sectors around a centre: sector k is centred on the angle k·360°/K (counter-clockwise
from +x) and covers the HALF-OPEN range [k·360/K − 180/K, k·360/K + 180/K) degrees, so with
K = 8 targets at 0°, 45°, …, 315° each target falls in the middle of its own sector.
"""
from __future__ import annotations

import numpy as np

from usable import DataError


def as_text(values) -> np.ndarray:
    """Column values as str (NWB strings may come back as bytes)."""
    out = [v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    return np.asarray(out, dtype=object)


def angular_bins(positions: np.ndarray, bins: int, centre=(0.0, 0.0)) -> np.ndarray:
    """(N, 2) positions -> int64 sector indices 0..bins-1 (see the module docstring)."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise DataError(f"angular binning needs (x, y) positions of shape (N, 2), got shape {pos.shape}")
    if bins < 2:
        raise DataError(f"bins={bins}: need at least 2 angular sectors")
    dx, dy = pos[:, 0] - centre[0], pos[:, 1] - centre[1]
    at_centre = (dx == 0) & (dy == 0)
    if at_centre.any():
        raise DataError(f"{int(at_centre.sum())} positions equal the centre {tuple(centre)}, where the angle is "
                         "undefined; drop those trials with condition=... or set centre=x;y")
    theta = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    width = 2 * np.pi / bins
    # Integer sector of theta + half a sector; mod folds the last half-sector back onto sector 0.
    return (np.floor((theta + width / 2) / width).astype(np.int64)) % bins


def sector_names(bins: int) -> list[str]:
    return [f"{k * 360 / bins:g}deg" for k in range(bins)]


def parse_centre(text) -> tuple[float, float] | str:
    """'0+0' -> (0.0, 0.0); 'mean' -> 'mean' (the mean position of the kept trials)."""
    if isinstance(text, (tuple, list)):
        return float(text[0]), float(text[1])
    text = str(text).strip()
    if text.lower() == "mean":
        return "mean"
    parts = [p for p in text.split("+") if p.strip()]
    if len(parts) != 2:
        raise DataError(f"centre={text!r}: write x+y (e.g. centre=0+0) or centre=mean")
    return float(parts[0]), float(parts[1])


def class_labels(raw: np.ndarray, bins: int, centre, column: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Encode a target column. Returns (labels int64, class names, kept mask).

    Rows whose target is NaN are not kept (the caller reports how many). ``bins`` > 0 bins a 2-D
    position into angular sectors; ``bins`` = 0 treats the column as categorical.
    """
    raw = np.asarray(raw)
    if bins:
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise DataError(f"target column {column!r} has shape {raw.shape[1:] or '(scalar)'} per trial; "
                             f"bins={bins} needs an (x, y) position per trial. Use bins=0 for a categorical column.")
        pos = raw.astype(np.float64)
        keep = ~np.isnan(pos).any(axis=1)
        c = np.nanmean(pos[keep], axis=0) if centre == "mean" else centre
        return angular_bins(pos[keep], bins, c), sector_names(bins), keep
    if raw.ndim > 1:
        raise DataError(f"target column {column!r} has {raw.shape[1]} values per trial (a position?); "
                         f"bin it into angular sectors with bins=8, or name a categorical column")
    if raw.dtype.kind == "f":
        keep = ~np.isnan(raw)
        vals = raw[keep]
        if not np.all(vals == np.round(vals)):
            raise DataError(f"target column {column!r} holds non-integer numbers; for classes name a categorical "
                             f"column, or a 2-D position column with bins=K")
        vals = vals.astype(np.int64)
    else:
        keep = np.ones(raw.shape[0], dtype=bool)
        vals = as_text(raw) if raw.dtype.kind in "OSU" else raw
    levels, labels = np.unique(vals, return_inverse=True)
    return labels.astype(np.int64).reshape(-1), [str(v) for v in levels], keep

