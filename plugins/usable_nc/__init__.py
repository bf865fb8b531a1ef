"""usable_nc: streaming neural collapse (NC1-NC4, CDNV, trace quotient) for every layer.

Public API (stable; usable_dib builds on it through ``usable.plugin("nc")``)::

    from usable_nc import NCAccumulator, measure_layers, all_reduce_states

    acc = NCAccumulator(n_classes, rank_tol=1e-6, weighting="sample", method="auto",
                        gram_max_dim=512)
    for h, y in batches:                 # h (B, ...) any float dtype, flattened; y (B,) int64
        acc.update_pass1(h, y)           # counts + class sums (float64); Gram mode: + scatter
    acc.finalize_means()                 # SVD of the C×D centred means A, rank r, P = V_r S_r⁻¹
    for h, y, logits in batches:         # same samples again, same (fixed) weights
        acc.update_pass2(h, y, logits=logits)   # logits (B, C) optional: NC4
    acc.set_classifier(weight, bias)     # optional (C, D): NC3
    out = acc.compute()                  # dict: scalars (nc1, rank, ...) + per-class arrays

    acc.merge(other)                     # exact addition (shards, processes); also ``acc += other``
    acc.pass2_copy()                     # a finalised copy with empty pass-2 sums (for a shard)
    sd = acc.state_dict(); acc.load_state_dict(sd)   # checkpoints; plain tensors + metadata
    acc.reset()                          # back to an empty pass 1
    acc.phase                            # "pass1" | "pass2"
    acc.fingerprint                      # hash of the pass-1 means a pass-2 state belongs to

    all_reduce_states(accs)              # torch.distributed: one bucketed all_reduce(SUM) over
                                         # every accumulator (list or dict) in its current phase

    res = measure_layers(model, (x, y) or loader, layers=None, n_classes=C, device="cpu",
                         batch_size=1024, rank_tol=1e-6, weighting="sample", method="auto",
                         progress=False)
    res.metrics[layer] -> compute() dict;  res.states[layer] -> NCAccumulator;  res.layers

``measure_layers`` puts the model in eval mode (batch norm uses its running statistics, which are
not updated), hooks the named layers (default: every block of a ``usable.Network`` plus the input
of the final ``nn.Linear`` classifier, the penultimate representation, when that differs from
every block output), runs pass 1 and pass 2 with fixed weights, and restores the model's mode.

The metric ``nc`` (``usable run nc --source digits --decoder cnn_minus --epochs 3``) trains the
decoder with the one training loop (β = 0, one source) or loads ``nc:checkpoint=PATH``, then
measures every layer on the train and test splits: dims (seed, layer, split[, class]). Only
the declarations below load with the plugin; torch loads when the API or the metric is used.
Formulas, defaults and degenerate cases: docs/neural-collapse.md.
"""
from typing import Annotated, Literal

from usable import hookimpl, lazy_exports

# Relative to σ_max: float32 features resolve ~1e-7 relative, so below this is noise. The one-pass
# D×D scatter only while it is small (512² doubles = 2 MB).
DEFAULT_RANK_TOL, DEFAULT_GRAM_MAX_DIM = 1e-6, 512
_API = {"NCAccumulator": "accumulator", "NCStateError": "accumulator", "all_reduce_states": "accumulator",
        "measure_layers": "measure", "MeasureResult": "measure", "resolve_layers": "measure", "LayerTap": "measure"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)


def nc(ctx, checkpoint: Annotated[str, "measure networks from this checkpoint (written by nc:save=PATH) instead of training"] = "",
       save: Annotated[str, "save the trained networks to this checkpoint path"] = "",
       layers: Annotated[list[str], "layers to hook, block names or module paths joined by '+' (default: every "
                         "block + penultimate)"] = (),
       splits: Annotated[list[str], "splits to measure: train, test or train+test"] = ("train", "test"),
       rank_tol: Annotated[float, "relative singular-value tolerance for the rank of the centred means"] = DEFAULT_RANK_TOL,
       weighting: Annotated[Literal["sample", "balanced"], "global mean: sample (over samples) or balanced (mean of "
                            "class means)"] = "sample",
       method: Annotated[Literal["auto", "two_pass", "gram"], "two_pass (O(C·D)), gram (one pass, D×D) or auto (gram "
                         "when D <= gram_max_dim)"] = "auto",
       gram_max_dim: Annotated[int, "largest D for which auto picks the one-pass Gram method"] = DEFAULT_GRAM_MAX_DIM,
       batch_size: Annotated[int, "batch size of the measurement passes"] = 1024,
       amortised: Annotated[bool, "fold the train-split pass 1 into the last training epoch (thesis; biased)"] = False):
    """Streaming neural collapse (NC1-NC4, CDNV) of every layer on train and test."""
    kw = dict(locals())
    from .metric import compute_nc
    return compute_nc(**kw)


def _plot(ds, out, kind=None):
    from .metric import plot_nc
    return plot_nc(ds, out, kind)


@hookimpl
def register_metrics(register):
    register("nc", nc, plot=_plot)
