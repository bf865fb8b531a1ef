"""What ``fit`` returns: held-out log-likelihoods, divergences and curves, labelled by member.

Members of one fit are (dataset, seed, β) triples. ``FitResult.to_dataset()`` gives every array
with named dims ``dataset, seed, beta, source, sample, epoch`` (``head`` for multi-head targets),
so metrics select with ``.sel(beta=15)`` instead of computing member indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Members:
    """The member axis of an ensemble: (dataset, seed, β) flattened, dataset slowest, β fastest."""

    n_datasets: int
    seeds: tuple[int, ...]
    betas: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.n_datasets, len(self.seeds), len(self.betas)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def column(self, what: str) -> list:
        """The dataset index, seed or β of every member, in member order."""
        grid = np.indices(self.shape).reshape(3, -1)
        if what == "dataset":
            return grid[0].tolist()
        values = self.seeds if what == "seed" else self.betas
        return [values[i] for i in grid[1 if what == "seed" else 2]]


@dataclass
class FitResult:
    """``test_logp``: log2 f(y|x) per test sample, (member, source, sample[, head]);
    ``test_divergence``: held-out divergence (unweighted by β), (member[, head]);
    ``history``: per-epoch arrays (epoch, member[, source]); ``models``: one ensemble per source."""

    members: Members
    names: list[str]
    test_logp: torch.Tensor
    test_divergence: np.ndarray
    history: dict[str, np.ndarray]
    models: list[nn.Module]
    log_sigma: torch.Tensor | None = None
    epochs_run: int = 0
    dataset_names: Sequence[Any] | None = None

    @property
    def seeds(self) -> list[int]:
        return list(self.members.seeds)

    @property
    def betas(self) -> list[float]:
        return list(self.members.betas)

    def to_dataset(self):
        """Every array with named dims; ``cross_entropy`` = mean held-out −log2 f(y|x) in bits."""
        import xarray as xr

        lead, shape = ("dataset", "seed", "beta"), self.members.shape

        def var(a, dims, long_name, units="bit"):
            a = np.asarray(a)
            at = 1 if dims[0] == "epoch" else 0
            a = a.reshape(a.shape[:at] + shape + a.shape[at + 1:])
            return xr.Variable(dims, a, {"long_name": long_name, "units": units})

        heads = ("head",) if self.test_logp.ndim == 4 else ()
        logp = self.test_logp.double()
        h = self.history
        data = {
            "log_likelihood": var(logp.numpy(), lead + ("source", "sample") + heads, "held-out log2 f(y|x) per sample"),
            "cross_entropy": var((-logp.mean(dim=2)).numpy(), lead + ("source",) + heads, "held-out cross-entropy"),
            "divergence": var(self.test_divergence, lead + heads, "held-out divergence D(f_1..f_n)", "1"),
            "train_loss": var(h["train_loss"], ("epoch",) + lead, "training objective per epoch (nats)", "nat"),
            "train_cross_entropy": var(h["train_ce"], ("epoch",) + lead + ("source",), "training cross-entropy per epoch"),
            "test_cross_entropy_curve": var(h["test_ce"], ("epoch",) + lead + ("source",), "held-out cross-entropy per epoch"),
            "train_divergence": var(h["train_divergence"], ("epoch",) + lead, "training divergence per epoch", "1"),
            "beta_in_force": var(h["beta"], ("epoch",) + lead, "β applied per epoch (schedule)", "1"),
        }
        coords = {"dataset": list(self.dataset_names) if self.dataset_names is not None else list(range(shape[0])),
                  "seed": self.seeds, "beta": self.betas, "source": list(self.names),
                  "sample": np.arange(logp.shape[2]), "epoch": np.arange(self.epochs_run)}
        if heads:
            coords["head"] = np.arange(logp.shape[3])
        return xr.Dataset(data, coords=coords)
