"""NCAccumulator against float64 references that hold every feature in memory.

The reference forms Σ_W and Σ_B as D×D matrices and inverts Σ_B at the explicit rank (the rank
our tolerance keeps, checked to be C−1 for generic data), which is what NC1 means; the streaming
state never forms a D×D matrix in the two-pass method.
"""
import numpy as np
import pytest
import torch

from usable_nc import NCAccumulator, NCStateError

RNG_SEED = 1234


def reference(H, y, weighting="sample", rank=None, tol=1e-6):
    """All-in-memory float64 NC quantities (Papyan et al. definitions, explicit-rank pseudo-inverse)."""
    H = np.asarray(H, dtype=np.float64)
    classes = np.unique(y)
    mu = np.stack([H[y == c].mean(0) for c in classes])
    gm = H.mean(0) if weighting == "sample" else mu.mean(0)
    A = mu - gm
    C = len(classes)
    SB = A.T @ A / C
    Z = H - mu[np.searchsorted(classes, y)]
    SW = Z.T @ Z / len(y)
    s = np.linalg.svd(A, compute_uv=False)
    r = int((s > tol * s[0]).sum()) if rank is None else rank
    w, Q = np.linalg.eigh(SB)
    w, Q = w[::-1], Q[:, ::-1]
    SBp = (Q[:, :r] / w[:r]) @ Q[:, :r].T
    var = np.array([((H[y == c] - mu[k]) ** 2).sum(1).mean() for k, c in enumerate(classes)])
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]
    cdnv = np.array([(var[i] + var[j]) / (2 * ((mu[i] - mu[j]) ** 2).sum()) for i, j in pairs])
    norms = np.linalg.norm(A, axis=1)
    cos = np.array([A[i] @ A[j] / (norms[i] * norms[j]) for i, j in pairs])
    G = A @ A.T
    etf = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
    return {"nc1": np.trace(SW @ SBp) / C, "rank": r, "SB": SB, "SBp": SBp, "s": s,
            "trace_quotient": np.trace(SW) / np.trace(SB), "cdnv_mean": cdnv.mean(), "cdnv_max": cdnv.max(),
            "nc2_equinorm_cv": norms.std() / norms.mean(), "nc2_cos_std": cos.std(),
            "nc2_cos_shift": np.abs(cos + 1 / (C - 1)).mean(),
            "nc2_etf_error": np.linalg.norm(G / np.linalg.norm(G) - etf), "A": A, "mu": mu, "var": var}


def make_data(counts, D, offset=1.0, sd=1.0, dtype=np.float64, seed=RNG_SEED, common=5.0):
    rng = np.random.default_rng(seed)
    C = len(counts)
    mus = rng.normal(size=(C, D)) * offset + common  # a common offset: the float32 cancellation trap
    y = np.concatenate([[c] * n for c, n in enumerate(counts)]).astype(np.int64)
    rng.shuffle(y)
    H = (mus[y] + sd * rng.normal(size=(len(y), D))).astype(dtype)
    return H, y


def run(H, y, C, batch=37, logits=None, **kw):
    acc = NCAccumulator(C, **kw)
    Ht, yt = torch.from_numpy(np.ascontiguousarray(H)), torch.from_numpy(y)
    for s in range(0, len(y), batch):
        acc.update_pass1(Ht[s:s + batch], yt[s:s + batch])
    acc.finalize_means()
    for s in range(0, len(y), batch):
        acc.update_pass2(Ht[s:s + batch], yt[s:s + batch],
                         None if logits is None else torch.from_numpy(logits[s:s + batch]))
    return acc


CASES = {
    "balanced": dict(counts=[40] * 10, D=48),
    "imbalanced": dict(counts=[12 * k for k in range(1, 11)], D=48),      # 1x .. 10x
    "collapsed": dict(counts=[30] * 10, D=64, offset=10.0, sd=0.01),     # class offset 10, sd 0.01
}


