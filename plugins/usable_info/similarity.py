"""``cosine``: the target-agnostic baseline the RINE paper compares against (section 4.4, fig. 5).

For every pair of sources (a, b) with feature vectors of the same length, the mean over samples
of cos(x_a, x_b) = ⟨x_a, x_b⟩ / (‖x_a‖·‖x_b‖). No decoder is trained: the number depends on the
inputs alone, which is the point of the comparison (noise units lower it, shared non-task units
raise it, while the redundant information about Y stays put).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
import xarray as xr

from usable import DataError

def _features(data, i: int, split: str) -> torch.Tensor:
    parts = [data.test.xs[i]] if split == "test" else [data.train.xs[i]] if split == "train" \
        else [data.train.xs[i], data.test.xs[i]]
    return torch.cat([p.reshape(p.shape[0], -1).double() for p in parts])


def pairwise_cosine(feats: list[torch.Tensor], centre: bool = False) -> np.ndarray:
    """(n, n) matrix of mean per-sample cosine similarities; a zero vector counts as similarity 0."""
    if centre:  # subtract each unit's mean: cosine becomes a correlation of the fluctuations
        feats = [f - f.mean(dim=0, keepdim=True) for f in feats]
    unit = []
    for f in feats:
        norm = f.norm(dim=1, keepdim=True)
        unit.append(torch.where(norm > 0, f / norm.clamp_min(1e-300), torch.zeros_like(f)))
    n = len(feats)
    out = np.eye(n)
    for a, b in itertools.combinations(range(n), 2):
        out[a, b] = out[b, a] = float((unit[a] * unit[b]).sum(dim=1).mean())
    for a in range(n):  # a source with all-zero samples is not fully similar to itself either
        out[a, a] = float((unit[a] * unit[a]).sum(dim=1).mean())
    return out


def compute_cosine(ctx, split: str = "test", centre: bool = False) -> xr.Dataset:
    data = ctx.data
    if data.n_sources < 2:
        raise DataError(f"cosine needs at least 2 sources, got {data.n_sources} ({', '.join(data.names)})")
    feats = [_features(data, i, split) for i in range(data.n_sources)]
    widths = {nm: f.shape[1] for nm, f in zip(data.names, feats)}
    if len(set(widths.values())) > 1:
        raise DataError("cosine compares feature vectors unit by unit, so every source needs the same number "
                         f"of features; got {widths}. Use sources of equal width (e.g. equal crops).")
    mat = pairwise_cosine(feats, centre)
    iu = np.triu_indices(len(feats), k=1)
    ds = xr.Dataset(
        {
            "cosine_similarity": xr.Variable((), float(mat[iu].mean()), {
                "long_name": "mean cosine similarity of the sources' feature vectors (mean over pairs)",
                "units": "1"}),
            "cosine_matrix": xr.Variable(("source_a", "source_b"), mat, {
                "long_name": "mean per-sample cosine similarity of each pair of sources", "units": "1"}),
        },
        coords={"source_a": list(data.names), "source_b": list(data.names)},
    )
    ds.attrs.update({"headline": ["cosine_similarity"], "split_evaluated": split, "centred": int(centre),
                     "n_samples": int(feats[0].shape[0]), "target": data.target,
                     **{f"source_{k}": v for k, v in data.attrs.items() if isinstance(v, (int, float, str))}})
    return ds
