"""The RINE paper's figure-5 task (``synthetic`` source) and the ``cosine`` baseline.

Ground truth: the Gács–Körner common part of (X1, X2), computed here by brute force from the
exact joint distribution (connected components of the support graph), gives the redundancy
I∩ = H(Q) that RINE converges to at large β; the task units' cosine similarity is the fraction
of samples whose class both sources encode.
"""
import itertools
import math

import numpy as np
import pytest
import torch

from usable import FitConfig, RunSpec, get_entry, run_metric
from usable_synthetic.overlap import class_sets, true_redundancy_bits



def exact_joint(n, classes=8):
    """p(y, code1, code2) enumerated from the generative description (no sampling)."""
    s1, s2, common = class_sets(n, classes)
    joint = {}
    for y in range(classes):
        opts = []
        for own in (s1, s2):
            excl = [c for c in own if c not in common]
            opts.append([(y, 1.0)] if y in own else [(c, 1.0 / len(excl)) for c in excl])
        for (c1, p1), (c2, p2) in itertools.product(*opts):
            joint[(y, c1, c2)] = joint.get((y, c1, c2), 0.0) + p1 * p2 / classes
    return joint


def gacs_korner_bits(joint):
    """H(Q) for Q = the connected component of (x1, x2) in the bipartite support graph, i.e. the
    largest common function of X1 and X2; it is a function of Y here, so I(Q;Y) = H(Q)."""
    parent = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for (_, c1, c2), p in joint.items():
        if p > 0:
            parent[find(("x1", c1))] = find(("x2", c2))
    mass = {}
    for (_, c1, _), p in joint.items():
        mass[find(("x1", c1))] = mass.get(find(("x1", c1)), 0.0) + p
    return -sum(p * math.log2(p) for p in mass.values() if p > 0)


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8])
def test_redundancy_formula_is_the_gacs_korner_common_information(n):
    assert true_redundancy_bits(n, 8) == pytest.approx(gacs_korner_bits(exact_joint(n)), abs=1e-12)
    assert true_redundancy_bits(4, 8) == 0 and true_redundancy_bits(8, 8) == 3


def test_source_samples_follow_the_description():
    d = get_entry("sources", "synthetic").create({"n": "5", "noise": "3", "shared": "2", "samples": "8000"})
    x1, x2 = (torch.cat([d.train.xs[i], d.test.xs[i]]).numpy() for i in (0, 1))
    y = torch.cat([d.train.y, d.test.y]).numpy()
    assert x1.shape == x2.shape == (8000, 8 + 3 + 2) and d.n_classes == 8
    c1, c2 = x1[:, :8].argmax(1), x2[:, :8].argmax(1)
    np.testing.assert_array_equal(x1[:, :8].sum(1), 1)  # task units are one-hot
    own1, own2 = y < 5, y >= 3
    np.testing.assert_array_equal(c1[own1], y[own1])
    np.testing.assert_array_equal(c2[own2], y[own2])
    assert set(c1[~own1]) == {0, 1, 2} and set(c2[~own2]) == {5, 6, 7}  # fill-ins: exclusive classes only
    np.testing.assert_array_equal(x1[:, -2:], x2[:, -2:])  # shared non-task units: the same draw
    assert abs(np.corrcoef(x1[:, 8], x2[:, 8])[0, 1]) < 0.05  # noise units: independent
    assert x1[:, 8:11].std() == pytest.approx(2.0, rel=0.05)  # N(0, 2²)
    empirical = np.bincount(y, minlength=8) / len(y)
    assert np.abs(empirical - 1 / 8).max() < 0.01
    with pytest.raises(ValueError, match="n .* must lie in 4..8"):
        get_entry("sources", "synthetic").create({"n": "3"})


def cosine(*sources):
    return run_metric(RunSpec.create("cosine", sources))


def test_cosine_against_a_naive_loop_and_exact_values():
    ds = cosine("synthetic:n=6,noise=4,shared=3,samples=400")
    d = get_entry("sources", "synthetic").create({"n": "6", "noise": "4", "shared": "3", "samples": "400"})
    a, b = d.test.xs[0].double().numpy(), d.test.xs[1].double().numpy()
    naive = np.mean([np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)) for u, v in zip(a, b)])
    assert float(ds.cosine_similarity) == pytest.approx(naive, rel=1e-12)
    assert ds.cosine_matrix.sel(source_a="x1", source_b="x2") == ds.cosine_matrix.sel(source_a="x2", source_b="x1")
    np.testing.assert_allclose(np.diag(ds.cosine_matrix.values), 1.0)
    for n in (4, 5, 8):  # task units only: cos = 1 on shared classes, 0 elsewhere
        d = get_entry("sources", "synthetic").create({"n": str(n), "samples": "2000"})
        shared = np.isin(d.test.y.numpy(), class_sets(n, 8)[2]).mean()
        assert float(cosine(f"synthetic:n={n},samples=2000").cosine_similarity) == pytest.approx(shared, abs=1e-12)
    with pytest.raises(ValueError, match=r"same number of features.*'x1#2': 10"):
        cosine("synthetic:samples=400", "synthetic:samples=400,noise=2")  # widths 8, 8, 10, 10
    assert float(cosine("synthetic:n=4,shared=20").cosine_similarity) > 0.9  # shared units raise it


# One training setting for the RINE side: linear decoders, β = 15 with the reference code's
# l1 normalisation (reduction=mean), reverse-annealed β (exp, γ = 0.7), Adam.
FIG5 = dict(epochs=15, batch_size=128, optimizer="adam", lr=0.05, lr_decay=0.9, weight_decay=0.0,
            progress=False)


def rine(source):
    return run_metric(RunSpec.create("rine", [source], "linear", "l1:reduction=mean", "exp:gamma=0.7", [15.0], [0, 1],
                                     FitConfig(**FIG5)))


def test_figure5_rine_is_flat_in_noise_units_while_cosine_falls():
    """n = 8 (both sources encode all classes, I∩ = 3 bits): 0 → 50 noise units N(0, 2²)."""
    r0, r50 = (rine(f"synthetic:n=8,noise={k},samples=4000") for k in (0, 50))
    c0, c50 = (float(cosine(f"synthetic:n=8,noise={k},samples=4000").cosine_similarity) for k in (0, 50))
    v0, v50 = (float(r.redundant_information.mean()) for r in (r0, r50))
    assert abs(v50 - v0) < 0.1, (v0, v50)
    assert v0 > 2.85 and v50 > 2.85  # both near the 3-bit truth
    assert c0 == 1.0
    assert c50 < 0.5 * c0 and c50 < 0.02  # ≈ 1/(1 + 4·50): the noise dominates the norms


def test_rine_follows_the_class_overlap():
    """n = 5: two shared classes, I∩ = 1.061 bits, well below each source's own 1.64 bits."""
    ds = rine("synthetic:n=5,samples=4000")
    assert float(ds.redundant_information.mean()) == pytest.approx(true_redundancy_bits(5, 8), abs=0.08)
    assert float(ds.usable_information.mean()) > 1.5