@pytest.mark.parametrize("method", ["two_pass", "gram"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 1e-5)])
@pytest.mark.parametrize("case", list(CASES))
def test_nc1_matches_float64_reference(case, dtype, rtol, method):
    H, y = make_data(dtype=dtype, **CASES[case])
    ref = reference(H, y)
    C = 10
    # the reference pseudo-inverse is the textbook one at the explicit rank C−1
    assert ref["rank"] == C - 1
    np.testing.assert_allclose(ref["SBp"], np.linalg.pinv(ref["SB"], rcond=1e-10, hermitian=True),
                               rtol=1e-6, atol=1e-9 * np.abs(ref["SBp"]).max())
    out = run(H, y, C, method=method).compute()
    assert out["method"] == method and out["rank"] == C - 1
    assert out["nc1"] == pytest.approx(ref["nc1"], rel=rtol)
    for k in ("trace_quotient", "cdnv_mean", "cdnv_max", "nc2_equinorm_cv", "nc2_cos_std",
              "nc2_cos_shift", "nc2_etf_error"):
        assert out[k] == pytest.approx(ref[k], rel=max(rtol, 1e-9)), k
    assert out["sigma_min_kept"] == pytest.approx(ref["s"][C - 2], rel=1e-9)
    assert out["sigma_max_dropped"] < 1e-9 * out["sigma_max"]
    if case == "collapsed":
        assert out["nc1"] < 1e-5  # nearly collapsed really is small, and still matched to rtol above


def test_per_class_terms_and_balanced_weighting():
    H, y = make_data([12 * k for k in range(1, 11)], 20)
    for weighting in ("sample", "balanced"):
        ref = reference(H, y, weighting=weighting)
        out = run(H, y, 10, weighting=weighting, method="two_pass").compute()
        assert out["weighting"] == weighting
        assert out["nc1"] == pytest.approx(ref["nc1"], rel=1e-9)
        np.testing.assert_allclose(out["class_within_variance"], ref["var"], rtol=1e-12)
        np.testing.assert_allclose(out["class_centred_mean_norm"], np.linalg.norm(ref["A"], axis=1), rtol=1e-12)
        counts = np.bincount(y)
        # nc1 is the count-weighted mean of the per-class terms
        assert (out["class_nc1"] * counts).sum() / counts.sum() == pytest.approx(out["nc1"], rel=1e-12)
    # the weighting changes the answer on imbalanced data (so the attr matters)
    a = run(H, y, 10, weighting="sample").compute()["nc1"]
    b = run(H, y, 10, weighting="balanced").compute()["nc1"]
    assert abs(a / b - 1) > 1e-3


@pytest.mark.parametrize("method,dtype,rtol", [("two_pass", np.float64, 1e-12), ("gram", np.float64, 1e-12),
                                                ("gram", np.float32, 1e-12), ("two_pass", np.float32, 1e-7)])
def test_seven_shards_merge_to_one_pass(method, dtype, rtol):
    # float32 two-pass: per-sample float32 dot products depend on BLAS blocking (batch shape), ~1e-9
    H, y = make_data([25 * k for k in range(1, 11)], 40, dtype=dtype)
    whole = run(H, y, 10, method=method).compute()
    shards = np.array_split(np.arange(len(y)), 7)
    Ht, yt = torch.from_numpy(H), torch.from_numpy(y)
    p1 = []
    for idx in shards:
        a = NCAccumulator(10, method=method)
        for s in range(0, len(idx), 19):
            a.update_pass1(Ht[idx[s:s + 19]], yt[idx[s:s + 19]])
        p1.append(a)
    merged = p1[0]
    for a in p1[1:]:
        merged.merge(a)
    merged.finalize_means()
    p2 = []
    for idx in shards:
        a = merged.pass2_copy()
        a.update_pass2(Ht[idx], yt[idx])
        p2.append(a)
    total = p2[0]
    for a in p2[1:]:
        total += a
    out = total.compute()
    for k in ("nc1", "trace_quotient", "cdnv_mean", "cdnv_max", "nc2_etf_error", "ncc_error"):
        assert out[k] == pytest.approx(whole[k], rel=rtol, abs=1e-15), k
    np.testing.assert_array_equal(out["class_count"], whole["class_count"])


