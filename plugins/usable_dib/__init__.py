"""usable_dib: the decodable information bottleneck per layer (metric ``dib``) and the thesis's
training tracker (metric ``track``): NC, sufficiency and minimality of every layer, every epoch.

Cheong (2025), sections 1.3, 2.2, 2.3 and chapter 3; Dubois et al. (2020), algorithm 1. Neural
collapse comes from the nc plugin's accumulator, reached through ``usable.plugin("nc")`` (a
declared requirement, not an import). Python API (loaded on first use)::

    from usable_dib import relabel, n_digits, digit_entropies, measure, EpochStore, equi_separation

Docs: docs/dib-tracking.md.
"""
from typing import Annotated, Literal

from usable import hookimpl, lazy_exports

_API = {"equi_separation": "analyses", "gaps": "analyses", "DIBResult": "estimator", "SuffixDecoder": "estimator",
        "decoder_config": "estimator", "dib_variables": "estimator", "measure": "estimator", "layer_features": "features",
        "set_bn_mode": "features", "EpochStore": "progressive_store", "digit_entropies": "relabel",
        "n_digits": "relabel", "relabel": "relabel"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)


def dib(ctx,
        layers: Annotated[str, "'all' or layer indices joined by '+' such as 0+2, or a range 1-3 (0 = input, "
                          "l = output of block l)"] = "all",
        dib_epochs: Annotated[int, "epoch limit of each sufficiency/minimality decoder fit"] = 30,
        dib_lr: Annotated[float, "AdamW learning rate of the decoders"] = 2e-3,
        dib_stop_loss: Annotated[float, "decoders stop when their mean training loss (nats) is <= this (0: never)"] = 0.02,
        bn_mode: Annotated[Literal["batch", "running"], "batch norm: 'batch' (no running statistics, as the "
                           "thesis) or 'running'"] = "batch",
        minimality: Annotated[bool, "also fit the relabelling (minimality) decoders"] = True,
        memory_limit_mb: Annotated[float, "cached features above this size go to memory-mapped files"] = 2048.0,
        nc: Annotated[bool, "also neural collapse per layer"] = False,
        checkpoint: Annotated[str, "measure the networks saved by nc:save=PATH instead of training one"] = ""):
    """Sufficiency and minimality (decodable information bottleneck) of every layer, in bits."""
    kw = dict(locals())
    from .metrics import compute_dib
    return compute_dib(**kw)


def track(ctx, layers: Annotated[str, "'all' or layer indices joined by '+' (0 = input)"] = "all",
          dib_epochs: Annotated[int, "epoch limit of each sufficiency/minimality decoder fit"] = 30,
          dib_lr: Annotated[float, "AdamW learning rate of the decoders"] = 2e-3,
          dib_stop_loss: Annotated[float, "decoders stop when their mean training loss (nats) is <= this (0: never)"] = 0.02,
          bn_mode: Annotated[Literal["batch", "running"], "batch norm: 'batch' (as the thesis) or 'running'"] = "batch",
          minimality: Annotated[bool, "also fit the relabelling (minimality) decoders"] = True,
          memory_limit_mb: Annotated[float, "cached features above this size go to memory-mapped files"] = 2048.0,
          max_epochs: Annotated[int, "epoch limit of the main network (thesis: 50)"] = 50,
          every: Annotated[int, "measure after every k-th epoch (and the last)"] = 1,
          lr: Annotated[float, "AdamW learning rate of the main network (thesis: 2e-3, constant)"] = 2e-3,
          stop_loss: Annotated[float, "stop once the main training loss (nats) is <= this (thesis: 0.02)"] = 0.02,
          warm_start: Annotated[bool, "continue the previous measurement's decoders instead of fresh ones"] = False,
          balance: Annotated[bool, "train on a class-balanced subset the size of the test set (thesis)"] = True,
          nc: Annotated[bool, "neural collapse metrics per layer (usable_nc)"] = True,
          checkpoint: Annotated[str, "folder for epoch-by-epoch results and resumable state"] = ""):
    """Train with the thesis protocol, measuring NC, sufficiency and minimality of every layer per epoch."""
    kw = dict(locals())
    from .metrics import compute_track
    return compute_track(**kw)


def _plot(name):
    def plot(ds, out, kind=None):
        from . import plots
        return getattr(plots, name)(ds, out, kind)
    return plot


@hookimpl
def register_metrics(register):
    register("dib", dib, plot=_plot("plot_dib"), requires=("nc",))
    register("track", track, plot=_plot("plot_track"), requires=("nc",))
