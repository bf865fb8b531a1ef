"""Frozen representations h^0..h^{L-1} of a ``usable.Network``, computed once per measurement.

Every decoder of every layer then trains on these cached tensors instead of re-running the
frozen encoder at every step (the thesis's way), which is the main saving of this plugin.
Tensors larger than ``memory_limit_mb`` in total go to ``.npy`` memory maps on disk.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Sequence

import numpy as np
import torch
from torch import nn

from usable import Network, SpecError

BN_MODES = ("batch", "running")


def set_bn_mode(module: nn.Module, mode: str) -> nn.Module:
    """``batch``: batch norm always normalizes with the statistics of the current batch and keeps
    no running statistics (the thesis: train and evaluation behave the same; features are then
    computed in large fixed batches). ``running``: PyTorch's default (running statistics in eval)."""
    if mode not in BN_MODES:
        raise SpecError(f"bn mode {mode!r}; choose one of {', '.join(BN_MODES)}")
    if mode == "batch":
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
                m.num_batches_tracked = None
    return module


def as_network(model: nn.Module) -> Network:
    """The single ``Network`` inside a fitted one-member ensemble (or the network itself)."""
    if isinstance(model, Network):
        return model
    members = getattr(model, "members", None)
    if members is not None and len(members) == 1 and isinstance(members[0], Network):
        return members[0]
    raise TypeError(
        f"layer-wise analyses need a usable.Network of named blocks, got {type(model).__name__}; "
        "use a decoder whose build() returns usable.Network (mlp, cnn_plus, cnn_minus, timm:...)"
    )


def _store(shape, dtype, memory: bool, folder: str | None):
    if memory:
        return torch.empty(shape, dtype=dtype)
    fd, path = tempfile.mkstemp(suffix=".npy", dir=folder)
    os.close(fd)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=tuple(shape))
    return torch.from_numpy(arr)


@torch.no_grad()
def layer_features(net: Network, x: torch.Tensor, layers: Sequence[int], *, batch_size: int = 1024,
                   memory_limit_mb: float = 2048.0, folder: str | None = None,
                   device: torch.device | None = None) -> dict[int, torch.Tensor]:
    """h^l for each l in ``layers`` (0 = the raw input x, l = output of block l), float32 on CPU.

    The network runs in eval mode with fixed weights (so batch norm in ``running`` mode uses its
    running statistics and nothing is updated); in ``batch`` mode each chunk of ``batch_size``
    samples is normalized by its own statistics, as during training.
    """
    layers = sorted(set(int(l) for l in layers))
    L = len(net.layer_names)
    if any(l < 0 or l >= L for l in layers):
        raise SpecError(f"layers must lie in 0..{L - 1} for a network with blocks {net.layer_names}")
    device = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    blocks = list(net.blocks.values())
    N = x.shape[0]
    out: dict[int, torch.Tensor] = {}
    # shapes from a first small forward pass, to size (and place) the caches
    probe = {}
    h = x[: min(2, N)].to(device).float()
    for l in range(max(layers) + 1):
        if l in layers:
            probe[l] = h.shape[1:]
        if l < max(layers):
            h = blocks[l](h)
    total_mb = sum(N * math.prod(s) * 4 for s in probe.values()) / 2**20
    memory = total_mb <= memory_limit_mb
    for l in layers:
        out[l] = _store((N, *probe[l]), torch.float32, memory, folder)
    for start in range(0, N, batch_size):
        h = x[start:start + batch_size].to(device).float()
        for l in range(max(layers) + 1):
            if l in out:
                out[l][start:start + h.shape[0]] = h.cpu()
            if l < max(layers):
                h = blocks[l](h)
    net.train(was_training)
    return out
