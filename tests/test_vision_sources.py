"""Image sources read the standard on-disk formats through torchvision (tiny files written here)."""
import gzip
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from usable import SpecError, get_entry
from usable.cli import make_cli
from usable_vision.fixtures import CIFAR_CLASSES, write_cifar10, write_fashion_mnist


def _source(name, **params):
    if name == "cifar10":  # the fixtures are not the official files: read them without the md5 check
        params.setdefault("verify", "false")
    return get_entry("sources", name).create({k: str(v) for k, v in params.items()})


def _read_cifar_naively(folder):
    """The published format read by hand: pickled dicts, 'data' (N, 3072) channel-major."""
    def batch(name):
        with open(folder / name, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        return np.asarray(d["data"]).reshape(-1, 3, 32, 32), np.asarray(d["labels"])
    parts = [batch(f"data_batch_{k}") for k in range(1, 6)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])), batch("test_batch")


def _read_idx_gz(path):
    raw = gzip.open(path, "rb").read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def test_cifar10_reads_the_python_batches(tmp_path):
    folder = write_cifar10(tmp_path, train_per_class=3, test_per_class=2)
    (xtr, ytr), (xte, yte) = _read_cifar_naively(folder)
    d = _source("cifar10", root=tmp_path, normalize="false")
    assert d.names == ["cifar10"] and d.class_names == CIFAR_CLASSES and d.n_classes == 10
    assert d.train.xs[0].shape == (30, 3, 32, 32) and d.test.xs[0].shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(d.train.y.numpy(), ytr)
    np.testing.assert_array_equal(d.test.y.numpy(), yte)
    np.testing.assert_allclose(d.train.xs[0].numpy(), xtr / 255.0, atol=1e-7)
    np.testing.assert_allclose(d.test.xs[0].numpy(), xte / 255.0, atol=1e-7)


def test_fashion_mnist_reads_gzipped_idx(tmp_path):
    raw = write_fashion_mnist(tmp_path, train_per_class=2, test_per_class=1)
    x = _read_idx_gz(raw / "train-images-idx3-ubyte.gz")
    y = _read_idx_gz(raw / "train-labels-idx1-ubyte.gz")
    d = _source("fashion_mnist", root=tmp_path, normalize="false")
    assert d.train.xs[0].shape == (20, 1, 28, 28) and len(d.test) == 10
    assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"
    np.testing.assert_array_equal(d.train.y.numpy(), y.astype(np.int64))
    np.testing.assert_allclose(d.train.xs[0][:, 0].numpy(), x / 255.0, atol=1e-7)


def test_missing_datasets_say_where_and_how(tmp_path, monkeypatch):
    with pytest.raises(ValueError) as exc:
        _source("cifar10", root=tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "download=true" in msg and "data_batch_1" in msg
    with pytest.raises(ValueError, match="FashionMNIST"):
        _source("fashion_mnist", root=tmp_path)
    # the default root is $USABLE_DATA, read when the source is created
    monkeypatch.setenv("USABLE_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="elsewhere"):
        _source("cifar10")
    # on the command line: one clear line, no traceback
    out = CliRunner().invoke(make_cli(), ["run", "usable", "--source", "cifar10", "--epochs", "1", "--no-progress"])
    assert out.exit_code != 0 and "elsewhere" in out.output and "Traceback" not in out.output


def test_md5_verification_rejects_non_official_files(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="md5"):
        _source("cifar10", root=tmp_path, verify="true")
    with pytest.raises(ValueError, match="md5"):  # verify=true is the default
        get_entry("sources", "cifar10").create({"root": str(tmp_path)})


def test_a_crafted_batch_file_is_refused_without_running_its_code(tmp_path):
    """With verify=false the batch files are first read by an unpickler that builds nothing but
    numpy arrays: a pickle that would call os.system is refused, and the command never runs."""
    import pickle
    folder = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({"data": Evil(), "labels": [0]}, fh, protocol=2)
    with pytest.raises(ValueError, match="refusing to unpickle") as err:
        _source("cifar10", root=tmp_path)
    assert "posix.system" in str(err.value) or "os.system" in str(err.value)
    assert not marker.exists()


def test_balanced_subset_is_exactly_balanced(tmp_path):
    write_cifar10(tmp_path, train_per_class=5, test_per_class=3)
    d = _source("cifar10", root=tmp_path, balanced_subset=20)
    assert torch.bincount(d.train.y, minlength=10).tolist() == [2] * 10
    full = _source("cifar10", root=tmp_path, normalize="false")
    raw = _source("cifar10", root=tmp_path, balanced_subset=20, normalize="false")
    rows = {tuple(r) for r in full.train.xs[0].reshape(50, -1)[:, :16].tolist()}
    assert all(tuple(r) in rows for r in raw.train.xs[0].reshape(20, -1)[:, :16].tolist())  # a true subset
    t = _source("cifar10", root=tmp_path, balanced_subset="test")  # the size of the test split (30)
    assert torch.bincount(t.train.y, minlength=10).tolist() == [3] * 10
    with pytest.raises(SpecError, match="multiple of the 10 classes"):
        _source("cifar10", root=tmp_path, balanced_subset=25)
    with pytest.raises(SpecError, match="only 5"):
        _source("cifar10", root=tmp_path, balanced_subset=60)


def test_normalisation_uses_training_statistics(tmp_path):
    write_cifar10(tmp_path)
    d = _source("cifar10", root=tmp_path)
    x = d.train.xs[0].double()
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-5)
    raw = _source("cifar10", root=tmp_path, normalize="false")
    mean = raw.train.xs[0].double().mean(dim=(0, 2, 3), keepdim=True)
    sd = raw.train.xs[0].double().std(dim=(0, 2, 3), unbiased=False, keepdim=True)
    np.testing.assert_allclose(d.test.xs[0].numpy(), ((raw.test.xs[0] - mean) / sd).numpy(), atol=1e-5)


def test_digits_split_is_stratified_and_deterministic():
    a, b = _source("digits"), _source("digits")
    assert len(a.train) + len(a.test) == 1797 and a.in_shape(0) == (1, 8, 8)
    assert torch.equal(a.test.y, b.test.y) and torch.equal(a.train.xs[0], b.train.xs[0])
    counts = torch.bincount(a.test.y, minlength=10).numpy()
    totals = counts + torch.bincount(a.train.y, minlength=10).numpy()
    np.testing.assert_array_equal(counts, np.round(totals * 0.2).astype(int))  # 20 % of each class
    c = _source("digits", split_seed=1)
    assert not torch.equal(a.test.xs[0], c.test.xs[0])


def test_channel_views_of_cifar(tmp_path):
    write_cifar10(tmp_path)
    raw = _source("cifar10", root=tmp_path, normalize="false")
    d = _source("cifar10", root=tmp_path, normalize="false", view="channels", a="green", b="blue")
    assert d.names == ["green", "blue"] and d.in_shape(0) == (1, 32, 32)
    assert torch.equal(d.train.xs[0][:, 0], raw.train.xs[0][:, 1])
    assert torch.equal(d.test.xs[1][:, 0], raw.test.xs[0][:, 2])
    with pytest.raises(SpecError, match="colour images"):
        _source("digits", view="channels")
