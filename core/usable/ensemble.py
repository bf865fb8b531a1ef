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
