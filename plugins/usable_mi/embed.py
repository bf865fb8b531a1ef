"""The ``mi_mlp`` decoder family: a smooth MLP with a linear skip, y = W_out·σ(…σ(W_1·x)) + W_skip·x.

Why another MLP: a critic's scores for strongly dependent pairs are large and curved (for a
Gaussian pair with ρ = 0.998, f(x, y) ≈ 255·x·y − 127·(x² + y²)), and the bounds need them to
within a few hundredths of a nat. The skip gives the linear part exactly; a smooth activation
(softplus by default) gives the curvature with few units, where piecewise-linear ReLU units need
many. Measured on the 5 × 5 Gaussian at 1 bit (n = 10,000, 30 epochs, last epoch, 2 seeds):
held-out InfoNCE 0.97 bit with mi_mlp:hidden=64 against 0.94 and 0.90 with the ReLU ``mlp``
(hidden=32 and hidden=64+64, no batch norm), which overfit; the sample's own truth is 0.98.

E members are natively batched (stacked weights, batched matmuls); member e is initialised from
its own seed (uniform ±1/√fan-in, as ``nn.Linear``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"softplus": nn.Softplus, "silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU}


class _StackedLinear(nn.Module):
    """E independent affine maps as one batched matmul: (E, B, I) -> (E, B, O)."""

    def __init__(self, n_in: int, n_out: int, generators: Sequence[torch.Generator], bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(max(n_in, 1))
        w = torch.empty(len(generators), n_in, n_out)
        b = torch.empty(len(generators), 1, n_out)
        for e, g in enumerate(generators):
            w[e].uniform_(-bound, bound, generator=g)
            b[e].uniform_(-bound, bound, generator=g)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b) if bias else None

    def forward(self, x):
        return torch.bmm(x, self.weight) if self.bias is None else torch.baddbmm(self.bias, x, self.weight)


class SkipMLP(nn.Module):
    """(E, B, *in_shape) -> (E, B, n_out): smooth MLP plus a linear skip from the input."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, seeds: Sequence[int], activation: str,
                 skip: bool = True):
        super().__init__()
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [_StackedLinear(width, h, gens), ACTIVATIONS[activation]()]
            width = h
        layers.append(_StackedLinear(width, n_out, gens))
        self.body = nn.Sequential(*layers)
        self.skip = _StackedLinear(n_in, n_out, gens, bias=False) if skip and hidden else None

    def forward(self, x):
        x = x.reshape(x.shape[0], x.shape[1], -1).float()
        out = self.body(x)
        return out if self.skip is None else out + self.skip(x)


class _Single(nn.Module):
    """One member as a plain module (B, *in_shape) -> (B, n_out)."""

    def __init__(self, net: SkipMLP):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.unsqueeze(0))[0]


class MIMLP:
    def __init__(self, hidden: Sequence[int], activation: str, skip: bool):
        self.hidden, self.activation, self.skip = list(hidden), activation, skip

    def build(self, in_shape, n_out):
        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # make_ensemble seeds the global generator per member
        return _Single(SkipMLP(math.prod(in_shape), self.hidden, n_out, [seed], self.activation, self.skip))

    def build_ensemble(self, in_shape, n_out, seeds):
        return SkipMLP(math.prod(in_shape), self.hidden, n_out, seeds, self.activation, self.skip)

    def __repr__(self):
        return f"MIMLP(hidden={self.hidden}, activation={self.activation!r}, skip={self.skip})"
