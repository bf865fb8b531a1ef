"""The Kraskov-Stögbauer-Grassberger k-nearest-neighbour estimator of I(X;Y), in bits.

KSG (Kraskov, Stögbauer & Grassberger 2004, Phys. Rev. E 69:066138, estimator 1): with ε_i the
distance from (x_i, y_i) to its k-th neighbour in the joint space (max-norm), n_x(i) and n_y(i) the
numbers of other points strictly closer than ε_i in X and in Y,

    I = ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩.

Discrete or one-hot variables repeat points, so ε_i can be 0. Then the estimator of Gao, Kannan,
Oh & Viswanath (2017, "Estimating mutual information for discrete-continuous mixtures", NeurIPS)
is used instead: k̃_i = the number of other points at distance 0 where ε_i = 0 (else k), counts
n_x, n_y of points within ε_i (inclusive), and ⟨ψ(k̃_i) + log N − log(n_x + 1) − log(n_y + 1)⟩.
For continuous data without ties it differs from KSG only by O(1/k) terms; ``variant`` says which
one ran. Neighbour search is scikit-learn's (``NearestNeighbors`` for the joint k-th neighbour,
``KDTree.query_radius`` for the marginal counts, max-norm throughout): in 25 + 25 dimensions it
is several times faster than scipy's ``cKDTree`` ball queries (measured 3.5 s against 33 s for one
marginal's counts on 10,000 points).
"""
from __future__ import annotations

import numpy as np
from scipy.special import digamma
from sklearn.neighbors import KDTree, NearestNeighbors

from usable import LOG2E, DataError


def ksg_estimate(x: np.ndarray, y: np.ndarray, k: int = 3, workers: int = 1) -> tuple[float, np.ndarray, str]:
    """(I in bits, per-sample terms in bits (mean = I), variant) for samples x (N, dx), y (N, dy)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    N = len(x)
    if len(y) != N:
        raise DataError(f"ksg: X has {N} samples but Y has {len(y)}")
    if not 1 <= k < N:
        raise DataError(f"ksg: k={k} neighbours needs 1 <= k < N = {N} samples")
    joint = np.hstack([x, y])
    # k + 1: the query point itself is among the results (at distance 0)
    dist, _ = NearestNeighbors(n_neighbors=k + 1, metric="chebyshev", n_jobs=workers).fit(joint).kneighbors(joint)
    eps = dist[:, -1]
    tx, ty = KDTree(x, metric="chebyshev"), KDTree(y, metric="chebyshev")

    def count(tree, v, r):  # points within distance r (inclusive), the point itself excluded
        return tree.query_radius(v, r, count_only=True) - 1

    if (eps > 0).all():
        r = np.nextafter(eps, 0)  # strictly closer than ε_i
        nx, ny = count(tx, x, r), count(ty, y, r)
        terms = digamma(k) + digamma(N) - digamma(nx + 1) - digamma(ny + 1)
        variant = "kraskov1"
    else:
        tied = count(KDTree(joint, metric="chebyshev"), joint, np.zeros(N))
        kk = np.where(eps > 0, k, tied)
        nx, ny = count(tx, x, eps), count(ty, y, eps)
        terms = digamma(kk) + np.log(N) - np.log(nx + 1) - np.log(ny + 1)
        variant = "gao_mixed"
    terms = terms * LOG2E
    return float(terms.mean()), terms, variant
