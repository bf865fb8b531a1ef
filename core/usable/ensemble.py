"""Decoders as ensembles: E members (seeds × β values) trained as one model.

A decoder plugin returns an object with ``build(in_shape, n_out) -> nn.Module`` (one member,
(B, *in_shape) -> (B, n_out)). It may also offer ``build_ensemble(in_shape, n_out, seeds)``, a
natively batched model ((E, B, *in_shape) -> (E, B, n_out)) with stacked parameters: that is the
main speed lever for small decoders on CPU. Anything else is wrapped in ``ModuleEnsemble``, which
loops over members. Member e is initialised from its own seed either way, so an ensemble member
starts from the same weights as a one-member fit with that seed.
"""
from __future__ import annotations

import copy
import math
from typing import Iterable, Sequence

import torch
from torch import nn


def member_seed(seed: int, salt: int = 0) -> int:
    """Seed for (run seed, source index): distinct sources get distinct initialisations."""
    return (int(seed) * 1_000_003 + int(salt) * 7919) % (2**63 - 1)


class ModuleEnsemble(nn.Module):
    """E independent copies of any module, applied member by member: (E, B, ...) -> (E, B, ...)."""

    def __init__(self, members: Iterable[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x[e]) for e, m in enumerate(self.members)])

    def member(self, e: int) -> nn.Module:
        return self.members[e]


class Memberwise:
    """A decoder with its ``build_ensemble`` hidden: members are then the plugin's own networks
    (e.g. ``usable.Network`` of named blocks), which layer-wise analyses can hook and slice."""

    def __init__(self, decoder):
        self.decoder = decoder

    def build(self, in_shape, n_out):
        return self.decoder.build(in_shape, n_out)

    def __repr__(self):
        return f"Memberwise({self.decoder!r})"


def make_ensemble(decoder, in_shape: Sequence[int], n_out: int, seeds: Sequence[int],
                  salt: int = 0) -> nn.Module:
    """Build an ensemble of ``len(seeds)`` members of ``decoder`` for one source."""
    seeds = [member_seed(s, salt) for s in seeds]
    if hasattr(decoder, "build_ensemble"):
        return decoder.build_ensemble(tuple(in_shape), int(n_out), seeds)
    members = []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            members.append(decoder.build(tuple(in_shape), int(n_out)))
    return ModuleEnsemble(members)


# --------------------------------------------------------------------------------------------
# Natively batched layers for small fully connected decoders.
# --------------------------------------------------------------------------------------------
class BatchedLinear(nn.Module):
    """E independent linear maps, one batched matmul: (E, B, I) -> (E, B, O).

    Initialised like ``nn.Linear`` (uniform ±1/sqrt(I)), member e from generator e.
    """

    def __init__(self, n_in: int, n_out: int, generators: Sequence[torch.Generator]):
        super().__init__()
        E = len(generators)
        bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
        w = torch.empty(E, n_in, n_out)
        b = torch.empty(E, 1, n_out)
        for e, g in enumerate(generators):
            w[e].uniform_(-bound, bound, generator=g)
            b[e].uniform_(-bound, bound, generator=g)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class _BatchNormTrain(torch.autograd.Function):
    """Training-mode batch norm over dim 1 of (E, B, F) with a hand-written backward.

    Same math as autograd through mean/var/rsqrt, in about half the kernels: on CPU, for the
    small decoders this is for, a step's cost is mostly the number of kernels, not their size.
    Returns (y, batch mean, biased batch variance); the last two are for the running statistics.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=1, keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(dim=1, keepdim=True)
        inv = torch.rsqrt(var + eps)
        xhat = xc.mul_(inv)
        ctx.save_for_backward(xhat, inv, weight)
        ctx.mark_non_differentiable(mean, var)
        return torch.addcmul(bias, xhat, weight), mean, var

    @staticmethod
    def backward(ctx, g, _g_mean, _g_var):
        xhat, inv, weight = ctx.saved_tensors
        n = g.shape[1]
        db = g.sum(dim=1, keepdim=True)
        dw = (g * xhat).sum(dim=1, keepdim=True)
        dx = None
        if ctx.needs_input_grad[0]:
            # d/dx of w·(x−μ)/σ: (g − mean(g) − x̂·mean(g·x̂))·w/σ
            dx = (g - db / n - xhat * (dw / n)) * (weight * inv)
        return dx, dw, db, None


class BatchedBatchNorm(nn.Module):
    """Batch norm over the batch dim of (E, B, F), separately per member, with running stats
    (the same numbers as ``nn.BatchNorm1d`` applied to each member alone)."""

    def __init__(self, n_features: int, n_members: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_members, 1, n_features))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, n_features))
        self.register_buffer("running_mean", torch.zeros(n_members, 1, n_features))
        self.register_buffer("running_var", torch.ones(n_members, 1, n_features))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return torch.addcmul(self.bias, (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps),
                                 self.weight)
        y, mean, var = _BatchNormTrain.apply(x, self.weight, self.bias, self.eps)
        n = x.shape[1]
        if n > 1:  # same update rule as torch: unbiased variance into the running estimate
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * (n / (n - 1)), self.momentum)
        return y


class BatchedMLP(nn.Module):
    """E members of flatten -> [Linear -> BN -> ReLU]* -> Linear, as batched matmuls."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, seeds: Sequence[int],
                 batch_norm: bool = True):
        super().__init__()
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers.append(BatchedLinear(width, h, gens))
            if batch_norm:
                layers.append(BatchedBatchNorm(h, len(seeds)))
            layers.append(nn.ReLU())
            width = h
        layers.append(BatchedLinear(width, n_out, gens))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], x.shape[1], -1).float())


# --------------------------------------------------------------------------------------------
# Networks made of named blocks: what layer-wise analyses (nc, dib) work on.
# --------------------------------------------------------------------------------------------
class Network(nn.Module):
    """A decoder as an ordered sequence of named blocks; layer l is the output of block l.

    ``layer_names`` lists the blocks; ``suffix(l)`` is a fresh (re-initialised) copy of the
    blocks after layer l, the decoder family the decodable information bottleneck uses.
    """

    def __init__(self, blocks: dict[str, nn.Module] | Sequence[tuple[str, nn.Module]]):
        super().__init__()
        self.blocks = nn.ModuleDict(dict(blocks))

    @property
    def layer_names(self) -> list[str]:
        return list(self.blocks.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks.values():
            x = block(x)
        return x

    def forward_from(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Run blocks ``start``.. on a representation h (the output of block start-1)."""
        for block in list(self.blocks.values())[start:]:
            h = block(h)
        return h

    def suffix(self, start: int, reinit: bool = True) -> "Network":
        items = list(self.blocks.items())[start:]
        net = Network([(k, copy.deepcopy(v)) for k, v in items])
        strip_hooks(net)  # hooks survive deepcopy: a copy must not write into the original's buffers
        if reinit:
            reset_parameters(net)
        return net


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise every submodule that knows how (fresh weights, cleared BN statistics)."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
        elif m is module and hasattr(m, "reset_parameters") and not list(m.children()):
            m.reset_parameters()


def strip_hooks(module: nn.Module) -> None:
    """Remove forward (pre-)hooks from every submodule, e.g. after ``copy.deepcopy``."""
    for m in module.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
