"""What a source plugin returns: aligned sources and one target, split into train and test."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .errors import DataError


@dataclass
class Split:
    """One split: ``xs[i]`` is source i as a tensor (N, *shape); ``y`` the target (N,)."""

    xs: list[torch.Tensor]
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class SourceData:
    """Sources X_1..X_n aligned sample by sample with one target Y.

    ``target`` is ``"classes"`` (y: int64 class indices 0..n_classes-1) or ``"real"`` (y: float).
    ``names`` label the sources (stored as coordinates); ``attrs`` go into the results' attrs.
    """

    train: Split
    test: Split
    names: list[str]
    target: str = "classes"
    n_classes: int | None = None
    class_names: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    @property
    def n_sources(self) -> int:
        return len(self.names)

    def in_shape(self, i: int) -> tuple[int, ...]:
        return tuple(self.train.xs[i].shape[1:])

    @property
    def n_out(self) -> int:
        return int(self.n_classes) if self.target == "classes" else 1

    def validate(self) -> None:
        if self.target not in ("classes", "real"):
            raise DataError(f"target must be 'classes' or 'real', got {self.target!r}")
        for split_name, split in (("train", self.train), ("test", self.test)):
            if len(split.xs) != len(self.names):
                raise DataError(f"{split_name}: {len(split.xs)} source tensors but {len(self.names)} names")
            if len(split) == 0:
                raise DataError(f"the {split_name} split is empty; every estimate needs samples to fit on and "
                                "held-out samples to evaluate on (check the split fraction or the test mask).")
            for name, x in zip(self.names, split.xs):
                if x.shape[0] != split.y.shape[0]:
                    raise DataError(
                        f"source {name!r} has {x.shape[0]} {split_name} samples but the target has "
                        f"{split.y.shape[0]}; sources must be aligned sample by sample with the target."
                    )
        for name, a, b in zip(self.names, self.train.xs, self.test.xs):
            if a.shape[1:] != b.shape[1:]:
                raise DataError(f"source {name!r}: train shape {tuple(a.shape[1:])} != test shape {tuple(b.shape[1:])}")
        if self.target == "classes":
            if self.n_classes is None:
                self.n_classes = int(max(self.train.y.max(), self.test.y.max())) + 1
            for split_name, split in (("train", self.train), ("test", self.test)):
                if split.y.dtype != torch.int64:
                    raise DataError(f"class targets must be int64, got {split.y.dtype} ({split_name})")
                if len(split) and (split.y.min() < 0 or split.y.max() >= self.n_classes):
                    raise DataError(f"{split_name} class labels outside 0..{self.n_classes - 1}")

    def select(self, indices: Sequence[int]) -> "SourceData":
        idx = list(indices)
        return SourceData(Split([self.train.xs[i] for i in idx], self.train.y),
                          Split([self.test.xs[i] for i in idx], self.test.y),
                          [self.names[i] for i in idx], self.target, self.n_classes,
                          self.class_names, dict(self.attrs))

    def joint(self, name: str | None = None) -> "SourceData":
        """All sources concatenated (flattened) into one source: the joint decoder's input."""
        def cat(xs):
            return torch.cat([x.reshape(x.shape[0], -1).float() for x in xs], dim=1)
        return SourceData(Split([cat(self.train.xs)], self.train.y), Split([cat(self.test.xs)], self.test.y),
                          [name or "+".join(self.names)], self.target, self.n_classes,
                          self.class_names, dict(self.attrs))


def with_classes(data: SourceData, n_classes: int) -> SourceData:
    """The same data with decoders over ``n_classes`` ≥ its own (extra labels never occur), so
    tasks with fewer classes can train in one ensemble with others."""
    if data.target != "classes" or n_classes < (data.n_classes or 0):
        raise DataError(f"with_classes: need a class target and n_classes >= {data.n_classes}")
    names = None
    if data.class_names:
        names = list(data.class_names) + [f"unused{k}" for k in range(data.n_classes, n_classes)]
    return SourceData(data.train, data.test, list(data.names), data.target, int(n_classes), names,
                      dict(data.attrs))


def combine(datas: Sequence[SourceData]) -> SourceData:
    """Several ``--source`` specs into one SourceData; their targets must be identical."""
    if len(datas) == 1:
        return datas[0]
    first = datas[0]
    names: list[str] = []
    for k, d in enumerate(datas):
        if d.target != first.target:
            raise DataError(f"source spec {k + 1} has a {d.target} target but spec 1 has {first.target}")
        for split in ("train", "test"):
            a, b = getattr(first, split).y, getattr(d, split).y
            if a.shape != b.shape or not torch.equal(a, b):
                raise DataError(
                    f"source spec {k + 1} has different {split} targets from source spec 1 "
                    f"({tuple(b.shape)} vs {tuple(a.shape)}): sources must be aligned sample by sample. "
                    "Use the same dataset, split and seed for every source, or one spec that yields several sources."
                )
        for nm in d.names:
            names.append(nm if nm not in names else f"{nm}#{k + 1}")
    return SourceData(Split([x for d in datas for x in d.train.xs], first.train.y),
                      Split([x for d in datas for x in d.test.xs], first.test.y),
                      names, first.target, max(d.n_classes or 0 for d in datas) or None,
                      first.class_names, {k: v for d in datas for k, v in d.attrs.items()})


def train_test_split_indices(n: int, test_fraction: float, seed: int,
                             stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (stratified if labels given) split of range(n)."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction={test_fraction}: the held-out fraction must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        n_test = int(round(n * test_fraction))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    train, test = [], []
    for c in np.unique(stratify):
        idx = np.flatnonzero(stratify == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
