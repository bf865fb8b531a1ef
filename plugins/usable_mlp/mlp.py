"""The MLP decoder family: plain ``usable.Network`` members, or E members natively batched."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from usable import Network


class MLP:
    def __init__(self, hidden: Sequence[int], batch_norm: bool = True):
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
        self.hidden, self.batch_norm, self.n_members = list(hidden), bool(batch_norm), len(seeds)
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

    def layers(self) -> list[BatchedLinear]:
        """The linear layers in order, each with ``.norm``: the batch norm that follows it (or None)."""
        mods = list(self.net)
        out = []
        for k, m in enumerate(mods):
            if isinstance(m, BatchedLinear):
                nxt = mods[k + 1] if k + 1 < len(mods) else None
                m.norm = nxt if isinstance(nxt, BatchedBatchNorm) else None
                out.append(m)
        return out

    @staticmethod
    def fused_epoch(models, data, objective, opt, beta, factors, cfg, want_div, perms):
        """A whole epoch in the compiled kernel (see fused.py), or None to use the generic loop."""
        from .fused import fused_epoch
        return fused_epoch(models, data, objective, opt, beta, factors, cfg, want_div, perms)

    @staticmethod
    def fused_predict(models, xs, n_members, member_data, device):
        """Eval-mode outputs on a whole split from the compiled kernel, or None for the generic path."""
        from .fused import fused_predict
        return fused_predict(models, xs, n_members, member_data, device)
