"""Is the model a chain at the measured layers? Then DIB's decoders are its own suffixes.

A module R is a chain when its forward is its children applied one after another (a
``usable.Network``'s blocks, an ``nn.Sequential``, or a torchvision ResNet, whose forward also
flattens before ``fc``: a flatten is put in front of any ``nn.Linear`` that is fed a map). That
is checked, not assumed: the children run in order on an example batch must give the model's
own output. The measured layers must be children of one such R (or ``input``, or
``penultimate`` when the classifier is R's last child); the decoder of layer l is then a fresh,
re-initialised copy of the children after it (``usable.Network.suffix``), as for a network built
by ``usable`` itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from usable import Network

from .layers import INPUT, PENULTIMATE


@dataclass
class Chain:
    """``network``: a ``usable.Network`` over the user's own modules (not copies); ``cut[layer]``:
    index of the first block after the layer (0 for ``input``); ``root``: the module path of R."""

    network: Network
    cut: dict[str, int]
    root: str

    def describe(self) -> str:
        where = f"module {self.root!r}" if self.root else "the model"
        return (f"suffix: fresh re-initialised copies of the blocks of {where} after the layer "
                f"({' -> '.join(self.network.layer_names)}; chain checked on a batch)")


def _owner(model: nn.Module, path: str) -> tuple[str, nn.Module, str] | None:
    """(root path, root module, child name) for a layer path; a ``usable.Network`` owns its blocks."""
    parent, _, child = path.rpartition(".")
    try:
        mod = model.get_submodule(parent) if parent else model
    except AttributeError:
        return None
    if isinstance(mod, Network) and child in mod.blocks:
        return parent, mod, child
    if isinstance(mod, nn.ModuleDict):  # "blocks.fc1" of a Network
        gparent, _, attr = parent.rpartition(".")
        owner = model.get_submodule(gparent) if gparent else model
        if isinstance(owner, Network) and attr == "blocks":
            return gparent, owner, child
    return parent, mod, child


def _children(root: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(root.blocks.items()) if isinstance(root, Network) else list(root.named_children())


@torch.no_grad()
def find_chain(model: nn.Module, layers: list[str], classifier_path: str | None, example) -> Chain | str:
    """The chain the layers cut, or the reason there is none (a one-line string)."""
    owners = {}
    for name in layers:
        if name == INPUT:
            continue
        path = classifier_path if name == PENULTIMATE else name
        if path is None:
            return "penultimate has no classifier"
        found = _owner(model, path)
        if found is None:
            return f"layer {name!r} has no parent module"
        owners[name] = found
    roots = {o[0] for o in owners.values()}
    if len(roots) > 1:
        return f"the layers are children of different modules ({', '.join(sorted(repr(r) for r in roots))})"
    root_path = next(iter(roots)) if roots else ""
    root = next(iter(owners.values()))[1] if owners else model
    children = _children(root)
    if not children:
        return f"module {root_path!r} has no children to cut"
    if not torch.is_tensor(example):
        return "the model's input is not one tensor"
    blocks, h = [], example
    try:
        for name, child in children:
            block = child
            if isinstance(child, nn.Linear) and h.ndim > 2:  # the implicit flatten of e.g. ResNet.forward
                block = nn.Sequential(nn.Flatten(), child)
            h = block(h)
            blocks.append((name, block))
        out = model(example)
    except Exception as exc:  # any failure means: not a chain (the reason goes into attrs)
        return f"applying the children of {root_path or 'the model'!r} in order fails ({type(exc).__name__})"
    if not (torch.is_tensor(out) and torch.is_tensor(h) and out.shape == h.shape
            and torch.allclose(out.float(), h.float(), rtol=1e-4, atol=1e-5)):
        return f"the forward of the model is not its children of {root_path or 'the model'!r} applied in order"
    names = [n for n, _ in children]
    cut = {INPUT: 0} if INPUT in layers else {}
    for layer, (_, _, child) in owners.items():
        k = names.index(child)
        if layer == PENULTIMATE:
            if k != len(names) - 1:
                return "the classifier is not the last block of the chain"
            cut[layer] = k
        else:
            cut[layer] = k + 1
    if len(set(cut.values())) != len(cut):
        return "two layers cut the chain at the same place"
    if max(cut.values()) >= len(names):
        return "a layer is the chain's last block (its output is the model's output; nothing is left to decode with)"
    return Chain(Network(blocks), cut, root_path)
