"""The ``arrays`` source: already-binned data from an ``.npz`` file or an xarray dataset on disk
(zarr store, netCDF/HDF5), variables named by parameters. The first axis (or ``sample_dim``) of
every variable indexes trials/samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from usable import DataError, SourceData, Split, train_test_split_indices

from .targets import class_labels, parse_centre

TARGET_KINDS = ("auto", "classes", "real")


def _load(path: Path, group: str, sample_dim: str, names: list[str]) -> dict[str, np.ndarray]:
    """The named variables as numpy arrays with the sample axis first."""
    if not path.exists():
        raise DataError(f"arrays: {str(path)!r} does not exist")
    if path.suffix == ".npz":
        import zipfile
        if not zipfile.is_zipfile(path):
            raise DataError(f"arrays: {path} is not a readable .npz archive (not a zip file); write it with numpy.savez")
        try:  # never unpickle: object arrays are refused by allow_pickle=False
            with np.load(path, allow_pickle=False) as z:
                have = list(z.files)
                missing = [n for n in names if n not in have]
                if missing:
                    raise DataError(f"arrays: {path.name} has no array(s) {', '.join(missing)}; it holds: "
                                    f"{', '.join(have) or 'no arrays at all'}")
                return {n: np.asarray(z[n]) for n in names}
        except DataError:
            raise
        except ValueError as exc:
            why = "it holds pickled object arrays; save plain numeric arrays (np.savez)" if "pickle" in str(exc) \
                else f"{exc}"
            raise DataError(f"arrays: cannot read {path}: {why}") from None
        except Exception as exc:  # not a zip archive, truncated, ...
            raise DataError(f"arrays: {path} is not a readable .npz archive ({type(exc).__name__}: {exc}); "
                            "write it with numpy.savez") from None
    import xarray as xr

    if path.suffix == ".zarr" or (path.is_dir() and any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zattrs"))):
        try:  # consolidated metadata first (one read); plain stores have none, and that is fine
            ds = xr.open_zarr(str(path), group=group or None, consolidated=True)
        except (KeyError, ValueError, OSError):
            ds = xr.open_zarr(str(path), group=group or None, consolidated=False)
    else:
        ds = xr.open_dataset(str(path), group=group or None)
    have = sorted(list(ds.data_vars) + [c for c in ds.coords if c not in ds.dims])
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise DataError(f"arrays: {path.name} has no variable(s) {', '.join(missing)}; it holds: {', '.join(have)}")
    out = {}
    for n in names:
        da = ds[n]
        if sample_dim:
            if sample_dim not in da.dims:
                raise DataError(f"arrays: variable {n!r} has dims {da.dims}, not sample_dim={sample_dim!r}")
            da = da.transpose(sample_dim, ...)
        out[n] = np.asarray(da.values)
    return out


def _test_mask(values: np.ndarray, name: str) -> np.ndarray:
    """The is-test mask: booleans, 0/1, or the split names "train"/"test"; anything else is refused
    (``astype(bool)`` would read every non-empty string as True)."""
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind == "b":
        return v
    if v.dtype.kind in "iu" and set(np.unique(v).tolist()) <= {0, 1}:
        return v.astype(bool)
    if v.dtype.kind in "UOS":
        text = np.char.lower(np.asarray([x.decode() if isinstance(x, bytes) else str(x) for x in v]))
        if set(np.unique(text).tolist()) <= {"train", "test"}:
            return text == "test"
    raise DataError(f"arrays: test={name!r} must be a boolean mask (True = test sample), 0/1, or the names "
                    f"'train'/'test'; it holds values like {np.unique(v)[:4].tolist()}")


def arrays_source(*, file, sources, target, target_kind, bins, centre, test, sample_dim, group, test_fraction,
                  seed) -> SourceData:
    """Sources and target from named arrays; ``test`` names an optional boolean is-test array."""
    src = [s for s in str(sources).split("+") if s]
    if not src:
        raise DataError("arrays: give sources=NAME+NAME (the arrays used as sources)")
    names = src + [target] + ([test] if test else [])
    arr = _load(Path(file), group, sample_dim, names)
    y_raw = arr[target]
    n = y_raw.shape[0]
    for s in src:
        if arr[s].shape[0] != n:
            raise DataError(f"arrays: source {s!r} has {arr[s].shape[0]} samples but target {target!r} has {n}; "
                             "the first axis (or sample_dim) must index the same samples")
    if target_kind not in TARGET_KINDS:
        raise DataError(f"target_kind={target_kind!r}; choose one of {', '.join(TARGET_KINDS)}")
    kind = target_kind
    if kind == "auto":
        kind = "real" if (y_raw.dtype.kind == "f" and not bins and y_raw.ndim == 1) else "classes"
    keep = np.ones(n, dtype=bool)
    class_names = None
    if kind == "classes":
        y, class_names, keep = class_labels(y_raw, bins, parse_centre(centre), target)
        full = np.zeros(n, dtype=np.int64)
        full[keep] = y
        y_all = full
    else:
        if y_raw.ndim != 1:
            raise DataError(f"arrays: a real target must be one number per sample, {target!r} has shape {y_raw.shape}")
        y_all = y_raw.astype(np.float32)
        keep = ~np.isnan(y_all)
    if test:
        is_test = _test_mask(arr[test], test)
        tr, te = np.flatnonzero(~is_test & keep), np.flatnonzero(is_test & keep)
    else:
        kept = np.flatnonzero(keep)
        a, b = train_test_split_indices(len(kept), test_fraction, seed,
                                        stratify=y_all[kept] if kind == "classes" else None)
        tr, te = kept[a], kept[b]
    xs = [np.asarray(arr[s], dtype=np.float32) for s in src]
    for s, x in zip(src, xs):
        bad = int((~np.isfinite(x)).sum())
        if bad:
            raise DataError(f"arrays: source {s!r} in {Path(file).name} holds {bad} NaN or infinite values; clean or "
                            "impute them first (a decoder cannot learn from them)")
    yt = torch.from_numpy(y_all)

    def split(ii):
        return Split([torch.from_numpy(np.ascontiguousarray(x[ii])) for x in xs], yt[ii])

    return SourceData(split(tr), split(te), src, kind, len(class_names) if class_names else None, class_names,
                      {"file": str(file), "target_column": target, "dropped_nan_target": int((~keep).sum())})
