"""Angular binning of 2-D target positions into sectors, on angles whose sector is known."""
import numpy as np
import pytest

from usable_neural.targets import angular_bins, class_labels, sector_names


def at(deg, radius=1.0, centre=(0.0, 0.0)):
    a = np.deg2rad(np.asarray(deg, dtype=float))
    return np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)], axis=1)


def test_eight_targets_fall_in_their_own_sector():
    deg = np.arange(8) * 45.0
    np.testing.assert_array_equal(angular_bins(at(deg, radius=8.0), 8), np.arange(8))
    assert sector_names(8) == ["0deg", "45deg", "90deg", "135deg", "180deg", "225deg", "270deg", "315deg"]


def test_sector_edges_are_half_open():
    # Sector k covers [45k - 22.5, 45k + 22.5) degrees.
    deg = [22.0, 23.0, 44.0, 66.0, 68.0, 337.0, 338.0, 350.0, -10.0, 202.0, 203.0]
    exp = [0, 1, 1, 1, 2, 7, 0, 0, 0, 4, 5]
    np.testing.assert_array_equal(angular_bins(at(deg), 8), exp)
    # Exactly on an edge (exact in floating point with 4 sectors: edges at 45°, 135°, 225°, 315°):
    # the edge belongs to the sector that starts there.
    pos = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(angular_bins(pos, 4), [1, 2, 3, 0, 0, 1])


def test_centre_offset_and_mean_centre():
    centre = (10.0, -4.0)
    deg = np.arange(8) * 45.0 + 5.0
    pos = at(deg, radius=3.0, centre=centre)
    np.testing.assert_array_equal(angular_bins(pos, 8, centre), np.arange(8))
    labels, names, keep = class_labels(pos, 8, "mean", "target_pos")  # mean of a full ring = its centre
    np.testing.assert_array_equal(labels, np.arange(8))
    assert keep.all() and len(names) == 8


def test_nan_positions_are_not_kept_and_centre_is_rejected():
    pos = np.vstack([at([0.0, 90.0]), [[np.nan, np.nan]], at([180.0])])
    labels, _, keep = class_labels(pos, 4, (0.0, 0.0), "target_pos")
    assert keep.tolist() == [True, True, False, True]
    assert labels.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="equal the centre"):
        angular_bins(np.array([[0.0, 0.0], [1.0, 0.0]]), 8)
    with pytest.raises(ValueError, match=r"needs an \(x, y\) position"):
        class_labels(np.arange(4.0), 8, (0.0, 0.0), "target_id")
