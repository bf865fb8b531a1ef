"""Base-C relabellings of thesis algorithm 2 (Dubois et al. 2020, algorithm 1).

Within each class the samples are taken in dataset order; the i-th sample (i = 0, 1, ...) of a
class gets the N_D digits of i in base C as its new labels, least significant first:
i = Σ_d y_d C^d. N_D is the number of base-C digits needed for the largest class index, i.e.
the smallest k with C^k >= max_c n_c. It is computed with integers: ``math.log(125, 5)`` is
3.0000000000000004, whose ceiling adds a spurious all-zero digit.
"""
from __future__ import annotations

import numpy as np
import torch

from usable import SpecError, entropy_bits


def n_digits(max_count: int, base: int) -> int:
    """Smallest k >= 0 with base**k >= max_count (= ceil(log_base max_count)), in integers."""
    max_count, base = int(max_count), int(base)
    if base < 2:
        raise SpecError(f"relabelling base must be >= 2 (the number of classes), got {base}")
    if max_count < 0:
        raise SpecError(f"class size must be >= 0, got {max_count}")
    k, power = 0, 1
    while power < max_count:
        power *= base
        k += 1
    return k


def within_class_index(y: torch.Tensor | np.ndarray) -> np.ndarray:
    """Position of each sample among the samples of its class, in dataset order (0-based)."""
    y = np.asarray(y).reshape(-1)
    idx = np.zeros(y.shape[0], dtype=np.int64)
    for c in np.unique(y):
        mask = y == c
        idx[mask] = np.arange(int(mask.sum()), dtype=np.int64)
    return idx


def relabel(y: torch.Tensor | np.ndarray, n_classes: int) -> torch.Tensor:
    """New labels (N, N_D), int64: column d is digit d (least significant first) of each sample's
    within-class index in base ``n_classes``."""
    y_np = np.asarray(y).reshape(-1)
    if y_np.size and (y_np.min() < 0 or y_np.max() >= n_classes):
        raise SpecError(f"labels must lie in 0..{n_classes - 1} to relabel in base {n_classes}")
    idx = within_class_index(y_np)
    max_count = int(np.bincount(y_np, minlength=n_classes).max()) if y_np.size else 0
    nd = n_digits(max_count, n_classes)
    digits = np.empty((y_np.shape[0], nd), dtype=np.int64)
    rest = idx.copy()
    for d in range(nd):  # integer division, exact for any size
        digits[:, d] = rest % n_classes
        rest //= n_classes
    assert not rest.any(), "N_D digits must represent every within-class index"
    return torch.from_numpy(digits)


def digit_entropies(digits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Empirical entropy (bits) of each digit column, from the actual labels (not log2 C: the
    leading digit of an index below max n_c rarely takes all C values)."""
    d = np.asarray(digits)
    return np.array([entropy_bits(d[:, k]) for k in range(d.shape[1])], dtype=np.float64)
