"""usable_nc: streaming neural collapse (NC1-NC4, CDNV, trace quotient) for every layer.

Public API (stable; the ``track`` metric of usable_dib builds on it)::

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
measures every layer on the train and test splits: dims (seed, layer, split[, class]).
Formulas, defaults and degenerate cases: docs/neural-collapse.md.
"""
from __future__ import annotations

from .accumulator import NCAccumulator, NCStateError, all_reduce_states  # noqa: F401
from .measure import MeasureResult, measure_layers, resolve_layers  # noqa: F401

__all__ = ["NCAccumulator", "NCStateError", "all_reduce_states", "measure_layers", "MeasureResult",
           "resolve_layers"]

from usable import hookimpl  # noqa: E402


@hookimpl
def register_metrics(register):
    from .metric import register_all
    register_all(register)
