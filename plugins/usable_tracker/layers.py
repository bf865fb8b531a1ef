"""Which layers to measure: module paths, ``list_layers``, the ``auto`` choice, pooling of maps.

A layer is addressed by its module path in ``model.named_modules()`` (``layer3``, ``layer3.1.conv2``;
a ``usable.Network``'s block names work too), plus two pseudo-layers: ``input`` (the batch the
model is called with) and ``penultimate`` (the input of the final ``nn.Linear`` with
``n_classes`` outputs, i.e. the classifier's features).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from usable import Network, SpecError

INPUT, PENULTIMATE = "input", "penultimate"
POOLS = {"full": "the full output flattened (C·H·W features for a C×H×W map)",
         "avg": "global average over the spatial dims of a (B, C, ...) map (C features)",
         "max": "global maximum over the spatial dims of a (B, C, ...) map (C features)"}


def _shape(out: Any) -> tuple[int, ...] | None:
    if torch.is_tensor(out):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return tuple(out[0].shape)
    return None


@contextlib.contextmanager
def modes_kept(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, and afterwards every submodule's own train/eval flag as it was (a model
    may keep some parts in eval on purpose; ``model.train(True)`` would switch them back)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag


def list_layers(model: nn.Module, example: torch.Tensor | None = None):
    """Module paths of ``model`` that can be measured, in definition order (``input`` and
    ``penultimate`` are accepted too). With an ``example`` batch: ``{path: output shape}`` for
    the modules its forward pass calls, in the order their outputs appear (eval mode, no
    gradients, hooks removed afterwards)."""
    if example is None:
        return [name for name, _ in model.named_modules() if name]
    shapes: dict[str, tuple[int, ...] | None] = {}

    def hook(name):
        def record(module, inputs, out):  # returns None: a hook's return value would replace the output
            shapes.setdefault(name, _shape(out))
        return record
    handles = [mod.register_forward_hook(hook(name)) for name, mod in model.named_modules() if name]
    try:
        with modes_kept(model), torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return shapes


def classifier_of(model: nn.Module, n_classes: int) -> tuple[str, nn.Linear] | None:
    """(path, module) of the last ``nn.Linear`` with ``n_classes`` outputs."""
    found = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == n_classes:
            found = (name, m)
    return found


def _holds_parameters(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def auto_layers(model: nn.Module, n_classes: int, prefix: str = "") -> list[str]:
    """``layers="auto"``: the blocks of a ``usable.Network`` but the last; otherwise the top-level
    children that hold parameters, without the one holding the classifier, keeping only the
    containers among them when there are any (a torchvision ResNet gives layer1..layer4); then
    ``penultimate`` where there is a classifier. A single wrapping child (``self.net``) is looked into."""
    clf = classifier_of(model, n_classes)
    if isinstance(model, Network):
        blocks = model.layer_names[:-1] if len(model.layer_names) > 1 else model.layer_names
        names = [f"{prefix}blocks.{b}" if prefix else b for b in blocks]
    else:
        children = [(n, m) for n, m in model.named_children() if _holds_parameters(m)]
        if clf is not None:
            clf_child = clf[0].split(".")[0]
            if len(children) == 1 and children[0][0] == clf_child and clf[0] != clf_child:
                return auto_layers(children[0][1], n_classes, prefix + clf_child + ".")
            children = [(n, m) for n, m in children if n != clf_child]
        containers = [(n, m) for n, m in children if any(True for _ in m.children())]
        names = [prefix + n for n, _ in (containers or children)]
    if clf is not None:
        names.append(PENULTIMATE)
    if not names:
        raise SpecError(f"layers='auto' found no layers to measure in {type(model).__name__}; name them, e.g. "
                        f"layers={list_layers(model)[:4]} (usable.list_layers(model) lists every module path)")
    return names


def parse_pool(pool: str | dict, layers: Sequence[str]) -> dict[str, str]:
    """One pooling per layer: a name for all, or ``{layer: name}`` (unnamed layers: ``full``)."""
    per = dict(pool) if isinstance(pool, dict) else {name: pool for name in layers}
    unknown = [k for k in per if k not in layers] if isinstance(pool, dict) else []
    if unknown:
        raise SpecError(f"pool names layers {unknown} that are not measured; measured: {list(layers)}")
    out = {name: str(per.get(name, "full")) for name in layers}
    bad = sorted({v for v in out.values() if v not in POOLS})
    if bad:
        raise SpecError(f"pool={bad[0]!r}: choose one of {', '.join(POOLS)} (or a dict layer -> one of them)")
    return out


def pool_features(h: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, ...) -> (B, D): flattened (``full``) or pooled over every dim after the channels."""
    if mode == "full" or h.ndim <= 2:
        return h.reshape(h.shape[0], -1)
    dims = tuple(range(2, h.ndim))
    return h.mean(dim=dims) if mode == "avg" else h.amax(dim=dims)
