"""Tiny CIFAR-10 and Fashion-MNIST copies in the exact published file formats.

Used by the tests and the docs' smoke runs: the ``cifar10`` / ``fashion_mnist`` sources then read
them through torchvision exactly as they read the real files. Images are random noise plus a
class-dependent brightness, so a decoder can learn something from them.

- CIFAR-10 "python version": ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` (pickled
  dicts with 'data' uint8 (N, 3072) in channel-major order, 'labels', 'batch_label', 'filenames')
  and ``batches.meta`` ('label_names').
- Fashion-MNIST: ``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``, IDX files
  (big-endian magic 2051 / 2049, then the dimensions, then uint8 data), gzipped.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(rng, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    base = (labels.astype(np.float64) * 20.0 + 30.0).reshape(-1, *([1] * len(shape)))
    noise = rng.normal(0.0, 25.0, size=(len(labels), *shape))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _labels(rng, per_class: int, n_classes: int = 10) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(n_classes), per_class)).astype(np.int64)


def write_cifar10(root: str | Path, train_per_class: int = 5, test_per_class: int = 2, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10 under root/cifar-10-batches-py; returns that folder."""
    rng = np.random.default_rng(seed)
    out = Path(root) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    y_train = _labels(rng, train_per_class)
    batches = np.array_split(np.arange(len(y_train)), 5)  # the five training batches, as published

    def dump(name, labels, label):
        data = _images(rng, labels, (3, 32, 32)).reshape(len(labels), 3072)
        entry = {"batch_label": label, "labels": [int(v) for v in labels], "data": data,
                 "filenames": [f"img_{name}_{i}.png" for i in range(len(labels))]}
        with open(out / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)

    for k, idx in enumerate(batches, start=1):
        dump(f"data_batch_{k}", y_train[idx], f"training batch {k} of 5")
    dump("test_batch", _labels(rng, test_per_class), "testing batch 1 of 1")
    with open(out / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": len(batches[0]), "num_vis": 3072},
                    fh, protocol=2)
    return out


def _idx_images(data: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, *data.shape) + data.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_fashion_mnist(root: str | Path, train_per_class: int = 5, test_per_class: int = 2,
                        seed: int = 0) -> Path:
    """Write a tiny Fashion-MNIST (gzipped IDX) under root/FashionMNIST/raw; returns that folder."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, per in (("train", train_per_class), ("t10k", test_per_class)):
        y = _labels(rng, per)
        x = _images(rng, y, (28, 28))
        with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(_idx_images(x))
        with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(_idx_labels(y))
    return raw
