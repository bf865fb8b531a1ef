"""The ``synthetic`` source: the RINE paper's 8-class task of figure 5 (appendix C.5).

Y is uniform over K classes (K = 8). Source 1 encodes the classes S1 = {0..n−1}, source 2 the
classes S2 = {K−n..K−1}, so they overlap in the C = S1 ∩ S2 classes (none for n = K/2, all for
n = K): minimal overlap. Each source's task units are a one-hot vector over the K classes:

- if Y is one of the source's own classes, the unit of Y is on;
- otherwise the unit of a class drawn uniformly from the source's *exclusive* classes (S_i minus C)
  is on, so a source cannot tell "not mine" apart from its own exclusive classes.

Why this encoding: it makes the redundancy exact. The Gács–Körner common part of (X1, X2) is
Q = Y if Y ∈ C else "other" (all exclusive codes are linked through the random fill-ins, the
shared ones are not), and RINE at large β converges to I(Q;Y) = H(Q):

    I∩ = |C|/K·log2 K + (1 − |C|/K)·log2(K/(K − |C|))       (n=4: 0, n=5: 1.06, n=8: 3 bits)

The cosine similarity of the task units is exactly |C|/K (equal codes only for shared classes).
Extra units, appended to both sources:

- ``noise`` units N(0, noise_sd²) (the paper's N(0, 2²)), drawn independently for each source:
  they carry nothing about Y and lower the cosine similarity;
- ``shared`` non-task units N(0, shared_sd²), the same draw in both sources: they carry nothing
  about Y either but raise the cosine similarity.
"""
from __future__ import annotations

import math
from typing import Annotated

from usable import SpecError


def class_sets(n: int, classes: int) -> tuple[list[int], list[int], list[int]]:
    """(S1, S2, shared) for sources that each encode n of ``classes`` classes with minimal overlap."""
    s1, s2 = list(range(n)), list(range(classes - n, classes))
    return s1, s2, sorted(set(s1) & set(s2))


def true_redundancy_bits(n: int, classes: int) -> float:
    """H(Q), Q = Y on the shared classes and one "other" value elsewhere (Y uniform)."""
    c = len(class_sets(n, classes)[2])
    rest = (classes - c) / classes
    return c / classes * math.log2(classes) + (rest * math.log2(1 / rest) if rest > 0 else 0.0)


def _task_units(y, own: list[int], exclusive: list[int], classes: int, rng):
    import numpy as np
    code = y.copy()
    foreign = ~np.isin(y, own)
    if foreign.any():  # only possible when the source has exclusive classes to hide behind
        code[foreign] = rng.choice(exclusive, size=int(foreign.sum()))
    return np.eye(classes, dtype=np.float32)[code]


def make_synthetic(n: Annotated[int, "classes each source encodes, minimal overlap (classes/2: none shared, classes: all)"] = 8,
                   classes: Annotated[int, "number of classes of Y"] = 8,
                   noise: Annotated[int, "noise units N(0, noise_sd²) added to each source, independently"] = 0,
                   noise_sd: Annotated[float, "sd of the noise units (the paper's 2)"] = 2.0,
                   shared: Annotated[int, "non-task units added to both sources, the same draw"] = 0,
                   shared_sd: Annotated[float, "sd of the shared non-task units"] = 1.0,
                   samples: Annotated[int, "number of samples drawn"] = 10000,
                   test_fraction: Annotated[float, "held-out fraction (stratified by class)"] = 0.2,
                   seed: Annotated[int, "seed of the draw and the split"] = 0):
    """RINE paper fig. 5: 8 classes, two sources encoding n classes each with minimal overlap."""
    import numpy as np
    import torch

    from usable import SourceData, Split, train_test_split_indices

    if classes < 2:
        raise SpecError(f"synthetic: classes must be at least 2, got {classes}")
    if not classes / 2 <= n <= classes:
        raise SpecError(f"synthetic: n (classes each source encodes) must lie in {math.ceil(classes / 2)}..{classes} "
                         f"so that the two sources cover all {classes} classes, got {n}")
    if noise < 0 or shared < 0:
        raise SpecError(f"synthetic: noise and shared unit counts must be >= 0, got {noise}, {shared}")
    if samples < 2 * classes:
        raise SpecError(f"synthetic: samples must be at least {2 * classes}, got {samples}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=samples)
    s1, s2, common = class_sets(n, classes)
    xs = []
    for own in (s1, s2):
        exclusive = [c for c in own if c not in common]
        xs.append(_task_units(y, own, exclusive, classes, rng))
    z_shared = (shared_sd * rng.normal(size=(samples, shared))).astype(np.float32)
    for i in range(2):
        z_noise = (noise_sd * rng.normal(size=(samples, noise))).astype(np.float32)
        xs[i] = np.concatenate([xs[i], z_noise, z_shared], axis=1)
    tr, te = train_test_split_indices(samples, test_fraction, seed + 1, stratify=y)

    def split(idx):
        return Split([torch.from_numpy(x[idx]) for x in xs], torch.from_numpy(y[idx].astype(np.int64)))

    attrs = {"task": "synthetic-overlap", "n_encoded": n, "shared_classes": len(common), "noise_units": noise,
             "shared_units": shared, "true_redundancy_bits": true_redundancy_bits(n, classes),
             "task_cosine": len(common) / classes}
    return SourceData(split(tr), split(te), ["x1", "x2"], "classes", classes,
                      [str(c) for c in range(classes)], attrs)
