"""One forward pass over a split with fixed weights: every measured layer's output, cached.

Neural collapse (two passes over the cache), the main network's loss and accuracy, and the DIB
decoders all read the same cache, so the model runs once per split and measurement. Outputs are
cached as they come (CPU; float32, or float64 for a float64 model); above ``memory_limit_mb`` in
total they go to memory-mapped ``.npy`` files in a temporary folder, removed after the epoch.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from usable import DataError, plugin

from .data import MeasureData
from .layers import INPUT


@dataclass
class SplitCache:
    """``feats[layer]``: (N, *shape) raw outputs; ``y`` (N,); ``logits`` (N, C) or None."""

    feats: dict[str, torch.Tensor]
    y: torch.Tensor
    logits: torch.Tensor | None
    names: list[str]                      # measured layers in the order their outputs appear
    classifier_layer: str | None          # the layer whose features feed the classifier (NC3)
    classifier: tuple[torch.Tensor, torch.Tensor | None] | None
    example: Any = None                   # a few inputs (for the chain check)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _to(x: Any, device) -> Any:
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def _cache_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


class _Rows:
    """Rows of one layer: preallocated (in memory or a memory map) when the total is known."""

    def __init__(self, total: int | None, first: torch.Tensor, memmap_dir: str | None):
        self.total, self.parts, self.n = total, [], 0
        self.buf = None
        if total is not None:
            dtype = _cache_dtype(first)
            shape = (total, *first.shape[1:])
            if memmap_dir is None:
                self.buf = torch.empty(shape, dtype=dtype)
            else:
                fd, path = tempfile.mkstemp(suffix=".npy", dir=memmap_dir)
                os.close(fd)
                arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64 if dtype == torch.float64
                                                else np.float32, shape=shape)
                self.buf = torch.from_numpy(arr)

    def add(self, t: torch.Tensor) -> None:
        t = t.detach().to("cpu", _cache_dtype(t))
        if self.buf is None:
            self.parts.append(t)
        else:
            if self.n + t.shape[0] > self.total:
                raise DataError(f"the measurement data yielded more than its {self.total} samples")
            self.buf[self.n:self.n + t.shape[0]] = t
        self.n += t.shape[0]

    def result(self) -> torch.Tensor:
        if self.buf is None:
            return torch.cat(self.parts)
        if self.n != self.total:
            raise DataError(f"the measurement data yielded {self.n} samples, expected {self.total}")
        return self.buf


@torch.no_grad()
def collect(model: nn.Module, data: MeasureData, layers: list[str], n_classes: int, device: torch.device,
            output: Callable | None, memory_limit_mb: float, folder: str) -> SplitCache:
    """Features of ``layers`` on one split (the model must already be in eval mode)."""
    nc = plugin("nc")
    hooked = [n for n in layers if n != INPUT]
    tap = nc.LayerTap(model, hooked, n_classes) if hooked else None
    rows: dict[str, _Rows] = {}
    ys, logits_rows, names, example = None, None, None, None
    try:
        for xb, yb in data.batches():
            if tap is not None:
                tap.captured.clear()
            xd = _to(xb, device)
            out = model(xd)
            got = {} if tap is None else dict(tap.captured)
            if names is None:
                if tap is not None:
                    tap.settle()
                order = [n for n in got if tap is not None and n in tap.names]
                names = ([INPUT] if INPUT in layers else []) + order
                example = xd[:8] if torch.is_tensor(xd) else xd
            if INPUT in names:
                if not torch.is_tensor(xd):
                    raise DataError("layer 'input' needs the model's input to be one tensor")
                got[INPUT] = xd.float() if not xd.is_floating_point() else xd
            lg = output(out) if output is not None else out
            lg = lg if (torch.is_tensor(lg) and lg.ndim == 2 and lg.shape[1] == n_classes) else None
            if not rows:
                total = data.n
                need = sum(math.prod(got[n].shape[1:]) * 4 for n in names) * (total or 0) / 2**20
                where = tempfile.mkdtemp(dir=folder) if (total is not None and need > memory_limit_mb) else None
                rows = {n: _Rows(total, got[n], where) for n in names}
                ys = _Rows(None, yb, None)
                logits_rows = _Rows(None, lg, None) if lg is not None else None
            for n in names:
                rows[n].add(got[n])
            ys.parts.append(torch.as_tensor(yb).reshape(-1).long().cpu())
            if logits_rows is not None and lg is not None:
                logits_rows.add(lg)
    finally:
        if tap is not None:
            tap.close()
    if not rows:
        raise DataError(f"the {data.split} data yielded no batches")
    feats = {n: rows[n].result() for n in names}
    y = torch.cat(ys.parts)
    logits = logits_rows.result() if logits_rows is not None else None
    clf = None
    if tap is not None and tap.clf is not None:
        clf = (tap.clf.weight.detach().double().cpu(),
               None if tap.clf.bias is None else tap.clf.bias.detach().double().cpu())
    return SplitCache(feats, y, logits, names, tap.classifier_layer if tap is not None else None, clf, example,
                      {n: tuple(feats[n].shape[1:]) for n in names})
