"""What is possible: every estimate is checked against the bounds it must obey, each violation is
kept in a ``flags`` variable (the reason, "" where the value passed) and reported as a warning
that names the likely cause and the fix.

A value outside its bounds is not a finding but a failed fit: a negative usable or redundant
information means the decoders generalise worse than the null model (over-fitting on few samples,
or under-training); a redundancy above the smallest source's own usable information, or a large
held-out divergence, means the agreement constraint was not met (a β too small, too few epochs),
or, for the former, that the single-source decoders the bound comes from over-fit.
The tolerance is statistical: 3 standard errors of the held-out mean (paired per sample), at
least ``FLOOR`` bit, so sampling and training noise around a true 0 does not fire.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

# bit. Not smaller: where both decoders sit near the null model (a true I∩ of 0) the per-sample
# terms barely vary and 3 standard errors shrink to ~0.001, while the training error does not:
# UNQ at β = 15 with the paper's settings gives −0.011 on one seed of two (4,000 samples).
FLOOR = 0.02
SEP = " | "  # between the reasons of one cell

NEGATIVE = "negative (over-fitting or under-training: use more samples, fewer --epochs or a lower --lr)"
# Both causes are seen: fig4-areas at β 50 (I∩ falls with β) and neural-fig3 at 40 epochs on 80
# trials (the β = 0 decoders over-fit; 20 epochs with weight decay 0.1 cleared it, docs/neural.md).
ABOVE_MIN = ("above the smallest source's usable information (agreement not reached: raise --beta or "
             "--epochs; or the single-source decoders over-fit: more samples, fewer --epochs or a larger "
             "--weight-decay)")
DISAGREE = "held-out divergence above {m} (agreement not reached: raise --beta or --epochs)"


def tolerance(per_sample: np.ndarray) -> np.ndarray:
    """max(FLOOR, 3 standard errors of the mean over the last axis (the held-out samples))."""
    x = np.asarray(per_sample, dtype=np.float64)
    se = x.std(axis=-1, ddof=1) / np.sqrt(max(x.shape[-1], 1)) if x.shape[-1] > 1 else np.zeros(x.shape[:-1])
    return np.maximum(FLOOR, 3.0 * se)


def add_reason(flags: np.ndarray, where: np.ndarray, reason: str) -> np.ndarray:
    """Append ``reason`` to the flags (an object array of strings) where ``where``."""
    out = flags.astype(object)
    for idx in zip(*np.nonzero(where)):
        out[idx] = f"{out[idx]}{SEP}{reason}" if out[idx] else reason
    return out


def as_flags(flags: np.ndarray, dims: tuple[str, ...], checked: str) -> xr.DataArray:
    width = max([len(str(f)) for f in flags.ravel()] + [1])
    return xr.DataArray(flags.astype(f"<U{width}"), dims=dims).assign_attrs(
        long_name=f"why the value is flagged as impossible (empty: it passed the checks: {checked})")


def warnings_of(variable: str, values: xr.DataArray, flags: xr.DataArray) -> list[str]:
    """One line per distinct reason: which cells, their values, the cause and the fix."""
    out = []
    reasons = sorted({r for f in flags.values.ravel() for r in str(f).split(SEP) if r})
    for reason in reasons:
        hit = flags.str.contains(reason, regex=False).values
        cells = [", ".join(f"{d}={values[d].values[i].item() if d in values.coords else i}"
                           for d, i in zip(values.dims, idx)) for idx in zip(*np.nonzero(hit))]
        vals = values.values[hit]
        shown = "; ".join(cells[:4]) + (f"; … ({len(cells)} cells)" if len(cells) > 4 else "")
        value = f"{vals.min():.3f}…{vals.max():.3f}" if vals.size > 1 else f"{vals.item():.3f}"
        out.append(f"{variable} = {value} bit at [{shown}]: {reason}")
    return out


def usable_flags(ui: xr.DataArray, per_sample: xr.DataArray) -> xr.DataArray:
    """I_V ≥ −tolerance (I_V ≤ H_V(Y) holds by construction for class targets); ``per_sample``:
    the dims of ``ui`` and ``sample``, whose mean is I_V."""
    tol = tolerance(per_sample.transpose(*ui.dims, "sample").values)
    flags = add_reason(np.full(ui.shape, "", dtype=object), ui.values < -tol, NEGATIVE)
    return as_flags(flags, ui.dims, "I_V ≥ −tolerance")


def rine_flags(ri: xr.DataArray, per_sample: xr.DataArray, own: xr.DataArray, divergence: xr.DataArray | None,
               max_divergence: float) -> xr.DataArray:
    """−tol ≤ I∩ ≤ min_i I_V(X_i→Y) + tol, and the held-out divergence ≤ max_divergence.

    ``ri`` (…, seed, beta); ``per_sample`` the same dims and ``sample``, whose mean is I∩; ``own``
    (…, seed, source): each source's usable information from the β = 0 decoders; ``divergence``
    like ``ri``. Any further dims (a task) are cells like the others.
    """
    dims = ri.dims
    tol = xr.DataArray(tolerance(per_sample.transpose(*dims, "sample").values), dims=dims, coords=ri.coords)
    constrained = ri.beta > 0  # at β = 0 the value is not a redundancy: no upper bound, no agreement
    flags = add_reason(np.full(ri.shape, "", dtype=object), (ri < -tol).values, NEGATIVE)
    above = constrained & (ri > own.min("source") + tol)
    flags = add_reason(flags, above.transpose(*dims).values, ABOVE_MIN)
    if divergence is not None and max_divergence > 0:
        apart = constrained & (divergence > max_divergence)
        flags = add_reason(flags, apart.transpose(*dims).values, DISAGREE.format(m=max_divergence))
    return as_flags(flags, dims, f"−tol ≤ I∩ ≤ min_i I_V + tol, held-out divergence ≤ {max_divergence}")