def test_merging_states_with_different_means_raises():
    H, y = make_data([30] * 5, 12)
    a = run(H[:80], y[:80], 5, method="two_pass")
    b = run(H[80:], y[80:], 5, method="two_pass")
    assert a.fingerprint != b.fingerprint
    with pytest.raises(NCStateError, match="different class means"):
        a.merge(b)
    p1 = NCAccumulator(5, method="two_pass")
    p1.update_pass1(torch.from_numpy(H), torch.from_numpy(y))
    with pytest.raises(NCStateError, match="pass1 state with a pass2"):
        p1.merge(a)


def test_state_dict_round_trip_mid_pass_is_exact():
    H, y = make_data([30] * 6, 16)
    Ht, yt = torch.from_numpy(H), torch.from_numpy(y)
    whole = run(H, y, 6, batch=50, method="two_pass").compute()
    a = NCAccumulator(6, method="two_pass")
    a.update_pass1(Ht[:50], yt[:50])
    sd = a.state_dict()
    b = NCAccumulator(6, method="two_pass")
    b.load_state_dict(sd)
    for s in range(50, len(y), 50):
        b.update_pass1(Ht[s:s + 50], yt[s:s + 50])
    b.finalize_means()
    c = NCAccumulator(6, method="two_pass")
    c.load_state_dict(b.state_dict())
    for s in range(0, len(y), 50):
        c.update_pass2(Ht[s:s + 50], yt[s:s + 50])
    assert c.compute()["nc1"] == whole["nc1"]
    with pytest.raises(NCStateError, match="rank_tol"):
        NCAccumulator(6, rank_tol=1e-3).load_state_dict(sd)


def test_nc2_nc3_nc4_on_an_exact_simplex():
    C, D, n = 5, 12, 20
    rng = np.random.default_rng(0)
    etf = np.eye(C) - 1.0 / C                      # centred simplex vertices in R^C
    Q, _ = np.linalg.qr(rng.normal(size=(D, C)))   # isometric embedding into R^D
    M = 3.0 * etf @ Q.T                            # (C, D), rows sum to zero
    y = np.repeat(np.arange(C), n)
    noise = rng.normal(size=(C * n, D)) * 0.05
    for c in range(C):                             # exact zero-mean noise per class
        noise[y == c] -= noise[y == c].mean(0)
    H = M[y] + noise
    logits = H @ M.T  # classifier W = M (self-dual), zero bias; nearest centre = argmax here
    acc = run(H, y, C, logits=logits, method="two_pass")
    acc.set_classifier(torch.from_numpy(M), torch.zeros(C))
    out = acc.compute()
    assert out["nc2_etf_error"] < 1e-12 and out["nc2_cos_shift"] < 1e-12 and out["nc2_equinorm_cv"] < 1e-12
    assert out["nc3"] < 1e-12
    assert out["nc4"] == 0.0 and out["ncc_error"] == 0.0
    # a classifier that always says class 0: NC4 = fraction of samples whose nearest centre is not 0
    bad = np.zeros_like(logits)
    bad[:, 0] = 1.0
    out = run(H, y, C, logits=bad, method="two_pass").compute()
    assert out["nc4"] == pytest.approx((C - 1) / C)
    np.testing.assert_array_equal(out["confusion_ncc_classifier"][:, 0], [n] * C)
    np.testing.assert_allclose(out["class_nc4"], [0, 1, 1, 1, 1])


def test_cdnv_closed_form_two_classes():
    # class 0 at -1, class 1 at +1 on one axis, each with points ±a on that axis: Var_c = a²
    a = 0.3
    H = np.array([[-1 - a, 0], [-1 + a, 0], [1 - a, 0], [1 + a, 0]])
    y = np.array([0, 0, 1, 1])
    out = run(H, y, 2, method="two_pass").compute()
    assert out["cdnv_mean"] == pytest.approx((a * a + a * a) / (2 * 4.0), rel=1e-14)
    # NC1 by hand: Σ_B = diag(1, 0)/... A rows ±(1, 0), Σ_B = e1e1ᵀ; Σ_W = diag(a², 0); tr/C = a²/2
    assert out["nc1"] == pytest.approx(a * a / 2, rel=1e-14)
    assert out["rank"] == 1


