"""Image datasets as float tensors (N, C, H, W) in [0, 1] with int64 labels, train and test.

``digits`` is scikit-learn's bundled copy (no files needed). ``cifar10`` and ``fashion_mnist``
go through torchvision's own dataset classes reading the standard files under a local root;
nothing is downloaded unless ``download=true`` is asked for.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usable import DataError, train_test_split_indices


@dataclass
class Images:
    """One image dataset, split: pixels scaled to [0, 1], labels 0..K-1."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


def default_root() -> Path:
    """Where image datasets live: $USABLE_DATA, else ~/.cache/usable/data (read at call time)."""
    env = os.environ.get("USABLE_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/usable/data").expanduser()


def resolve_root(root: str | None) -> Path:
    return Path(root).expanduser() if root else default_root()


# ------------------------------------------------------------------------------------ digits
def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Images:
    """scikit-learn's 8×8 handwritten digits (1,797 images, 16 grey levels), stratified split."""
    from sklearn.datasets import load_digits as _load
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"digits: test_fraction={test_fraction} must be strictly between 0 and 1")
    d = _load()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, te = train_test_split_indices(len(y), test_fraction, split_seed, stratify=d.target)
    return Images(x[tr], y[tr], x[te], y[te], [str(c) for c in d.target_names], "digits",
                  {"test_fraction": float(test_fraction), "split_seed": int(split_seed)})


# ------------------------------------------------------------------------------------ CIFAR-10
CIFAR_HELP = (
    "CIFAR-10 (python version) was not found under {where}. Expected the unpacked archive "
    "cifar-10-python.tar.gz there: data_batch_1 … data_batch_5, test_batch and batches.meta "
    "(from https://www.cs.toronto.edu/~kriz/cifar.html). Point root= (or $USABLE_DATA) at the folder "
    "that contains cifar-10-batches-py, or pass download=true on a machine with a network."
)


def _cifar_class(verify: bool):
    """torchvision's CIFAR10; without ``verify`` it checks that the files exist, not their md5
    (a re-packed or subset copy in the standard format then loads too)."""
    from torchvision.datasets import CIFAR10
    if verify:
        return CIFAR10

    class CIFAR10Unverified(CIFAR10):
        train_list = [[f, None] for f, _ in CIFAR10.train_list]
        test_list = [[f, None] for f, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return CIFAR10Unverified


# What the CIFAR-10 python batches may reference: numpy's array reconstruction, and _codecs for
# the bytes of protocol-2 pickles written by Python 3. Anything else (os.system, eval, ...) is a
# crafted file, refused before torchvision unpickles it.
SAFE_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                       ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                       ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


def check_safe_pickle(path: Path) -> None:
    """Read a pickle with an unpickler that builds nothing but the globals above (so reading it
    runs no code); raise DataError naming the file if it references anything else."""
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in SAFE_PICKLE_GLOBALS:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name}")

    try:
        with open(path, "rb") as fh:
            Restricted(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cifar10: {path} is not a CIFAR-10 batch file in the standard format (it references "
                        f"{exc}); refusing to unpickle it. Use the official files (verify=true checks their md5).") from None


def load_cifar10(root: str | None = None, download: bool = False, verify: bool = True) -> Images:
    base = resolve_root(root)
    cls = _cifar_class(verify)
    where = base / cls.base_folder
    if not verify:  # the md5 check is off: make sure unpickling the files cannot run code
        for fname, _ in cls.train_list + cls.test_list + [[cls.meta["filename"], None]]:
            if (where / fname).is_file():
                check_safe_pickle(where / fname)
    try:
        train = cls(str(base), train=True, download=download)
        test = cls(str(base), train=False, download=download)
    except RuntimeError as exc:
        if verify and where.is_dir() and (where / "data_batch_1").exists():
            raise DataError(f"cifar10: the files under {where} are not the official release (md5 mismatch); pass "
                            "verify=false to read a re-packed or subset copy in the standard format") from None
        raise DataError(CIFAR_HELP.format(where=where) + f" [torchvision: {exc}]") from None

    def conv(ds):
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float() / 255.0
        return x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    (xtr, ytr), (xte, yte) = conv(train), conv(test)
    return Images(xtr, ytr, xte, yte, list(train.classes), "cifar10", {"root": str(base)})


# ------------------------------------------------------------------------------------ Fashion-MNIST
FASHION_HELP = (
    "Fashion-MNIST was not found under {where}. Expected the four IDX files there, gzipped as "
    "published or unpacked: train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
    "t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz) (from "
    "https://github.com/zalandoresearch/fashion-mnist). Point root= (or $USABLE_DATA) at the folder "
    "that contains FashionMNIST/raw, or pass download=true on a machine with a network."
)


def _gunzip_missing(raw: Path, resources) -> None:
    """torchvision reads the unpacked IDX files; unpack any that exist only as the published .gz
    (the same step torchvision's own download does after fetching)."""
    for fname, _ in resources:
        gz, plain = raw / fname, raw / fname[:-3]
        if gz.exists() and not plain.exists():
            tmp = plain.with_suffix(plain.suffix + ".part")
            with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(plain)  # atomic: a half-written file never looks complete


def load_fashion_mnist(root: str | None = None, download: bool = False) -> Images:
    from torchvision.datasets import FashionMNIST
    base = resolve_root(root)
    raw = base / "FashionMNIST" / "raw"
    if raw.is_dir():
        _gunzip_missing(raw, FashionMNIST.resources)
    try:
        train = FashionMNIST(str(base), train=True, download=download)
        test = FashionMNIST(str(base), train=False, download=download)
    except RuntimeError as exc:
        raise DataError(FASHION_HELP.format(where=raw) + f" [torchvision: {exc}]") from None

    def conv(ds):
        return ds.data.unsqueeze(1).float() / 255.0, ds.targets.to(torch.int64)

    (xtr, ytr), (xte, yte) = conv(train), conv(test)
    return Images(xtr, ytr, xte, yte, list(train.classes), "fashion_mnist", {"root": str(base)})
