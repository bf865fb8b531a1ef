"""Image sources: a dataset, an optional balanced training subset, normalisation, then views.

The order matters and is fixed: subset → normalise (statistics of the training subset) → views
(the crop fill value is the per-channel training mean, i.e. 0 after normalisation).
"""
from __future__ import annotations

import numpy as np
import torch

from usable import Param, SourceData, SpecError, Split

from . import datasets, views
from .datasets import Images


def parse_subset(text) -> int | str:
    """balanced_subset: 0 (off), a number N, or 'test' (the size of the test split)."""
    t = str(text).strip().lower()
    if t in ("", "0", "none", "off", "false"):
        return 0
    if t == "test":
        return "test"
    n = int(t)
    if n < 0:
        raise ValueError("must be >= 0")
    return n


parse_subset.__name__ = "int or 'test'"


def balanced_subset(y: torch.Tensor, n: int, n_classes: int, seed: int) -> np.ndarray:
    """Indices of exactly n/K training samples of each class (sorted), chosen with ``seed``."""
    if n % n_classes:
        raise SpecError(f"balanced_subset={n} is not a multiple of the {n_classes} classes; "
                        f"use e.g. {n - n % n_classes or n_classes} for an exactly balanced subset")
    per = n // n_classes
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    out = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per:
            raise SpecError(f"balanced_subset={n} needs {per} training images of class {c}, "
                            f"but the training split has only {len(idx)}")
        out.append(rng.choice(idx, size=per, replace=False))
    return np.sort(np.concatenate(out))


def normalise(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list, list]:
    """Per-channel standardisation with the training split's mean and sd (float64 sums)."""
    mean = x_train.double().mean(dim=(0, 2, 3), keepdim=True)
    sd = x_train.double().std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))  # a constant channel stays constant (0)
    f = lambda x: ((x.double() - mean) / sd).float()  # noqa: E731
    return f(x_train), f(x_test), mean.flatten().tolist(), sd.flatten().tolist()


def to_source_data(img: Images, *, normalize: bool = True, subset=0, subset_seed: int = 0,
                   view: str = "none", width: int | None = None, mode: str = "mask", a: str = "red",
                   b: str = "blue", cutoff: int | None = None) -> SourceData:
    K = len(img.class_names)
    x_tr, y_tr, x_te, y_te = img.x_train, img.y_train, img.x_test, img.y_test
    attrs = {"dataset": img.name, **img.attrs}
    if subset:
        n = len(y_te) if subset == "test" else int(subset)
        idx = torch.from_numpy(balanced_subset(y_tr, n, K, subset_seed))
        x_tr, y_tr = x_tr[idx], y_tr[idx]
        attrs.update(balanced_subset=n, subset_seed=int(subset_seed))
    if normalize:
        x_tr, x_te, mean, sd = normalise(x_tr, x_te)
        attrs.update(normalized="per-channel training mean/sd", pixel_mean=str(mean), pixel_sd=str(sd))
    else:
        attrs.update(normalized="no (pixels in [0, 1])")
    C, H, W = x_tr.shape[1:]
    attrs.update(image_channels=int(C), image_height=int(H), image_width=int(W), view=view)
    if view == "crops":
        attrs.update(width=int(width) if width is not None else -1, crop_mode=mode,
                     overlap_columns=views.overlap_columns(width or 0, W))
    elif view == "channels":
        attrs.update(channel_a=str(a), channel_b=str(b))
    elif view == "frequency":
        attrs.update(cutoff=int(cutoff) if cutoff is not None else -1)
    names, trs, tes = views.split_views(x_tr, x_te, view, width=width, mode=mode, a=a, b=b,
                                        cutoff=cutoff, name=img.name)
    return SourceData(Split(trs, y_tr), Split(tes, y_te), names, "classes", K, list(img.class_names), attrs)


# ------------------------------------------------------------------------------------ factories
def make_digits(test_fraction=0.2, split_seed=0, **common) -> SourceData:
    """scikit-learn's bundled 8×8 digits, stratified train/test split."""
    return to_source_data(datasets.load_digits(test_fraction, split_seed), **_common(common))


def make_cifar10(root=None, download=False, verify=False, **common) -> SourceData:
    return to_source_data(datasets.load_cifar10(root or None, download, verify), **_common(common))


def make_fashion_mnist(root=None, download=False, **common) -> SourceData:
    return to_source_data(datasets.load_fashion_mnist(root or None, download), **_common(common))


def _common(p: dict) -> dict:
    return dict(normalize=p["normalize"], subset=p["balanced_subset"], subset_seed=p["subset_seed"],
                view=p["view"], width=p["width"] or None, mode=p["mode"], a=p["a"], b=p["b"],
                cutoff=p["cutoff"] or None)


COMMON = [
    Param("normalize", True, bool, "standardise each channel with the training split's mean and sd"),
    Param("balanced_subset", "0", parse_subset,
          "exactly class-balanced training subset of N images (N a multiple of the classes), "
          "or 'test' for the size of the test split; 0 = the whole training split"),
    Param("subset_seed", 0, int, "seed choosing the balanced subset"),
    Param("view", "none", str, "split each image into two aligned sources", choices=views.VIEWS),
    Param("width", 0, int, "view=crops: crop width w in pixels (left = first w columns, right = last w)"),
    Param("mode", "mask", str, "view=crops: mask (outside pixels set to the channel mean) or cut (smaller image)",
          choices=views.CROP_MODES),
    Param("a", "red", str, "view=channels: first source's channel (red|green|blue or index)"),
    Param("b", "blue", str, "view=channels: second source's channel"),
    Param("cutoff", 0, int, "view=frequency: low-pass keeps the central k×k of the shifted spectrum"),
]
ROOT = Param("root", "", str, "dataset folder [$USABLE_DATA or ~/.cache/usable/data]")
DOWNLOAD = Param("download", False, bool, "download the files if missing (needs a network)")


def register_all(register):
    register("digits", make_digits, params=[
        Param("test_fraction", 0.2, float, "fraction of each class held out for testing"),
        Param("split_seed", 0, int, "seed of the stratified train/test split"),
        *COMMON,
    ], help="scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes; no files needed)")
    register("cifar10", make_cifar10, params=[
        ROOT, DOWNLOAD,
        Param("verify", False, bool, "check the files' md5 sums against the official release"),
        *COMMON,
    ], help="CIFAR-10 (32×32 colour, 10 classes) via torchvision from <root>/cifar-10-batches-py")
    register("fashion_mnist", make_fashion_mnist, params=[ROOT, DOWNLOAD, *COMMON],
             help="Fashion-MNIST (28×28 grey, 10 classes) via torchvision from <root>/FashionMNIST/raw")
