"""The functional API: one call on plain arrays, in the spirit of sklearn's ``mutual_info_score``.

``usable.usable_information(x, y)``, ``usable.rine([x1, x2], y, beta=15)`` and
``usable.neural_collapse(features, y)`` run the registry's ``usable``, ``rine`` and ``nc``
metrics through ``run_metric``, the path ``usable run`` takes, on an in-memory source. That
source is built exactly as the ``arrays`` source builds one from a file (classes coded in sorted
order of the labels, the same seeded stratified split, float32 features), so a call gives the
numbers ``usable run METRIC --source arrays:file=F.npz,sources=x1+x2,target=y`` gives on the same
arrays, seeds and settings. Each returns an eager xarray Dataset with the CLI run's variables.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import fields, replace
from typing import Any, Sequence

import numpy as np

from usable import DataError, GuardWarning, Spec, SpecError


# ------------------------------------------------------------------------------------ arrays in
def _as_numpy(value: Any, what: str) -> np.ndarray:
    """A numpy array from an array, a torch tensor (any device) or nested lists."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch to ask
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged lists
        raise DataError(f"{what}: cannot be read as an array ({exc}); pass a numpy array or a torch tensor") from None
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"{what}: needs one row per sample, got shape {arr.shape}")
    return arr


def _features(value: Any, what: str) -> np.ndarray:
    """Float32 features (N, ...); a 1-D array is one feature per sample."""
    arr = _as_numpy(value, what)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what}: features must be numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float32)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise DataError(f"{what}: {bad} NaN or infinite values; drop or impute them first (a decoder cannot learn "
                        "from them)")
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def class_codes(value: Any, what: str = "y") -> tuple[np.ndarray, list[str]]:
    """1-D class labels (ints, bools, strings, or floats holding integers) -> (int64 codes 0..K-1
    in sorted order of the labels, their names): the ``arrays`` source's coding."""
    y = _as_numpy(value, what)
    if y.ndim != 1:
        raise DataError(f"{what}: needs one class label per sample (shape (N,)), got shape {y.shape}; "
                        "flatten it with y.ravel() if it is (N, 1)")
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise DataError(f"{what}: {int(np.isnan(y).sum())} NaN labels; drop those samples first")
        if not np.all(y == np.round(y)):
            raise DataError(f"{what}: holds non-integer numbers; these functions decode class labels (ints or strings)")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biuUS":
        raise DataError(f"{what}: class labels must be ints, bools or strings, got dtype {y.dtype}")
    levels, codes = np.unique(y, return_inverse=True)
    if len(levels) < 2:
        raise DataError(f"{what}: holds a single class ({levels[0]!r}); information about a constant is 0, "
                        "and these functions need at least 2 classes")
    return codes.astype(np.int64).reshape(-1), [str(v) for v in levels]


def from_arrays(xs: Sequence[Any], y: Any, names: Sequence[str] | None = None, test_fraction: float = 0.2,
                seed: int = 0):
    """A ``SourceData`` of in-memory sources ``xs`` (each (N, ...)) and class labels ``y`` (N,),
    split as the ``arrays`` source splits a file: stratified by class, held-out ``test_fraction``,
    seeded by ``seed``."""
    import torch

    from usable import SourceData, Split, train_test_split_indices
    names = list(names) if names is not None else [f"x{i + 1}" for i in range(len(xs))]
    if len(names) != len(xs) or len(set(names)) != len(names):
        raise DataError(f"names {names}: give {len(xs)} distinct names, one per source")
    arrays = [_features(x, f"source {n!r}") for n, x in zip(names, xs)]
    codes, class_names = class_codes(y)
    for n, x in zip(names, arrays):
        if x.shape[0] != codes.shape[0]:
            raise DataError(f"source {n!r} has {x.shape[0]} samples but y has {codes.shape[0]}; the first axis of "
                            "every array must index the same samples")
    train, test = train_test_split_indices(len(codes), test_fraction, seed, stratify=codes)
    yt = torch.from_numpy(codes)

    def split(ii):
        return Split([torch.from_numpy(np.ascontiguousarray(x[ii])) for x in arrays], yt[ii])

    return SourceData(split(train), split(test), names, "classes", len(class_names), class_names,
                      {"data": "in-memory arrays"})


def _sources(x: Any, what: str, at_least: int = 1) -> list[Any]:
    """One array, or a list/tuple of arrays (one per source)."""
    if isinstance(x, (list, tuple)) and x and all(hasattr(v, "shape") for v in x):
        xs = list(x)
    elif hasattr(x, "shape") or at_least == 1:
        xs = [x]
    else:
        xs = list(x)
    if len(xs) < at_least:
        raise DataError(f"{what} needs a list of at least {at_least} sources, e.g. {what}([x1, x2], y); got "
                        f"{len(xs)} array(s)")
    return xs


