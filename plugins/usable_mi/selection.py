"""Each member at its best epoch, chosen on a validation split carved from the training split.

A callback of the one loop (``on_epoch_end``): after every epoch it scores every (member, source)
on the validation samples; a (member, source) that improved is snapshotted, one that did not is
put back to its snapshot, so training goes on from its best weights. The fit stops once nothing
has improved for ``patience`` epochs. The test split is never looked at, so held-out estimates
stay free of the choice. Works for natively batched decoders (every tensor has the E members on
its first axis) and for ``ModuleEnsemble`` (one module per member); the objective's own trainable
tensors follow along: shape (E, n_sources, ...) per source (the learned σ of Gaussian decoders),
shape (E, ...) with source 0 (a critic's scale, whose score is shared by both sources).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from usable import DataError, ModuleEnsemble, SourceData, SpecError, Split, train_test_split_indices


def carve_validation(datas: Sequence[SourceData], fraction: float, seed: int):
    """Each dataset with ``fraction`` of its training split set aside (the same indices for all, so
    they keep one shape): (datasets, validation splits)."""
    if not 0 < fraction < 1:
        raise SpecError(f"validation={fraction}: the fraction of the training split set aside to choose each "
                        "member's epoch must lie in (0, 1), or 0 for none")
    keep, held = train_test_split_indices(len(datas[0].train), fraction, seed + 7)
    if len(held) < 2 or len(keep) < 2:
        raise DataError(f"validation={fraction} of {len(datas[0].train)} training samples leaves fewer than 2 on a "
                        "side; use a larger training split or another fraction")
    out, val = [], []
    for d in datas:
        out.append(SourceData(Split([x[keep] for x in d.train.xs], d.train.y[keep]), d.test, list(d.names), d.target,
                              d.n_classes, d.class_names, dict(d.attrs)))
        val.append(Split([x[held] for x in d.train.xs], d.train.y[held]))
    return out, val


def _member_tensors(model: nn.Module, E: int) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """(tensors with the E members on their first axis, per-member tensor lists of a ModuleEnsemble)."""
    if isinstance(model, ModuleEnsemble):
        return [], [list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()] for m in model.members]
    stacked = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    bad = [tuple(t.shape) for t in stacked if t.ndim == 0 or t.shape[0] != E]
    if bad:
        raise SpecError(f"choosing each member's best epoch needs a decoder whose tensors carry the {E} members on "
                        f"their first axis (natively batched) or a per-member decoder; got shapes {bad[:3]}. Use "
                        "validation=0 with this decoder.")
    return stacked, []


class BestEpoch:
    """``score(state) -> (E,) or (E, n_sources)`` validation values, higher is better."""

    def __init__(self, score: Callable, patience: int):
        if patience < 1:
            raise SpecError(f"patience must be >= 1 epoch, got {patience}")
        self.score, self.patience = score, int(patience)
        self.history: list[np.ndarray] = []
        self.best = None

    def _setup(self, state, n: int) -> None:
        E = state.members.size
        self.models = [_member_tensors(m, E) for m in state.models]
        self.extra = []  # objective tensors and the source whose choice they follow (None: column-wise)
        for t in state.objective.parameters():
            if t.ndim >= 2 and t.shape[0] == E and t.shape[1] == n:
                self.extra.append((t, None))
            elif t.ndim >= 1 and t.shape[0] == E:
                self.extra.append((t, 0))
            else:
                raise SpecError(f"the objective's tensor of shape {tuple(t.shape)} has no member axis; "
                                "use validation=0 with this objective")
        self.snap = [[t.detach().clone() for t in st] for st, _ in self.models]
        self.snap_members = [[[t.detach().clone() for t in mem] for mem in pm] for _, pm in self.models]
        self.snap_extra = [t.detach().clone() for t, _ in self.extra]

    @torch.no_grad()
    def on_epoch_end(self, state):
        n = len(state.models)
        value = np.asarray(self.score(state), dtype=np.float64)
        value = np.repeat(value[:, None], n, axis=1) if value.ndim == 1 else value
        self.history.append(value)
        if self.best is None:
            self._setup(state, n)
            self.best, self.stale = value.copy(), np.zeros(value.shape, dtype=int)
            return None
        better = value > self.best  # (E, n); NaN never improves
        self.best = np.where(better, value, self.best)
        self.stale = np.where(better, 0, self.stale + 1)
        for i, ((stacked, per_member), snap, snap_m) in enumerate(zip(self.models, self.snap, self.snap_members)):
            keep = torch.tensor(better[:, i])
            _update(stacked, snap, keep)
            for e, (mem, sm) in enumerate(zip(per_member, snap_m)):
                _update(mem, sm, bool(better[e, i]))
        for (t, src), s in zip(self.extra, self.snap_extra):
            if src is None:
                for i in range(n):
                    _update([t[:, i]], [s[:, i]], torch.tensor(better[:, i]))
            else:
                _update([t], [s], torch.tensor(better[:, src]))
        return "stop" if bool((self.stale >= self.patience).all()) else None

    def best_epoch(self) -> np.ndarray:
        """Each (member, source)'s chosen epoch (0-based), (E, n_sources)."""
        return np.argmax(np.stack(self.history), axis=0)


def _update(tensors, snaps, keep) -> None:
    """Snapshot where ``keep`` (bool or (E,) mask), restore from the snapshot elsewhere."""
    for t, s in zip(tensors, snaps):
        if isinstance(keep, bool):
            (s.copy_(t.detach()) if keep else t.data.copy_(s))
            continue
        k = keep.to(t.device)
        s[k] = t.detach()[k]
        t.data[~k] = s[~k]
