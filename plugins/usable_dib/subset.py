"""Class-balanced training subsets (the thesis downsamples training sets to the test-set size)."""
from __future__ import annotations

import numpy as np
import torch

from usable import DataError, SourceData, Split


def balanced_subset(data: SourceData, size: int, seed: int) -> tuple[SourceData, dict]:
    """A class-balanced training subset of ``size`` samples (size // C per class, in dataset
    order after a seeded shuffle), as the thesis downsamples training sets to the test-set size."""
    y = data.train.y.numpy()
    C = int(data.n_classes)
    per = size // C
    counts = np.bincount(y, minlength=C)
    if per < 1:
        raise DataError(f"a balanced subset of {size} samples has no sample per class (C = {C})")
    if counts.min() < per:
        raise DataError(f"balanced subset: {per} samples per class requested but class "
                         f"{int(counts.argmin())} has only {int(counts.min())}; use balance=false or fewer samples")
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(C)]))
    idx = torch.from_numpy(keep)
    sub = SourceData(Split([x[idx] for x in data.train.xs], data.train.y[idx]), data.test,
                     list(data.names), data.target, data.n_classes, data.class_names, dict(data.attrs))
    return sub, {"balanced_per_class": per, "train_size": int(len(keep))}