# ------------------------------------------------------------------------------------ one run
def _run(metric: str, metric_params: dict[str, Any], data, *, seeds, betas=(0.0,), settings: dict[str, Any],
         **plugins: str | None):
    """``run_metric`` on in-memory data, with every plugin and setting checked first (as the CLI does).
    ``plugins``: decoder, divergence, schedule specs; None keeps the command line's default."""
    from usable import FitConfig, RunContext, RunSpec, get_entry, run_metric
    known = [f.name for f in fields(FitConfig)]
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise SpecError(f"unknown training setting {key!r}.{hint} Settings: {', '.join(known)}")
    fit = replace(FitConfig(progress=False), **settings)  # a library call prints nothing unless asked
    # Only values that differ from the metric's defaults enter its spec, so the stored metric text
    # is the one `usable run` stores for the same run (``rine``, not ``rine:per_class=false``).
    declared = {p.name: p for p in get_entry("metrics", metric).params}
    params = {k: declared[k].text(v) for k, v in metric_params.items() if declared[k].text(v) != declared[k].default_text()}
    # The spec records where the data came from; it names no registered source, so it is not resolved.
    where = Spec("in_memory", {"sources": "+".join(data.names), "n": str(len(data.train) + len(data.test))})
    given = {k: v for k, v in plugins.items() if v is not None}  # the defaults are RunSpec's, declared once
    spec = RunSpec.create(Spec(metric, params), [where], betas=betas, seeds=seeds, fit=fit, **given)
    replace(spec, sources=()).validate()
    ds = run_metric(RunContext(spec, data=data)).load()
    for text in ds.attrs.get("warnings") or []:  # what `usable run` prints: the guards' findings
        warnings.warn(text, GuardWarning, stacklevel=3)
    return ds


def usable_information(x: Any, y: Any, *, decoder: str | None = None, seeds: Any = 0, joint: bool = False,
                       pvi: bool = True, names: Sequence[str] | None = None, test_fraction: float = 0.2,
                       split_seed: int = 0, **settings: Any):
    """Usable information I_V(X→Y) in bits, held out: ``usable.usable_information(x, y).usable_information``.

    ``x``: features (N, ...) as a numpy array or torch tensor, or a list of such (one value per
    source); ``y``: (N,) class labels. ``decoder``: a decoder spec (``"mlp:hidden=64"``,
    ``"linear"``); ``seeds``: training seeds (``0``, ``[0, 1, 2]``, ``"0-4"``); ``joint``/``pvi``:
    the ``usable`` metric's parameters; ``test_fraction``/``split_seed``: the stratified split.
    Other keywords are training settings (``epochs``, ``lr``, ``optimizer``, ``threads``,
    ``progress=True``, ...: ``usable run --help``); whatever is not given takes the command line's
    default. Returns the ``usable run usable`` Dataset (dims seed, source), loaded.
    """
    xs = _sources(x, "usable_information")
    names = names if names is not None else (["x"] if len(xs) == 1 else None)
    data = from_arrays(xs, y, names, test_fraction, split_seed)
    return _run("usable", {"joint": joint, "pvi": pvi}, data, seeds=seeds, settings=settings, decoder=decoder)


def rine(xs: Sequence[Any], y: Any, *, beta: Any, decoder: str | None = None, divergence: str | None = None,
         schedule: str | None = None, seeds: Any = 0, per_class: bool = False, names: Sequence[str] | None = None,
         test_fraction: float = 0.2, split_seed: int = 0, **settings: Any):
    """Redundant information (RINE) of n ≥ 2 sources about ``y`` in bits: ``usable.rine([x1, x2], y, beta=15)``.

    ``xs``: a list of feature arrays (N, ...) (numpy or torch), sources ``x1, x2, ...`` unless
    ``names`` are given; ``y``: (N,) class labels. ``beta``: one β or a list (required, as on the
    command line); ``decoder``, ``divergence`` (or ``"none"``), ``schedule``: plugin specs;
    ``seeds``: training seeds; ``per_class``: also I∩ per class. Other keywords are training
    settings (``epochs``, ``lr``, ...: ``usable run --help``); whatever is not given takes the
    command line's default. Returns the ``usable run rine`` Dataset (``redundant_information``
    dims seed, beta), loaded.
    """
    data = from_arrays(_sources(xs, "rine", at_least=2), y, names, test_fraction, split_seed)
    return _run("rine", {"per_class": per_class}, data, seeds=seeds, betas=beta, settings=settings,
                decoder=decoder, divergence=divergence, schedule=schedule)


def neural_collapse(features: Any, y: Any, *, decoder: str = "linear", layers: Any = ("penultimate",),
                    splits: Any = ("train", "test"), seeds: Any = 0, rank_tol: float | None = None,
                    weighting: str = "sample", test_fraction: float = 0.2, split_seed: int = 0, **settings: Any):
    """Neural collapse (NC1-NC4, CDNV, trace quotient) of ``features`` (N, D) under labels ``y`` (N,).

    Runs the ``nc`` metric: a ``decoder`` (default ``linear``: a softmax classifier on the
    features) is trained by the one training loop, then ``layers`` are measured on ``splits``.
    With the default ``penultimate`` layer of a linear decoder that layer is ``features`` itself:
    NC1, NC2, CDNV and the trace quotient describe the features alone, NC3 and NC4 relate them to
    the trained classifier. Other keywords are training settings (``epochs``, ``lr``, ...:
    ``usable run --help``); whatever is not given takes the command line's default. Returns the
    ``usable run nc`` Dataset (dims seed, layer, split[, class]), loaded.
    """
    data = from_arrays([features], y, ["features"], test_fraction, split_seed)
    params = {"layers": layers, "splits": splits, "weighting": weighting}
    if rank_tol is not None:
        params["rank_tol"] = rank_tol
    return _run("nc", params, data, seeds=seeds, settings=settings, decoder=decoder)