# ------------------------------------------------------------------------- degenerate inputs
def test_single_class_is_a_clear_error():
    acc = NCAccumulator(3)
    acc.update_pass1(torch.randn(10, 4), torch.full((10,), 2))
    with pytest.raises(NCStateError, match="only class \\[2\\] has samples.*at least two"):
        acc.finalize_means()


def test_empty_class_is_left_out_and_reported():
    H, y = make_data([30, 30, 0, 30, 30], 10)
    out = run(H, y, 5, method="two_pass").compute()
    ref = reference(H, y)  # over the classes that have samples: C = 4
    assert out["n_classes_present"] == 4 and out["rank"] == 3
    assert out["nc1"] == pytest.approx(ref["nc1"], rel=1e-9)
    assert out["class_count"][2] == 0 and np.isnan(out["class_within_variance"][2])
    assert np.isfinite(np.delete(out["class_within_variance"], 2)).all()


def test_fewer_dims_than_classes_uses_rank_d():
    H, y = make_data([20] * 6, 2)  # D = 2 < C − 1 = 5
    out = run(H, y, 6, method="two_pass").compute()
    ref = reference(H, y)
    assert out["rank"] == 2 == ref["rank"]
    assert out["nc1"] == pytest.approx(ref["nc1"], rel=1e-9)
    assert out["nc1"] == pytest.approx(run(H, y, 6, method="gram").compute()["nc1"], rel=1e-9)


def test_identical_features_give_rank_zero_and_nan():
    H = np.ones((40, 7))
    y = np.arange(40) % 4
    for method in ("two_pass", "gram"):
        out = run(H, y, 4, method=method).compute()
        assert out["rank"] == 0 and out["sigma_max"] == 0.0
        assert np.isnan(out["nc1"]) and np.isnan(out["trace_quotient"])
        assert out["trace_within"] == 0.0


def test_nan_features_are_rejected_and_not_added():
    acc = NCAccumulator(3)
    h = torch.randn(9, 4)
    acc.update_pass1(h, torch.arange(9) % 3)
    bad = h.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(NCStateError, match="NaN or inf"):
        acc.update_pass1(bad, torch.arange(9) % 3)
    assert int(acc.counts.sum()) == 9 and torch.isfinite(acc.sums).all()


def test_misuse_errors_say_what_to_do():
    acc = NCAccumulator(3)
    with pytest.raises(NCStateError, match="finalize_means"):
        acc.update_pass2(torch.randn(3, 2), torch.arange(3))
    with pytest.raises(NCStateError, match="no samples"):
        acc.finalize_means()
    with pytest.raises(NCStateError, match="outside 0..2"):
        acc.update_pass1(torch.randn(3, 2), torch.tensor([0, 1, 3]))
    acc.update_pass1(torch.randn(6, 2), torch.arange(6) % 3)
    acc.finalize_means()
    acc.update_pass2(torch.randn(3, 2), torch.arange(3))
    with pytest.raises(NCStateError, match="same data"):
        acc.compute()
    with pytest.raises(NCStateError, match="weighting"):
        NCAccumulator(3, weighting="uniform")


def test_auto_method_switches_on_dimension():
    a = NCAccumulator(3, gram_max_dim=8)
    a.update_pass1(torch.randn(6, 8), torch.arange(6) % 3)
    b = NCAccumulator(3, gram_max_dim=8)
    b.update_pass1(torch.randn(6, 9), torch.arange(6) % 3)
    assert a.method_used == "gram" and a.scatter.shape == (8, 8)
    assert b.method_used == "two_pass" and b.scatter is None
    # one pass is enough for the Gram method
    assert np.isfinite(a.compute()["nc1"])
