"""Information-theoretic bookkeeping: bits, null models H_V(Y|∅), empirical entropies."""
from __future__ import annotations

import math

import numpy as np
import torch

LOG2E = 1.0 / math.log(2.0)  # nats -> bits, exactly (not 1.44)


def class_null_logp(y_train: torch.Tensor, y_test: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, dict]:
    """log2 p_null(y) per test sample, p_null = training-set class frequencies (the best input-free decoder).

    A class present in the test split but absent from training would have p = 0; then every class
    gets a pseudo-count of 1/2 (recorded in the returned attrs) rather than an infinite entropy.
    """
    counts = torch.bincount(y_train.reshape(-1).cpu(), minlength=n_classes).double()
    attrs = {"null_model": "training-set class frequencies", "null_smoothing": 0.0}
    test_classes = torch.unique(y_test.reshape(-1).cpu())
    if (counts[test_classes] == 0).any():
        counts = counts + 0.5
        attrs["null_smoothing"] = 0.5
    p = counts / counts.sum()
    return torch.log2(p)[y_test.cpu()], attrs


def gaussian_null_logp(y_train: torch.Tensor, y_test: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """log2 density of each test target under the Gaussian fitted (max. likelihood) on training."""
    yt = y_train.double().reshape(-1)
    mu, var = yt.mean(), yt.var(unbiased=False).clamp_min(1e-12)
    y = y_test.double().cpu()
    logp = -0.5 * (torch.log(2 * math.pi * var) + (y - mu) ** 2 / var)
    return logp * LOG2E, {"null_model": "Gaussian fitted on the training split",
                          "null_mean": float(mu), "null_var": float(var)}


def null_logp(data, split: str = "test") -> tuple[torch.Tensor, dict]:
    """Per-sample log2 p_null(y) on ``split`` for a SourceData (classes or real target)."""
    y_eval = getattr(data, split).y
    if data.target == "classes":
        if y_eval.ndim == 2:  # several heads: one null per head
            outs = [class_null_logp(data.train.y[:, h], y_eval[:, h], data.n_classes) for h in range(y_eval.shape[1])]
            return torch.stack([o[0] for o in outs], dim=-1), outs[0][1]
        return class_null_logp(data.train.y, y_eval, data.n_classes)
    return gaussian_null_logp(data.train.y, y_eval)


def entropy_bits(labels: np.ndarray | torch.Tensor) -> float:
    """Empirical (plug-in) entropy of integer labels, in bits."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return 0.0
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def bootstrap_ci(per_sample: np.ndarray, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Percentile bootstrap interval of the mean over the last axis (the held-out samples).

    ``per_sample``: (..., N) per-sample contributions whose mean is the estimate, e.g.
    log2 f(y|x) − log2 p_null(y) for usable information. No refitting: the decoders stay fixed and
    the test samples are resampled, so the interval is the test-set sampling uncertainty of the
    value (training-seed spread is reported separately, as the sd over seeds). Returns (..., 2):
    (low, high). The same resampled index sets serve every leading cell (one seeded draw).
    """
    x = np.asarray(per_sample, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1] + (2,), np.nan)
    rng = np.random.default_rng(seed)
    flat = x.reshape(-1, n)
    means = np.empty((flat.shape[0], n_boot))
    chunk = int(np.clip(4_000_000 // (flat.shape[0] * n), 1, 100))  # resamples at a time: ≤ 32 MB gathered
    for lo in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - lo), n))
        means[:, lo:lo + idx.shape[0]] = flat[:, idx].mean(axis=-1)
    alpha = (1.0 - level) / 2.0
    out = np.quantile(means, [alpha, 1.0 - alpha], axis=-1).T
    return out.reshape(x.shape[:-1] + (2,))
