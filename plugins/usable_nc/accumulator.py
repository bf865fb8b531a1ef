"""Streaming neural-collapse state for one layer: update / finalize / compute / merge / state_dict.

Notation: C classes (those with samples), D features, A the C×D matrix of centred class means
(rows μ_c − μ̄), Σ_B = AᵀA/C, Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ.

    NC1 = tr(Σ_W Σ_B⁺)/C = (1/N) Σ_i ‖Pᵀ(h_i − μ_{y_i})‖²,   P = V_r S_r⁻¹  (A = U S Vᵀ)

Two passes (default): pass 1 keeps counts and class sums (float64), ``finalize_means`` takes the
SVD of A (O(C²D)) and keeps the r singular values above ``rank_tol``·σ_max, pass 2 keeps
per-class sums of ‖Pᵀ(h − μ_c)‖² and ‖h − μ_c‖² plus nearest-class-centre (NCC) counts. The
state is O(C·D) and never D×D. Per-batch arithmetic runs in the input dtype (float32 usually),
split into row chunks so the scratch memory is bounded whatever the batch size; every sum that
outlives a batch is float64, and the float64 class means are subtracted as two float32 parts
(``_split``), so a large common offset does not round them (the pitfall that cost +7%).

One pass (``method="gram"``, automatic when D <= ``gram_max_dim``): the pooled within-class
scatter (D×D, float64) is accumulated batch by batch, each batch centred at its own class means
and combined with Chan's pairwise update. That is the shifted-Gram idea with the shift taken per
class and per batch, so no large common offset cancels (the pitfall that cost −32% in float32).
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from usable import DataError

from . import DEFAULT_GRAM_MAX_DIM, DEFAULT_RANK_TOL  # declared once, with the metric's parameters

WEIGHTINGS = ("sample", "balanced")
METHODS = ("auto", "two_pass", "gram")
CHUNK_ELEMENTS = 1 << 22     # rows per chunk such that chunk×D <= 4M elements (32 MB in float64)


class NCStateError(DataError):
    """Misuse of the accumulator or degenerate data (message says what and how to fix it)."""


def _split(t64: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A float64 tensor as hi + lo in ``dtype``: hi its rounding, lo the rounding of what hi lost.

    Why: pass 2 once subtracted class means rounded to the features' float32. At a common offset
    of 1e4 the float32 spacing (~1e-3) is the size of nearly collapsed within-class noise, and the
    rounding error of a mean (up to 5e-4 per coordinate, the same for every sample of its class)
    inflated every residual: NC1, tr Σ_W and CDNV +7% at D = 512, 1024 and 4096 (tests/
    test_nc_offset.py). Subtracting hi, then lo, leaves a residual with float32's precision
    relative to the residual itself (NC1 within 1e-9 of float64). Centring in float64 was as
    exact but made pass 2 2-3.5x slower; this costs one gather per chunk, which the fused product
    of ``_pass2_tables`` more than pays back (pass 2: 7-12% less CPU time than before, D = 512-16384).
    """
    hi = t64.to(dtype)
    return hi, None if dtype == torch.float64 else (t64 - hi.double()).to(dtype)


