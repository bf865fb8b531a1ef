"""The main network's own loss and accuracy, and neural collapse of a cached representation
(through the nc plugin's accumulator: ``usable.plugin("nc")``, declared as a requirement)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from usable import Network, plugin


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
    acc = plugin("nc").NCAccumulator(n_classes, rank_tol=rank_tol)
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
