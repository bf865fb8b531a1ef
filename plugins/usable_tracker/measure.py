"""Neural collapse, loss and accuracy, and sufficiency/minimality of one split's cached features.

NC uses the nc plugin's ``NCAccumulator`` exactly as ``usable_nc.measure_layers`` does (pass 1,
``finalize_means``, pass 2 with the model's logits for NC4, the classifier's weights for NC3 on
the layer that feeds it), batch by batch over the cache. Under ``torch.distributed`` each process
adds its own share and the states are summed with ``all_reduce_states`` after each pass (the
accumulator's exact merge), so every process ends with the statistics of all the data.
"""
from __future__ import annotations

from typing import Any

import torch

from usable import plugin

from .data import all_sum
from .features import SplitCache
from .layers import pool_features


def nc_split(cache: SplitCache, pools: dict[str, str], n_classes: int, device: torch.device, batch_size: int,
             nc_options: dict[str, Any], distributed: bool) -> dict[str, dict[str, Any]]:
    """``NCAccumulator.compute()`` of every layer on one split."""
    nc = plugin("nc")
    names = cache.names
    accs = {n: nc.NCAccumulator(n_classes, name=n, **nc_options) for n in names}
    N = cache.y.shape[0]
    spans = [(s, min(N, s + batch_size)) for s in range(0, N, batch_size)]
    for s, e in spans:
        yb = cache.y[s:e].to(device)
        for n in names:
            accs[n].update_pass1(pool_features(cache.feats[n][s:e].to(device), pools[n]), yb)
    if distributed:
        nc.all_reduce_states(accs)
    for acc in accs.values():
        acc.finalize_means()
    for s, e in spans:
        yb = cache.y[s:e].to(device)
        lg = None if cache.logits is None else cache.logits[s:e].to(device)
        for n in names:
            accs[n].update_pass2(pool_features(cache.feats[n][s:e].to(device), pools[n]), yb, logits=lg)
    if distributed:
        nc.all_reduce_states(accs)
    clf_layer = cache.classifier_layer
    if cache.classifier is not None and clf_layer in accs and accs[clf_layer].dim == cache.classifier[0].shape[1]:
        accs[clf_layer].set_classifier(*cache.classifier)
    return {n: acc.compute() for n, acc in accs.items()}


def loss_accuracy(cache: SplitCache, distributed: bool) -> tuple[float, float]:
    """The model's mean cross-entropy (nats; its output read as logits) and accuracy on a split."""
    if cache.logits is None:
        return float("nan"), float("nan")
    lg = cache.logits.double()
    ce = float(torch.nn.functional.cross_entropy(lg, cache.y, reduction="sum"))
    right = float((lg.argmax(dim=1) == cache.y).sum())
    n = float(cache.y.shape[0])
    if distributed:
        ce, right, n = all_sum([ce, right, n])
    return ce / n, right / n
