"""Shared plumbing of ``dib`` and ``track``: the main network as a Network, layer choice,
balanced subsets, the main network's own loss and accuracy, neural collapse on cached features."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from usable import Network, SourceData, Split
from usable.ensemble import Memberwise

from .features import as_network, set_bn_mode


class NetworkDecoder(Memberwise):
    """Trains the plain ``usable.Network`` members of a decoder plugin (not a natively batched
    stand-in such as BatchedMLP, whose layers cannot be addressed) with the chosen batch-norm mode."""

    def __init__(self, decoder, bn_mode: str = "batch"):
        super().__init__(decoder)
        self.bn_mode = bn_mode

    def build(self, in_shape, n_out) -> Network:
        net = super().build(in_shape, n_out)
        if not isinstance(net, Network):
            raise TypeError(f"decoder {self.decoder!r} built a {type(net).__name__}, not a usable.Network "
                            "of named blocks; dib and track need addressable layers")
        return set_bn_mode(net, self.bn_mode)

    def __repr__(self):
        return f"NetworkDecoder({self.decoder!r}, bn_mode={self.bn_mode})"


def parse_layers(text, n_blocks: int) -> list[int]:
    """'all' -> 0..L-1; '0,2,3' -> those (0 = the input, l = output of block l)."""
    if text is None or str(text).strip().lower() in ("", "all"):
        return list(range(n_blocks))
    try:
        out = sorted({int(t) for t in str(text).replace(";", ",").split(",") if t.strip()})
    except ValueError:
        raise ValueError(f"layers={text!r}: give 'all' or comma-separated layer indices such as 0,1,3") from None
    bad = [l for l in out if l < 0 or l >= n_blocks]
    if bad:
        raise ValueError(f"layers {bad} do not exist: this network has layers 0..{n_blocks - 1} "
                         f"(0 = input, then the outputs of all blocks but the last)")
    return out


def balanced_subset(data: SourceData, size: int, seed: int) -> tuple[SourceData, dict]:
    """A class-balanced training subset of ``size`` samples (size // C per class, in dataset
    order after a seeded shuffle), as the thesis downsamples training sets to the test-set size."""
    y = data.train.y.numpy()
    C = int(data.n_classes)
    per = size // C
    counts = np.bincount(y, minlength=C)
    if per < 1:
        raise ValueError(f"a balanced subset of {size} samples has no sample per class (C = {C})")
    if counts.min() < per:
        raise ValueError(f"balanced subset: {per} samples per class requested but class "
                         f"{int(counts.argmin())} has only {int(counts.min())}; use balance=false or fewer samples")
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(C)]))
    idx = torch.from_numpy(keep)
    sub = SourceData(Split([x[idx] for x in data.train.xs], data.train.y[idx]), data.test,
                     list(data.names), data.target, data.n_classes, data.class_names, dict(data.attrs))
    return sub, {"balanced_per_class": per, "train_size": int(len(keep))}


@torch.no_grad()
def loss_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float, torch.Tensor]:
    """The main network's cross-entropy (nats) and accuracy on a split, plus its logits."""
    was = model.training
    model.eval()  # fixed weights; in batch-norm "batch" mode each chunk uses its own statistics
    logits = torch.cat([model(x[s:s + batch_size].float()) for s in range(0, x.shape[0], batch_size)]).double()
    model.train(was)
    loss = float(nn.functional.cross_entropy(logits, y))
    acc = float((logits.argmax(dim=1) == y).double().mean())
    return loss, acc, logits


def classifier_for(net: Network, dim: int):
    """(W, b) of the network's final linear layer if it reads a ``dim``-dimensional input."""
    last = None
    for m in net.blocks[net.layer_names[-1]].modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None or last.in_features != dim:
        return None
    return last.weight.detach().double(), (None if last.bias is None else last.bias.detach().double())


def nc_layer(h: torch.Tensor, y: torch.Tensor, n_classes: int, logits: torch.Tensor | None,
             classifier=None, batch_size: int = 4096, rank_tol: float = 1e-6) -> dict[str, float]:
    """Neural-collapse scalars of one cached representation with the usable_nc accumulator (two
    passes over the same fixed features)."""
    from usable_nc import NCAccumulator
    acc = NCAccumulator(n_classes, rank_tol=rank_tol)
    N = h.shape[0]
    for s in range(0, N, batch_size):
        acc.update_pass1(h[s:s + batch_size], y[s:s + batch_size])
    acc.finalize_means()
    for s in range(0, N, batch_size):
        acc.update_pass2(h[s:s + batch_size], y[s:s + batch_size],
                         logits=None if logits is None else logits[s:s + batch_size])
    if classifier is not None:
        acc.set_classifier(*classifier)
    out = {}
    for k, v in acc.compute().items():
        if isinstance(v, (int, float, np.floating, np.integer)) or (torch.is_tensor(v) and v.numel() == 1):
            out[k] = float(v)
    return out
