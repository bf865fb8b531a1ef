"""Two passes over data with forward hooks on named layers: neural collapse of every layer at once.

The network is measured in eval mode with fixed weights (batch norm uses, and does not update,
its running statistics), in a pass of its own: class means taken while weights move would bias
Σ_W (a pitfall the earlier implementations fell into). Hooks are always removed afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from usable import progress as progress_bar

from .accumulator import DEFAULT_GRAM_MAX_DIM, DEFAULT_RANK_TOL, NCAccumulator, NCStateError

PENULTIMATE = "penultimate"


@dataclass
class MeasureResult:
    """``metrics[layer]``: ``NCAccumulator.compute()`` dict; ``states[layer]``: the accumulator."""

    layers: list[str]
    metrics: dict[str, dict[str, Any]]
    states: dict[str, NCAccumulator]
    classifier_layer: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def find_classifier(model: nn.Module, n_classes: int) -> nn.Linear | None:
    """The last ``nn.Linear`` with ``n_classes`` outputs: the classifier whose input is the penultimate layer."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == n_classes:
            last = m
    return last


def resolve_layers(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, nn.Module | None]:
    """Layer name -> module whose output is hooked (``penultimate`` -> None: input of the classifier).

    Default: every block of a ``usable.Network`` (or every top-level child of another module)
    plus ``penultimate``. Names may be block names (``fc1``) or dotted module paths.
    """
    blocks = getattr(model, "blocks", None)
    if layers is None:
        if isinstance(blocks, nn.ModuleDict):
            names = list(blocks.keys())
        else:
            names = [n for n, _ in model.named_children()]
        layers = names + [PENULTIMATE]
    out: dict[str, nn.Module | None] = {}
    for name in layers:
        if name == PENULTIMATE:
            out[name] = None
            continue
        mod = None
        if isinstance(blocks, nn.ModuleDict) and name in blocks:
            mod = blocks[name]
        else:
            try:
                mod = model.get_submodule(name)
            except AttributeError:
                avail = (list(blocks.keys()) if isinstance(blocks, nn.ModuleDict) else []) + \
                    [n for n, _ in model.named_modules() if n][:40]
                raise NCStateError(f"no layer {name!r} in {type(model).__name__}; available: "
                                   f"{', '.join(avail)}, {PENULTIMATE}") from None
        out[name] = mod
    return out


