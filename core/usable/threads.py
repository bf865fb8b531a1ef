"""How many CPU threads a fit uses when ``threads`` is not given: chosen from its arithmetic.

Extra threads only pay once a training step has enough multiply-adds to split: below that they
add synchronisation to every small kernel, and on a shared machine a thread that waits for a
busy core stalls every kernel. benchmarks/threads.py measures the crossover (2-core machine,
eager steps: the paper's MLP pair 3.0 ms at 1 thread, 229 ms at 2; a 20-member 512-512 MLP
(2.3e9 multiply-adds) still 3× slower at 2; a ResNet-18 of width 16 (1.4e10) 2.1× faster). The
count: one multiply-add per parameter per sample, convolutions once per output position.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PARALLEL_MACS = 1e10  # multiply-adds per training step (forward + backward) from which threads pay


def sample_macs(model: nn.Module, x1: torch.Tensor, n_members: int) -> float:
    """Forward multiply-adds of the ensemble for one sample x1 (no batch dim) per member, estimated:
    one per parameter (exact for the weights of dense and batched linear layers; biases and norms
    add a few per cent), convolution weights once per output position (found by a probe forward in
    eval mode, which leaves batch-norm statistics alone)."""
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    conv_ids = {id(p) for m in convs for p in m.parameters(recurse=False)}
    dense = sum(p.numel() for p in model.parameters() if id(p) not in conv_ids)
    if not convs:
        return float(dense)
    positions: dict[int, int] = {}
    hooks = [m.register_forward_hook(lambda mod, i, out: positions.__setitem__(id(mod), out[0, 0].numel()))
             for m in convs]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x1.to(next(model.parameters()).device).expand(n_members, 1, *x1.shape))
    except Exception:  # an unusual forward: count convolutions once per weight
        positions.clear()
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    conv = sum(m.weight.numel() * positions.get(id(m), 1) for m in convs)
    return float(dense + conv)


def step_macs(models: Sequence[nn.Module], samples: Sequence[torch.Tensor], n_members: int, batch: int) -> float:
    """Multiply-adds of one training step of every source's ensemble (backward ≈ 2× forward);
    ``samples``: one input per source, without batch dim."""
    return 3.0 * batch * sum(sample_macs(m, x, n_members) for m, x in zip(models, samples))


def choose_threads(macs: float, device: torch.device, available: int) -> int:
    """1 thread below PARALLEL_MACS per step (and for GPU fits, whose host thread only launches
    kernels), else ``available`` (the process's torch setting)."""
    if device.type != "cpu" or macs < PARALLEL_MACS:
        return 1
    return max(1, available)
