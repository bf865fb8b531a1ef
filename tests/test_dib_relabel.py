"""Thesis algorithm 2: base-C relabellings, integer digit counts, empirical digit entropies."""
import math

import numpy as np
import pytest
import torch

from usable_dib.relabel import digit_entropies, n_digits, relabel, within_class_index


@pytest.mark.parametrize("count,base,expected", [
    (125, 5, 3), (126, 5, 4), (124, 5, 3), (25, 5, 2), (1000, 10, 3), (1001, 10, 4),
    (1, 10, 0), (2, 2, 1), (3, 2, 2), (1024, 2, 10), (3**20, 3, 20), (10**15, 10, 15),
])
def test_n_digits_exact(count, base, expected):
    assert n_digits(count, base) == expected
    # the definition: the smallest k with base**k >= count
    assert base ** expected >= count and (expected == 0 or base ** (expected - 1) < count)


def test_float_log_would_be_wrong_here():
    # why integers: the floating-point ceil adds a spurious digit at exact powers
    assert math.ceil(math.log(125, 5)) == 4
    assert n_digits(125, 5) == 3


def test_digits_match_direct_base_expansion():
    rng = np.random.default_rng(0)
    C = 7
    y = rng.integers(0, C, size=700)
    d = relabel(torch.from_numpy(y), C).numpy()
    counts = np.bincount(y, minlength=C)
    assert d.shape == (700, n_digits(counts.max(), C))
    seen = {c: 0 for c in range(C)}
    for k, c in enumerate(y):  # within-class index in dataset order
        i = seen[c]
        seen[c] += 1
        expansion = np.base_repr(i, base=C).zfill(d.shape[1])  # most significant first
        assert "".join(str(v) for v in d[k][::-1]) == expansion
        assert sum(int(v) * C ** j for j, v in enumerate(d[k])) == i


def test_relabel_power_of_base_class_size_has_no_spurious_digit():
    y = torch.arange(5).repeat_interleave(125)  # 5 classes x 125 samples, C = 5
    d = relabel(y, 5)
    assert d.shape == (625, 3)
    assert (d[:, 2] == 4).any()  # the leading digit is used: not an all-zero column


def test_within_class_index_order():
    y = np.array([2, 0, 2, 2, 0, 1])
    assert within_class_index(y).tolist() == [0, 0, 1, 2, 1, 0]


def test_digit_entropies_from_actual_labels():
    # 10 classes x 40 samples: indices 0..39 -> digit 0 uniform on 10 values (log2 10),
    # digit 1 uniform on {0,1,2,3} (2 bits, not log2 10 = 3.32)
    y = torch.arange(10).repeat(40)
    h = digit_entropies(relabel(y, 10))
    assert h == pytest.approx([math.log2(10), 2.0], abs=1e-12)
    # imbalanced: class sizes 12 and 3 in base 2 -> 4 digits; compare with a naive plug-in
    y2 = torch.tensor([0] * 12 + [1] * 3)
    d = relabel(y2, 2).numpy()
    assert d.shape[1] == 4
    for j in range(4):
        p = np.bincount(d[:, j], minlength=2) / len(d)
        p = p[p > 0]
        assert digit_entropies(d)[j] == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-12)


def test_relabel_rejects_bad_labels():
    with pytest.raises(ValueError, match="0..2"):
        relabel(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="base must be >= 2"):
        n_digits(5, 1)
