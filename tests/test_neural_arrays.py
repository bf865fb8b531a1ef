"""The ``arrays`` source on real .npz files and zarr stores written here: every sample lands in
the right split with its own target, variables and dims are found by name, errors name what exists."""
import numpy as np
import pytest
import xarray as xr

from usable import create, format_spec


def arrays(**params):
    return create("sources", format_spec("arrays", {k: str(v) for k, v in params.items()}))


def test_npz_sources_stay_aligned_with_target(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    idx = np.arange(n, dtype=np.float32)
    x1 = np.column_stack([idx, rng.normal(size=(n, 4))]).astype(np.float32)   # column 0 = sample id
    x2 = (idx[:, None, None] * 10 + np.arange(6).reshape(1, 2, 3)).astype(np.float32)
    y = rng.choice([3, 7, 9], size=n)
    np.savez(tmp_path / "d.npz", pmd=x1, m1=x2, target=y)
    data = arrays(file=tmp_path / "d.npz", sources="pmd+m1", target="target", test_fraction=0.25, seed=3)
    assert data.names == ["pmd", "m1"] and data.target == "classes"
    assert data.class_names == ["3", "7", "9"] and data.n_classes == 3
    assert len(data.train) + len(data.test) == n
    for split in (data.train, data.test):
        ids = split.xs[0][:, 0].numpy().astype(int)
        np.testing.assert_array_equal(split.xs[0].numpy(), x1[ids])
        np.testing.assert_array_equal(split.xs[1].numpy(), x2[ids])
        np.testing.assert_array_equal(np.array([3, 7, 9])[split.y.numpy()], y[ids])
    # Stratified: each class's test share is round(0.25 * its count).
    for c, v in enumerate([3, 7, 9]):
        assert int((data.test.y == c).sum()) == int(round(0.25 * np.sum(y == v)))


def test_zarr_dataset_with_named_sample_dim_and_test_mask(tmp_path):
    rng = np.random.default_rng(1)
    n, u = 40, 5
    counts = rng.poisson(3.0, size=(u, n)).astype(np.float32)       # (unit, trial): sample dim is second
    speed = rng.normal(size=n)
    is_test = np.arange(n) % 4 == 0
    ds = xr.Dataset({"pmd": (("unit", "trial"), counts), "speed": ("trial", speed),
                     "is_test": ("trial", is_test)}, coords={"trial": np.arange(n)})
    ds.to_zarr(tmp_path / "rec.zarr", zarr_format=3, consolidated=False)
    data = arrays(file=tmp_path / "rec.zarr", sources="pmd", target="speed", test="is_test", sample_dim="trial")
    assert data.target == "real"
    np.testing.assert_array_equal(data.test.xs[0].numpy(), counts.T[is_test])
    np.testing.assert_array_equal(data.train.xs[0].numpy(), counts.T[~is_test])
    np.testing.assert_allclose(data.test.y.numpy(), speed[is_test].astype(np.float32))


def test_position_target_binned_into_sectors(tmp_path):
    ang = np.deg2rad(np.repeat(np.arange(8) * 45.0, 5))
    pos = np.column_stack([np.cos(ang), np.sin(ang)])
    x = np.arange(40, dtype=np.float32)[:, None]
    np.savez(tmp_path / "p.npz", x=x, pos=pos)
    data = arrays(file=tmp_path / "p.npz", sources="x", target="pos", bins=8, test_fraction=0.2)
    for split in (data.train, data.test):
        ids = split.xs[0][:, 0].numpy().astype(int)
        np.testing.assert_array_equal(split.y.numpy(), ids // 5)


def test_bad_names_list_what_exists(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.zeros((4, 2)), y=np.arange(4))
    with pytest.raises(ValueError, match=r"no array\(s\) b; it holds: a, y"):
        arrays(file=tmp_path / "d.npz", sources="a+b", target="y")
    np.savez(tmp_path / "e.npz", a=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(ValueError, match=r"source 'a' has 5 samples but target 'y' has 4"):
        arrays(file=tmp_path / "e.npz", sources="a", target="y")
    xr.Dataset({"a": (("trial", "unit"), np.zeros((4, 2))), "y": ("trial", np.arange(4))}).to_zarr(tmp_path / "z.zarr", consolidated=False)
    with pytest.raises(ValueError, match=r"no variable\(s\) pmd; it holds: a, y"):
        arrays(file=tmp_path / "z.zarr", sources="pmd", target="y")
    with pytest.raises(ValueError, match="does not exist"):
        arrays(file=tmp_path / "none.npz", sources="a", target="y")
