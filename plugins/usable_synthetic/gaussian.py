"""The ``gaussian`` source: a real target Y ~ N(0, 1) and two scalar sources with a known redundancy.

Modes (σ = ``sigma``, the observation noise):

- ``copy``:      X1 = X2 = Y + N(0, σ²) (one noise draw). I∩ = I(X1;Y) = ½·log2(1 + 1/σ²).
- ``transform``: X1 = Y + N(0, σ²), X2 = a·X1 + b (a ≠ 0): an invertible map of X1, so by the RINE
                 paper's proposition 2 I∩ = I(X1;Y) = ½·log2(1 + 1/σ²).
- ``halves``:    Y = Y1 + Y2 with independent Y1, Y2 ~ N(0, ½); X1 = Y1, X2 = Y2. I(X_i;Y) = ½ bit
                 each, but no common function of X1 and X2 carries information: I∩ = 0.
- ``noise``:     X1 = Y + N(0, σ²), X2 ~ N(0, 1) independent of Y: I∩ = 0.

Every number is exact for jointly Gaussian variables, and a linear-Gaussian decoder N(w·x + c, s²)
attains it (the Bayes-optimal predictor is linear), so the ``linear`` decoder's estimates
converge to these values; the source stores them as attrs.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from usable import SpecError

MODES = ("copy", "transform", "halves", "noise")


def mutual_information_bits(sigma: float) -> float:
    """I(Y; Y + N(0, σ²)) for Y ~ N(0, 1): ½·log2(1 + 1/σ²)."""
    return 0.5 * math.log2(1.0 + 1.0 / sigma ** 2)


def closed_forms(mode: str, sigma: float) -> dict[str, float]:
    """Exact I(X1;Y), I(X2;Y) and the redundancy I∩ in bits for a mode."""
    if mode in ("copy", "transform"):
        i = mutual_information_bits(sigma)
        return {"mi_x1_bits": i, "mi_x2_bits": i, "true_redundancy_bits": i}
    if mode == "halves":  # Y = Y1 + Y2, var(Y_i) = ½: I = ½·log2(var Y / var(Y | Y_i)) = ½·log2 2
        return {"mi_x1_bits": 0.5, "mi_x2_bits": 0.5, "true_redundancy_bits": 0.0}
    return {"mi_x1_bits": mutual_information_bits(sigma), "mi_x2_bits": 0.0, "true_redundancy_bits": 0.0}


def make_gaussian(mode: Annotated[Literal[MODES], "copy | transform | halves | noise"] = "copy",
                  sigma: Annotated[float, "sd of the observation noise X = Y + N(0, σ²)"] = 1.0,
                  a: Annotated[float, "transform: X2 = a·X1 + b"] = 2.0,
                  b: Annotated[float, "transform: X2 = a·X1 + b"] = 1.0,
                  n: Annotated[int, "number of samples drawn"] = 10000,
                  test_fraction: Annotated[float, "held-out fraction"] = 0.2,
                  seed: Annotated[int, "seed of the draw and the split (fixed across training seeds)"] = 0):
    """Real target Y ~ N(0,1), two sources with a closed-form redundancy (Gaussian decoders)."""
    import numpy as np
    import torch

    from usable import SourceData, Split, train_test_split_indices
    if mode not in MODES:
        raise SpecError(f"gaussian: mode {mode!r}; choose one of {', '.join(MODES)}")
    if not sigma > 0:
        raise SpecError(f"gaussian: sigma must be > 0 (the observation noise sd), got {sigma}")
    if mode == "transform" and a == 0:
        raise SpecError("gaussian: mode=transform needs a != 0 (X2 = a·X1 + b must be invertible)")
    if n < 4:
        raise SpecError(f"gaussian: n must be at least 4, got {n}")
    rng = np.random.default_rng(seed)
    if mode == "halves":
        y1, y2 = rng.normal(0.0, math.sqrt(0.5), size=(2, n))
        y, x1, x2 = y1 + y2, y1, y2
    else:
        y = rng.normal(size=n)
        x1 = y + sigma * rng.normal(size=n)
        x2 = {"copy": x1, "transform": a * x1 + b, "noise": rng.normal(size=n)}[mode]
    tr, te = train_test_split_indices(n, test_fraction, seed + 1)

    def split(idx):
        xs = [torch.tensor(x[idx], dtype=torch.float32).unsqueeze(1) for x in (x1, x2)]
        return Split(xs, torch.tensor(y[idx], dtype=torch.float32))

    attrs = {"task": f"gaussian-{mode}", "mode": mode, "sigma": float(sigma), **closed_forms(mode, sigma)}
    if mode == "transform":
        attrs.update({"a": float(a), "b": float(b)})
    return SourceData(split(tr), split(te), ["x1", "x2"], "real", None, None, attrs)
