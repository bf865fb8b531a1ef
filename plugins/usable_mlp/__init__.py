"""Fully connected decoders: ``mlp`` (hidden sizes, batch norm, ReLU) and ``linear``.

Both train natively batched (stacked weights, batched matmuls) when several seeds or β values
share one fit; ``build`` gives the plain single network (a ``usable.Network`` of named blocks).
"""
from __future__ import annotations

import math

from torch import nn

from usable import Network, Param, hookimpl
from usable.ensemble import BatchedMLP
from usable.params import int_list


class MLP:
    def __init__(self, hidden: list[int], batch_norm: bool = True):
        self.hidden, self.batch_norm = list(hidden), batch_norm

    def build(self, in_shape, n_out) -> Network:
        blocks = []
        width = math.prod(in_shape)
        for k, h in enumerate(self.hidden):
            layers = [nn.Flatten()] if k == 0 else []
            layers += [nn.Linear(width, h)] + ([nn.BatchNorm1d(h)] if self.batch_norm else []) + [nn.ReLU()]
            blocks.append((f"fc{k + 1}", nn.Sequential(*layers)))
            width = h
        head = [nn.Flatten()] if not self.hidden else []
        blocks.append(("head", nn.Sequential(*head, nn.Linear(width, n_out))))
        return Network(blocks)

    def build_ensemble(self, in_shape, n_out, seeds):
        return BatchedMLP(math.prod(in_shape), self.hidden, n_out, seeds, self.batch_norm)

    def __repr__(self):
        return f"MLP(hidden={self.hidden}, batch_norm={self.batch_norm})"


def make_mlp(hidden=(25, 15, 10), batch_norm: bool = True) -> MLP:
    """Fully connected network: [Linear -> BatchNorm -> ReLU] per hidden size, then a linear head."""
    return MLP(hidden, batch_norm)


def make_linear() -> MLP:
    """Linear (softmax-regression, or linear-Gaussian for real targets) decoder on flattened input."""
    return MLP([], batch_norm=False)


@hookimpl
def register_decoders(register):
    register("mlp", make_mlp, params=[
        Param("hidden", "25-15-10", int_list, "hidden sizes separated by '-' (the RINE paper's 25-15-10)"),
        Param("batch_norm", True, bool, "batch norm after each hidden linear layer"),
    ])
    register("linear", make_linear)
