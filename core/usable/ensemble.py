"""Decoders as ensembles: E members (seeds × β values) trained as one model.

A decoder plugin returns an object with ``build(in_shape, n_out) -> nn.Module`` (one member,
(B, *in_shape) -> (B, n_out)). It may also offer ``build_ensemble(in_shape, n_out, seeds)``, a
natively batched model ((E, B, *in_shape) -> (E, B, n_out)) with stacked parameters: that is the
main speed lever for small decoders on CPU. Anything else is wrapped in ``ModuleEnsemble``, which
loops over members, or, when asked (``FitConfig.ensemble``; by default on GPUs), in
``VmapEnsemble``: the members' parameters and buffers stacked and one ``torch.func.vmap`` call per
forward, batch norm per member. Member e is initialised from its own seed every way, so an
ensemble member starts from the same weights as a one-member fit with that seed.

Why not vmap on CPU by default: there a vmapped convolution becomes one grouped convolution,
which measured 1.7× slower than the members' own convolutions (ResNet-18 of width 16, 5 members,
32 images of 3×32×32 a step); the arithmetic, not the dispatch, dominates such steps on a CPU.
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


class VmapEnsemble(nn.Module):
    """E copies of one architecture with stacked parameters and buffers (member axis first), run
    as one vmapped functional call: (E, B, ...) -> (E, B, ...). Batch norm keeps per-member
    running statistics (the stacked buffers are updated in place through vmap). A module vmap
    cannot take (data-dependent Python control flow on tensor values, ``.item()``, in-place
    writes into tensors it did not receive) is run member by member on the same stacked storage
    after one warning, with the same numbers."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        from torch.func import stack_module_state
        members = list(members)
        params, buffers = stack_module_state(members)
        self._base = [copy.deepcopy(members[0]).to("meta")]  # a list: not a submodule, no state
        self._pnames, self._bnames = list(params), list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(v.detach().clone()) for v in params.values()])
        for k, v in enumerate(buffers.values()):
            self.register_buffer(f"buffer_{k}", v.clone())
        self.n_members = len(members)
        self.vmap_error: str | None = None

    def _state(self):
        return (dict(zip(self._pnames, self.stacked)),
                {n: getattr(self, f"buffer_{k}") for k, n in enumerate(self._bnames)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap
        base = self._base[0].train(self.training)
        params, buffers = self._state()
        if self.vmap_error is None:
            try:
                return vmap(lambda p, b, xe: functional_call(base, (p, b), (xe,)), randomness="different")(
                    params, buffers, x)
            except (RuntimeError, NotImplementedError, ValueError) as exc:
                import warnings
                self.vmap_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                warnings.warn(f"{type(base).__name__} cannot be vmapped ({self.vmap_error}); its members "
                              "run one by one", RuntimeWarning, stacklevel=2)
        return torch.stack([functional_call(base, ({k: v[e] for k, v in params.items()},
                                                   {k: v[e] for k, v in buffers.items()}), (x[e],))
                            for e in range(self.n_members)])

    def member(self, e: int) -> nn.Module:
        """Member e as an ordinary module (a copy of its current weights and buffers)."""
        params, buffers = self._state()
        m = copy.deepcopy(self._base[0]).to_empty(device=self.stacked[0].device)
        m.load_state_dict({**{k: v[e] for k, v in params.items()}, **{k: v[e] for k, v in buffers.items()}})
        return m.train(self.training)


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
                  salt: int = 0, vmap: bool = False) -> nn.Module:
    """Build an ensemble of ``len(seeds)`` members of ``decoder`` for one source; ``vmap``: stack
    members that have no native ensemble into one ``VmapEnsemble`` instead of a ``ModuleEnsemble``."""
    seeds = [member_seed(s, salt) for s in seeds]
    if hasattr(decoder, "build_ensemble"):
        return decoder.build_ensemble(tuple(in_shape), int(n_out), seeds)
    members = []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            members.append(decoder.build(tuple(in_shape), int(n_out)))
    return VmapEnsemble(members) if vmap and not isinstance(decoder, Memberwise) else ModuleEnsemble(members)


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