def _batches(data, batch_size: int):
    """(x, y) tensors sliced into batches, or a re-iterable loader of (x, y) batches: a function
    returning a fresh iterator, and the number of batches (None if the loader has no length)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise NCStateError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        starts = range(0, x.shape[0], batch_size)
        return (lambda: ((x[s:s + batch_size], y[s:s + batch_size]) for s in starts)), len(starts)
    if iter(data) is data:
        raise NCStateError("data is a one-shot iterator; neural collapse reads the data twice, so pass "
                           "(x, y) tensors or a re-iterable loader (e.g. a torch DataLoader)")
    return (lambda: iter(data)), (len(data) if hasattr(data, "__len__") else None)


def _first_tensor(out):
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    raise NCStateError(f"hooked module returned {type(out).__name__}, not a tensor")


class LayerTap:
    """Forward hooks that copy each named layer's output (and the classifier's input) into ``captured``.

    ``names`` is final after ``settle()`` is called on the first batch: if the classifier's input
    equals a hooked block output, it is measured once under that block's name (``classifier_layer``).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None, n_classes: int):
        self.targets = resolve_layers(model, layers)
        self.clf = find_classifier(model, n_classes)
        if PENULTIMATE in self.targets and self.clf is None:
            if layers is not None and PENULTIMATE in layers:
                raise NCStateError(f"layer {PENULTIMATE!r} needs a final nn.Linear with {n_classes} outputs")
            self.targets.pop(PENULTIMATE)
        self.names = list(self.targets)
        self.classifier_layer = PENULTIMATE if PENULTIMATE in self.targets else None
        self.captured: dict[str, torch.Tensor] = {}
        self.settled = False
        self.handles = []
        for name, mod in self.targets.items():
            if mod is None:
                self.handles.append(self.clf.register_forward_pre_hook(
                    lambda m, inp, _n=name: self.captured.__setitem__(_n, _first_tensor(inp))))
            else:
                self.handles.append(mod.register_forward_hook(
                    lambda m, inp, out, _n=name: self.captured.__setitem__(_n, _first_tensor(out))))

    def settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        pen = self.captured.get(PENULTIMATE)
        if pen is not None:
            flat = pen.reshape(pen.shape[0], -1)
            for name in reversed([n for n in self.names if n != PENULTIMATE]):
                other = self.captured[name].reshape(self.captured[name].shape[0], -1)
                if other.shape == flat.shape and torch.equal(other, flat):
                    self.names.remove(PENULTIMATE)
                    self.classifier_layer = name
                    break
        missing = [n for n in self.names if n not in self.captured]
        if missing:
            raise NCStateError(f"layers {missing} were not called in the forward pass")

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@torch.no_grad()
def measure_layers(model: nn.Module, data, layers: Sequence[str] | None = None, n_classes: int | None = None,
                   device: str | torch.device | None = None, *, batch_size: int = 1024,
                   rank_tol: float = DEFAULT_RANK_TOL, weighting: str = "sample", method: str = "auto",
                   gram_max_dim: int = DEFAULT_GRAM_MAX_DIM, classifier: tuple | None = None,
                   pass1_states: dict[str, NCAccumulator] | None = None,
                   progress: bool = False, desc: str = "nc") -> MeasureResult:
    """Neural collapse of every named layer of ``model`` on ``data``: two passes, eval mode, fixed weights.

    ``classifier``: optional (weight, bias) for NC3 of the penultimate layer; by default the last
    ``nn.Linear`` with ``n_classes`` outputs. NC4 compares each layer's nearest class centre with
    the argmax of the model's output (logits, bias included) when that output is (B, n_classes).
    ``pass1_states``: pass-1 accumulators already filled elsewhere (e.g. during training, the
    amortised mode); then only pass 2 runs here.
    """
    if n_classes is None:
        raise NCStateError("n_classes is required")
    if device is not None:
        model.to(device)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    batches, n_batches = _batches(data, batch_size)
    tap = LayerTap(model, layers, n_classes)
    weight, bias = classifier if classifier is not None else (
        (tap.clf.weight, tap.clf.bias) if tap.clf is not None else (None, None))
    accs: dict[str, NCAccumulator] = {}
    was_training = model.training
    model.eval()
    try:
        for pass_no in ((2,) if pass1_states is not None else (1, 2)):
            for xb, yb in progress_bar(batches(), desc=f"{desc} pass {pass_no}", enabled=progress, total=n_batches,
                                       unit="batch"):
                tap.captured.clear()
                out = model(xb.to(dev))
                yb = yb.to(dev)
                if not tap.settled:
                    tap.settle()
                    if pass1_states is not None:
                        if sorted(pass1_states) != sorted(tap.names):
                            raise NCStateError(f"pass-1 states for layers {sorted(pass1_states)} but this "
                                               f"model exposes {sorted(tap.names)}")
                        accs = {n: pass1_states[n] for n in tap.names}
                        for acc in accs.values():
                            acc.finalize_means()
                    else:
                        accs = {n: NCAccumulator(n_classes, rank_tol=rank_tol, weighting=weighting, method=method,
                                                 gram_max_dim=gram_max_dim, name=n) for n in tap.names}
                logits = out if (pass_no == 2 and torch.is_tensor(out) and out.ndim == 2
                                 and out.shape[1] == n_classes) else None
                for name, acc in accs.items():
                    if pass_no == 1:
                        acc.update_pass1(tap.captured[name], yb)
                    else:
                        acc.update_pass2(tap.captured[name], yb, logits=logits)
            if pass_no == 1:
                if not accs:
                    raise NCStateError("no data: the loader yielded no batches")
                for acc in accs.values():
                    acc.finalize_means()
    finally:
        tap.close()
        model.train(was_training)
    clf_layer = tap.classifier_layer
    if weight is not None and clf_layer is not None and accs[clf_layer].dim == weight.shape[1]:
        accs[clf_layer].set_classifier(weight, bias)
    metrics = {name: acc.compute() for name, acc in accs.items()}
    return MeasureResult(layers=list(accs), metrics=metrics, states=accs, classifier_layer=clf_layer,
                         attrs={"model_mode": "eval (fixed weights, batch-norm running statistics, no updates)"})


