"""Image sources: a dataset, an optional balanced training subset, normalization, then views.

The order matters and is fixed: subset → normalize (statistics of the training subset) → views
(the crop fill value is the per-channel training mean, i.e. 0 after normalization).
"""
from __future__ import annotations

import numpy as np
import torch

from usable import SourceData, SpecError, Split

from . import datasets, views
from .datasets import Images


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


def standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list, list]:
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
        x_tr, x_te, mean, sd = standardize(x_tr, x_te)
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


def image_source_data(dataset: str, load: dict, view: dict) -> SourceData:
    """Load an image dataset, then subset, normalize and cut it into its views."""
    loader = {"digits": datasets.load_digits, "cifar10": datasets.load_cifar10,
              "fashion_mnist": datasets.load_fashion_mnist}[dataset]
    return to_source_data(loader(**load), normalize=view["normalize"], subset=view["balanced_subset"],
                          subset_seed=view["subset_seed"], view=view["view"], width=view["width"] or None,
                          mode=view["mode"], a=view["a"], b=view["b"], cutoff=view["cutoff"] or None)