def _centre(h: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """h − (hi + lo)[rows], hi and lo from ``_split``: each sample minus its own class's mean."""
    z = h - hi[rows]
    if lo is not None:
        z.sub_(lo[rows])
    return z


def _row_chunks(n: int, d: int) -> Iterable[tuple[int, int]]:
    step = max(1, CHUNK_ELEMENTS // max(1, d))
    for s in range(0, n, step):
        yield s, min(n, s + step)


class NCAccumulator:
    """Neural-collapse state of one layer for ``n_classes`` classes. See the module docstring."""

    def __init__(self, n_classes: int, *, rank_tol: float = DEFAULT_RANK_TOL, weighting: str = "sample",
                 method: str = "auto", gram_max_dim: int = DEFAULT_GRAM_MAX_DIM, name: str = ""):
        if int(n_classes) < 1:
            raise NCStateError(f"n_classes must be >= 1, got {n_classes}")
        if weighting not in WEIGHTINGS:
            raise NCStateError(f"weighting {weighting!r}: choose 'sample' (global mean over samples) or "
                               "'balanced' (mean of the class means)")
        if method not in METHODS:
            raise NCStateError(f"method {method!r}: choose one of {', '.join(METHODS)}")
        if not (0.0 <= float(rank_tol) < 1.0):
            raise NCStateError(f"rank_tol {rank_tol}: a relative tolerance in [0, 1), e.g. 1e-6")
        self.n_classes, self.rank_tol = int(n_classes), float(rank_tol)
        self.weighting, self.method, self.gram_max_dim = weighting, method, int(gram_max_dim)
        self.name = name
        self.reset()

    # ------------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything: back to an empty pass 1 (classifier weights are cleared too)."""
        C = self.n_classes
        self.dim: int | None = None
        self.device = torch.device("cpu")
        self.phase = "pass1"
        self.counts = torch.zeros(C, dtype=torch.int64)
        self.sums: torch.Tensor | None = None            # (C, D) float64
        self.scatter: torch.Tensor | None = None         # gram: (D, D) pooled within-class scatter
        self.class_scatter = torch.zeros(C, dtype=torch.float64)  # gram: per-class tr(scatter)
        self.fingerprint: str | None = None
        self._proj: torch.Tensor | None = None            # (D, r) float64, P = V_r S_r⁻¹
        self._sing: torch.Tensor | None = None            # all singular values of A
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self._clear_pass2()

    def _clear_pass2(self) -> None:
        C = self.n_classes
        self.proj_sq = torch.zeros(C, dtype=torch.float64)      # Σ ‖Pᵀ(h − μ_c)‖² per class
        self.within_sq = torch.zeros(C, dtype=torch.float64)    # Σ ‖h − μ_c‖² per class
        self.count2 = torch.zeros(C, dtype=torch.int64)         # samples seen in pass 2
        self.ncc_correct = torch.zeros(C, dtype=torch.int64)    # NCC == label
        self.logit_count = torch.zeros(C, dtype=torch.int64)    # samples that came with logits
        self.disagree = torch.zeros(C, dtype=torch.int64)       # NCC != classifier argmax, by label
        self.confusion = torch.zeros(C, C, dtype=torch.int64)   # [NCC class, classifier class]

    @property
    def uses_gram(self) -> bool:
        if self.method == "gram":
            return True
        return self.method == "auto" and self.dim is not None and self.dim <= self.gram_max_dim

    @property
    def method_used(self) -> str:
        return "gram" if self.uses_gram else "two_pass"

    def _pass1_tensors(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts, "sums": self.sums}

    def _pass2_tensors(self) -> dict[str, torch.Tensor]:
        return {"proj_sq": self.proj_sq, "within_sq": self.within_sq, "count2": self.count2,
                "ncc_correct": self.ncc_correct, "logit_count": self.logit_count,
                "disagree": self.disagree, "confusion": self.confusion}

    # ------------------------------------------------------------------------------ input
    def _prepare(self, h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.as_tensor(h)
        y = torch.as_tensor(y)
        if h.ndim == 0:
            raise NCStateError("features must have a batch dimension: (B, ...)")
        h = h.reshape(h.shape[0], -1)
        if h.dtype in (torch.float16, torch.bfloat16) or not h.is_floating_point():
            h = h.float()  # half precision sums are far too coarse (bf16 gave +248% NC1 error)
        y = y.reshape(-1)
        if y.shape[0] != h.shape[0]:
            raise NCStateError(f"{h.shape[0]} feature rows but {y.shape[0]} labels")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise NCStateError(f"labels must be integer class indices, got {y.dtype}")
        y = y.long()
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise NCStateError(f"labels outside 0..{self.n_classes - 1} (n_classes={self.n_classes})")
        if self.dim is None:
            self.dim = int(h.shape[1])
            self.device = h.device
            self._to(self.device)
            self.sums = torch.zeros(self.n_classes, self.dim, dtype=torch.float64, device=self.device)
            if self.uses_gram:
                self.scatter = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        elif h.shape[1] != self.dim:
            raise NCStateError(f"layer {self.name!r}: features have {h.shape[1]} dims, earlier batches had {self.dim}")
        return h.to(self.device), y.to(self.device)

    def _to(self, device: torch.device) -> None:
        for k in ("counts", "sums", "scatter", "class_scatter", "_proj", "_sing", "weight", "bias",
                  *self._pass2_tensors()):
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, v.to(device))

    def _bad(self, what: str) -> NCStateError:
        return NCStateError(f"layer {self.name!r}: {what} contain NaN or inf; the features are not finite "
                            "(diverged training, or an overflow in the model). Fix the model or the inputs; "
                            "this batch was not added.")

    # ------------------------------------------------------------------------------ pass 1
    @torch.no_grad()
    def update_pass1(self, h: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch of features h (B, ...) with labels y (B,) to the counts and class sums."""
        if self.phase != "pass1":
            raise NCStateError("pass 1 is over (finalize_means was called); call reset() to start again, "
                               "or update_pass2 for the second pass")
        h, y = self._prepare(h, y)
        C, D = self.n_classes, self.dim
        inc = torch.zeros(C, D, dtype=torch.float64, device=self.device)
        for s, e in _row_chunks(h.shape[0], D):
            inc.index_add_(0, y[s:e], h[s:e].double())
        if not bool(torch.isfinite(inc).all()):
            raise self._bad("features")
        nb = torch.bincount(y, minlength=C)
        if self.uses_gram:
            self._gram_update(h, y, inc, nb)
        self.sums += inc
        self.counts += nb

    def _gram_update(self, h, y, sums_b, nb) -> None:
        """Chan's update of the pooled within-class scatter with one batch (centred at its own means)."""
        nbf = nb.double()
        mb = sums_b / nbf.clamp_min(1)[:, None]
        wb = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        tr_b = torch.zeros(self.n_classes, dtype=torch.float64, device=self.device)
        for s, e in _row_chunks(h.shape[0], self.dim):
            z = h[s:e].double() - mb[y[s:e]]
            wb += z.T @ z
            tr_b.index_add_(0, y[s:e], (z * z).sum(1))
        self._chan_combine(wb, tr_b, self.counts, self.sums, nb, sums_b)

    def _chan_combine(self, wb, tr_b, na, sums_a, nb, sums_b) -> None:
        na_f, nb_f = na.double(), nb.double()
        both = (na > 0) & (nb > 0)
        w = torch.where(both, na_f * nb_f / (na_f + nb_f).clamp_min(1), torch.zeros_like(na_f))
        delta = sums_b / nb_f.clamp_min(1)[:, None] - sums_a / na_f.clamp_min(1)[:, None]
        delta = delta * both[:, None]
        self.scatter += wb + (delta * w[:, None]).T @ delta
        self.class_scatter += tr_b + w * (delta * delta).sum(1)

    # ------------------------------------------------------------------------------ between passes
    @torch.no_grad()
    def finalize_means(self) -> "NCAccumulator":
        """Class means, SVD of the centred means A, rank by ``rank_tol``, projector P. Starts pass 2."""
        if self.phase != "pass1":
            raise NCStateError("finalize_means was already called; reset() to start a new pass 1")
        self._finalize()
        self.phase = "pass2"
        return self

    def _present(self) -> torch.Tensor:
        return torch.nonzero(self.counts > 0).reshape(-1)

    def _finalize(self) -> None:
        if self.dim is None or int(self.counts.sum()) == 0:
            raise NCStateError(f"layer {self.name!r}: pass 1 saw no samples; feed batches with update_pass1 first")
        present = self._present()
        if present.numel() < 2:
            raise NCStateError(
                f"layer {self.name!r}: only class {present.tolist()} has samples; neural collapse compares "
                "classes and needs at least two classes with samples (check the labels / the split)")
        A = self.centred_means()
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        smax = float(S[0]) if S.numel() else 0.0
        r = int((S > self.rank_tol * smax).sum()) if smax > 0 else 0
        self._sing = S
        self._proj = (Vh[:r].T / S[:r]) if r else torch.zeros(self.dim, 0, dtype=torch.float64, device=self.device)
        self.fingerprint = self._make_fingerprint()

    def _make_fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.n_classes}|{self.dim}|{self.rank_tol!r}|{self.weighting}".encode())
        h.update(self.counts.cpu().numpy().tobytes())
        h.update(self.sums.cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def class_means(self) -> torch.Tensor:
        """(C_present, D) float64 class means of the classes with samples."""
        p = self._present()
        return self.sums[p] / self.counts[p].double()[:, None]

    def global_mean(self) -> torch.Tensor:
        if self.weighting == "sample":
            return self.sums.sum(0) / self.counts.sum().double()
        return self.class_means().mean(0)

    def centred_means(self) -> torch.Tensor:
        """A: (C_present, D) rows μ_c − μ̄ (μ̄ weighted as ``weighting`` says)."""
        return self.class_means() - self.global_mean()

    @property
    def rank(self) -> int:
        return 0 if self._proj is None else int(self._proj.shape[1])

    # ------------------------------------------------------------------------------ pass 2
    @torch.no_grad()
    def update_pass2(self, h: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        """Second pass over the same samples: projected and plain within-class sums, NCC, NC4."""
        if self.phase != "pass2":
            raise NCStateError("call finalize_means() after pass 1 before update_pass2")
        h, y = self._prepare(h, y)
        C, D = self.n_classes, self.dim
        present = self._present()
        if not bool((self.counts[y] > 0).all()):
            missing = sorted(set(y.tolist()) - set(present.tolist()))
            raise NCStateError(f"layer {self.name!r}: pass 2 saw class(es) {missing} that had no samples in "
                               "pass 1; both passes must run over the same data")
        if logits is not None:
            logits = torch.as_tensor(logits).to(self.device)
            if logits.ndim != 2 or logits.shape != (h.shape[0], C):
                raise NCStateError(f"logits have shape {tuple(logits.shape)}, expected ({h.shape[0]}, {C}) "
                                   "(batch, n_classes) for NC4")
        means_hi, means_lo, PA, cross, a_sq = self._pass2_tables(h.dtype)
        r = self.rank
        for s, e in _row_chunks(h.shape[0], D):
            hc, yc = h[s:e], y[s:e]
            z = _centre(hc, means_hi, means_lo, yc)
            within = (z * z).sum(1).double()
            zpa = z @ PA
            proj = zpa[:, :r]
            proj = (proj * proj).sum(1).double()
            if not (bool(torch.isfinite(within).all()) and bool(torch.isfinite(proj).all())):
                raise self._bad("pass-2 features")
            self.within_sq.index_add_(0, yc, within)
            self.proj_sq.index_add_(0, yc, proj)
            self.count2 += torch.bincount(yc, minlength=C)
            # nearest class centre: argmin ‖(h − μ̄) − A_c‖² = ‖h − μ̄‖² + ‖A_c‖² − 2(h − μ̄)·A_c
            d2 = a_sq[None, :] - 2.0 * (zpa[:, r:] + cross[yc])
            ncc = present[torch.argmin(d2, dim=1)]
            self.ncc_correct += torch.bincount(yc[ncc == yc], minlength=C)
            if logits is not None:
                pred = torch.argmax(logits[s:e], dim=1)
                self.logit_count += torch.bincount(yc, minlength=C)
                self.disagree += torch.bincount(yc[ncc != pred], minlength=C)
                self.confusion += torch.bincount(ncc * C + pred, minlength=C * C).reshape(C, C)

    def _pass2_tables(self, dtype: torch.dtype):
        """What every pass-2 chunk needs, in the features' dtype: the class means as hi + lo
        (``_split``), [P | Aᵀ], the C × C_present table AAᵀ (row per label) and ‖A_c‖².

        One product z·[P | Aᵀ] per chunk gives both Pᵀz (NC1) and the NCC scores: h − μ̄ = z + A_y,
        so (h − μ̄)·A_c = z·A_c + (AAᵀ)_{y,c} comes from the small residual z, never from the offset
        features, and pass 2 reads each chunk once less than with a second product."""
        C, present = self.n_classes, self._present()
        means = torch.zeros(C, self.dim, dtype=torch.float64, device=self.device)
        means[present] = self.class_means()
        A = self.centred_means()
        cross = torch.zeros(C, present.numel(), dtype=torch.float64, device=self.device)
        cross[present] = A @ A.T
        PA = torch.cat([self._proj, A.T], dim=1)
        return (*_split(means, dtype), PA.to(dtype), cross.to(dtype), (A * A).sum(1).to(dtype))

    def set_classifier(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Linear classifier on this layer's features (rows = classes) for NC3."""
        w = torch.as_tensor(weight).detach().double()
        if w.ndim != 2 or w.shape[0] != self.n_classes:
            raise NCStateError(f"classifier weight has shape {tuple(w.shape)}; expected ({self.n_classes}, D), "
                               "one row per class")
        if self.dim is not None and w.shape[1] != self.dim:
            raise NCStateError(f"classifier weight has {w.shape[1]} inputs but layer {self.name!r} has {self.dim} features")
        self.weight = w.to(self.device)
        self.bias = None if bias is None else torch.as_tensor(bias).detach().double().to(self.device)

    # ------------------------------------------------------------------------------ results
    @torch.no_grad()
    def compute(self) -> dict[str, Any]:
        """All metrics as floats (scalars) and numpy arrays of length n_classes (NaN for empty classes)."""
        if self.phase == "pass1":
            if not self.uses_gram:
                raise NCStateError("compute() needs finalize_means() and a second pass (two-pass method)")
            if self._proj is None or self.fingerprint != self._make_fingerprint():
                self._finalize()  # one-pass Gram: everything but NC4 is known after pass 1
        C = self.n_classes
        present = self._present()
        Cp = int(present.numel())
        counts = self.counts.double()
        N = float(counts.sum())
        pass2 = int(self.count2.sum()) > 0
        if pass2 and not torch.equal(self.count2[present], self.counts[present]):
            raise NCStateError(
                f"layer {self.name!r}: pass 2 saw {self.count2.tolist()} samples per class but pass 1 saw "
                f"{self.counts.tolist()}; both passes must run over the same data (merge every shard)")
        if not pass2 and not self.uses_gram:
            raise NCStateError(f"layer {self.name!r}: pass 2 has not run; call update_pass2 on the same data")
        A = self.centred_means()
        S = self._sing
        r = self.rank
        nan = float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            out: dict[str, Any] = {
                "method": self.method_used, "weighting": self.weighting, "rank_tol": self.rank_tol,
                "rank": r, "dim": int(self.dim), "n_samples": int(N), "n_classes_present": Cp,
                "sigma_max": float(S[0]) if S.numel() else 0.0,
                "sigma_min_kept": float(S[r - 1]) if r else nan,
                "sigma_max_dropped": float(S[r]) if r < S.numel() else 0.0,
                "fingerprint": self.fingerprint,
            }
            if self.uses_gram:
                P = self._proj
                nc1 = float(((self.scatter @ P) * P).sum() / N) if r else nan
                tr_w = float(torch.trace(self.scatter) / N)
                var_c = self.class_scatter / counts
            else:
                nc1 = float(self.proj_sq.sum() / N) if r else nan
                tr_w = float(self.within_sq.sum() / N)
                var_c = self.within_sq / counts
            tr_b = float((A * A).sum() / Cp)
            out.update(nc1=nc1, trace_within=tr_w, trace_between=tr_b,
                       trace_quotient=tr_w / tr_b if tr_b > 0 else nan)
            # CDNV (Galanti et al.): (Var_c + Var_c') / (2‖μ_c − μ_c'‖²), exponent 2 on the distance
            vp = var_c[present]
            dist2 = ((A[:, None, :] - A[None, :, :]) ** 2).sum(-1)
            iu = torch.triu_indices(Cp, Cp, 1)
            cd = ((vp[:, None] + vp[None, :]) / (2 * dist2))[iu[0], iu[1]].cpu().numpy()
            out["cdnv_mean"] = float(np.mean(cd))
            out["cdnv_max"] = float(np.max(cd))
            # NC2: equinorm, equiangularity, distance of the normalized Gram of A to the simplex ETF
            norms = A.norm(dim=1)
            out["nc2_equinorm_cv"] = float(norms.std(unbiased=False) / norms.mean())
            cos = ((A @ A.T) / (norms[:, None] * norms[None, :]))[iu[0], iu[1]].cpu().numpy()
            out["nc2_cos_std"] = float(np.std(cos))
            out["nc2_cos_shift"] = float(np.mean(np.abs(cos + 1.0 / (Cp - 1))))
            G = A @ A.T
            etf = (torch.eye(Cp, dtype=torch.float64, device=A.device) - 1.0 / Cp) / math.sqrt(Cp - 1)
            out["nc2_etf_error"] = float((G / G.norm() - etf).norm())
            # NC3: self-duality of the classifier rows and the centred means (present classes)
            if self.weight is not None:
                W = self.weight[present]
                out["nc3"] = float((W / W.norm() - A / A.norm()).norm())
            else:
                out["nc3"] = nan
            nl = float(self.logit_count.sum())
            out["nc4"] = float(self.disagree.sum()) / nl if nl else nan
            out["ncc_error"] = 1.0 - float(self.ncc_correct.sum()) / N if pass2 else nan

            pidx = present.cpu().numpy()

            def per_class(v_present):  # values of the present classes -> length C, NaN if empty
                a = np.full(C, nan)
                a[pidx] = v_present.double().cpu().numpy()
                return a
            out["class_count"] = self.counts.cpu().numpy().copy()
            out["class_within_variance"] = per_class(var_c[present])
            out["class_nc1"] = per_class((self.proj_sq / counts)[present]) if (pass2 and r) else np.full(C, nan)
            out["class_centred_mean_norm"] = per_class(norms)
            out["class_nc4"] = (per_class((self.disagree.double() / self.logit_count.double())[present])
                                if nl else np.full(C, nan))
            out["confusion_ncc_classifier"] = self.confusion.cpu().numpy().copy()
        return out

    # ------------------------------------------------------------------------------ merging
    def _check_compatible(self, other: "NCAccumulator") -> None:
        if not isinstance(other, NCAccumulator):
            raise TypeError(f"can only merge NCAccumulator, not {type(other).__name__}")
        for k in ("n_classes", "rank_tol", "weighting", "method", "gram_max_dim"):
            if getattr(self, k) != getattr(other, k):
                raise NCStateError(f"cannot merge: {k} differs ({getattr(self, k)!r} vs {getattr(other, k)!r})")
        if self.dim is not None and other.dim is not None and self.dim != other.dim:
            raise NCStateError(f"cannot merge: feature dims differ ({self.dim} vs {other.dim})")
        if self.phase != other.phase:
            raise NCStateError(f"cannot merge a {self.phase} state with a {other.phase} state")

    @torch.no_grad()
    def merge(self, other: "NCAccumulator") -> "NCAccumulator":
        """Add ``other`` into this state (same phase). Exact: sums add, so shards = one pass."""
        self._check_compatible(other)
        if other.dim is None:
            return self
        if self.phase == "pass1":
            if self.dim is None:
                self.dim, self.device = other.dim, other.device
                self.sums = torch.zeros(self.n_classes, self.dim, dtype=torch.float64, device=self.device)
                if self.uses_gram:
                    self.scatter = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
            o = lambda t: t.to(self.device)  # noqa: E731
            if self.uses_gram:
                self._chan_combine(o(other.scatter), o(other.class_scatter), self.counts, self.sums,
                                   o(other.counts), o(other.sums))
            self.counts += o(other.counts)
            self.sums += o(other.sums)
            return self
        if self.fingerprint != other.fingerprint:
            raise NCStateError(
                f"cannot merge pass-2 states of layer {self.name!r} computed with different class means "
                f"(fingerprints {self.fingerprint} vs {other.fingerprint}); merge the pass-1 states first, "
                "finalize once, and give every shard a copy (pass2_copy) for pass 2")
        for k, v in self._pass2_tensors().items():
            v += getattr(other, k).to(self.device)
        return self

    __iadd__ = merge

    def pass2_copy(self) -> "NCAccumulator":
        """A finalised copy with empty pass-2 sums: what each shard runs pass 2 with."""
        if self.phase != "pass2":
            raise NCStateError("pass2_copy needs a finalised state (call finalize_means first)")
        new = NCAccumulator(self.n_classes, rank_tol=self.rank_tol, weighting=self.weighting,
                            method=self.method, gram_max_dim=self.gram_max_dim, name=self.name)
        new.load_state_dict(self.state_dict())
        new._clear_pass2()
        new._to(new.device)
        return new

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors (CPU) and settings; ``load_state_dict`` restores it exactly."""
        t = lambda v: None if v is None else v.detach().cpu().clone()  # noqa: E731
        sd = {"n_classes": self.n_classes, "rank_tol": self.rank_tol, "weighting": self.weighting,
              "method": self.method, "gram_max_dim": self.gram_max_dim, "name": self.name,
              "phase": self.phase, "dim": self.dim, "fingerprint": self.fingerprint,
              "counts": t(self.counts), "sums": t(self.sums), "scatter": t(self.scatter),
              "class_scatter": t(self.class_scatter), "proj": t(self._proj), "sing": t(self._sing),
              "weight": t(self.weight), "bias": t(self.bias)}
        sd.update({k: t(v) for k, v in self._pass2_tensors().items()})
        return sd

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        for k in ("n_classes", "rank_tol", "weighting", "method", "gram_max_dim"):
            if sd[k] != getattr(self, k):
                raise NCStateError(f"state has {k}={sd[k]!r} but this accumulator has {getattr(self, k)!r}")
        self.name = sd.get("name", self.name)
        self.phase, self.dim, self.fingerprint = sd["phase"], sd["dim"], sd["fingerprint"]
        self.counts, self.sums, self.scatter = sd["counts"].clone(), _c(sd["sums"]), _c(sd["scatter"])
        self.class_scatter = sd["class_scatter"].clone()
        self._proj, self._sing = _c(sd["proj"]), _c(sd["sing"])
        self.weight, self.bias = _c(sd["weight"]), _c(sd["bias"])
        for k in self._pass2_tensors():
            setattr(self, k, sd[k].clone())
        self.device = torch.device("cpu")

    def __repr__(self) -> str:
        return (f"NCAccumulator(name={self.name!r}, n_classes={self.n_classes}, dim={self.dim}, "
                f"phase={self.phase!r}, method={self.method_used!r}, n={int(self.counts.sum())})")


def _c(v):
    return None if v is None else v.clone()


# ---------------------------------------------------------------------------------- distributed
@torch.no_grad()
def all_reduce_states(accs: Iterable[NCAccumulator] | Mapping[str, NCAccumulator], group=None) -> None:
    """Sum every accumulator's additive state over all processes, in place, in one bucket.

    All ranks must hold the same layers in the same phase. In pass 2 every rank must have
    finalised from the same (already reduced) pass-1 state, so the fingerprints agree. Gram-mode
    pass-1 states need a second reduction: each rank re-centres its scatter at the global class
    means (known after the first), then the scatters are summed.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("all_reduce_states needs an initialised torch.distributed process group "
                           "(torch.distributed.init_process_group); for in-process shards use acc.merge(other)")
    accs = list(accs.values()) if isinstance(accs, Mapping) else list(accs)
    for a in accs:
        if a.dim is None:
            raise NCStateError(f"layer {a.name!r} has seen no data on this rank; every rank needs at least one batch")
    parts = []
    local = [(a.counts.clone(), a.sums.clone()) for a in accs]
    for a in accs:
        tensors = a._pass1_tensors() if a.phase == "pass1" else a._pass2_tensors()
        parts.extend(tensors.values())
    flat = torch.cat([p.reshape(-1).double() for p in parts])  # counts < 2^53 stay exact in float64
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    off = 0
    for p in parts:
        n = p.numel()
        p.copy_(flat[off:off + n].reshape(p.shape).round() if not p.is_floating_point() else flat[off:off + n].reshape(p.shape))
        off += n
    gram = [(a, loc) for a, loc in zip(accs, local) if a.phase == "pass1" and a.uses_gram]
    if gram:
        pieces = []
        for a, (n_loc, s_loc) in gram:
            # Σ_r n_rc (μ_rc − μ_c)(μ_rc − μ_c)ᵀ turns the ranks' scatters into the global one
            w = n_loc.double()
            d = (s_loc / w.clamp_min(1)[:, None] - a.sums / a.counts.double().clamp_min(1)[:, None]) * (w > 0)[:, None]
            a.scatter += (d * w[:, None]).T @ d
            a.class_scatter += w * (d * d).sum(1)
            pieces += [a.scatter, a.class_scatter]
        flat = torch.cat([p.reshape(-1) for p in pieces])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        off = 0
        for p in pieces:
            p.copy_(flat[off:off + p.numel()].reshape(p.shape))
            off += p.numel()
