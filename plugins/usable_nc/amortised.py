"""The ``amortised`` mode: pass 1 of the training split folded into the last training epoch.

The thesis saves one forward pass per epoch this way. Forward hooks cannot see labels, so each
training input carries its label as one extra trailing column; a thin wrapper strips it before
the network sees the input (the prediction never depends on it) and hands it to the
accumulators. Training itself is the one training loop, ``usable.fit``, unchanged. The result is
biased (class means from moving weights and train-mode batch norm), which the run's attrs say.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from usable import SourceData, Split, fit
from usable.ensemble import make_ensemble
from usable.fit import resolve_device

from .accumulator import NCAccumulator, NCStateError
from .measure import LayerTap


def _carry(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.reshape(x.shape[0], -1).float(), y.float()[:, None]], dim=1)


class LabelCarrier(nn.Module):
    """(B, D_in + 1) with the label last -> the wrapped network's output on the (B, *in_shape) input."""

    def __init__(self, net: nn.Module, in_shape):
        super().__init__()
        self.net, self.in_shape = net, tuple(in_shape)
        self.sink = None  # called with the batch labels after each training-mode forward while armed

    def forward(self, xa: torch.Tensor) -> torch.Tensor:
        y = xa[:, -1].round().long()
        out = self.net(xa[:, :-1].reshape(xa.shape[0], *self.in_shape))
        if self.sink is not None and self.training:
            self.sink(y)
        return out


class _CarrierDecoder:
    def __init__(self, decoder, in_shape):
        self.decoder, self.in_shape = decoder, tuple(in_shape)

    def build(self, in_shape, n_out):
        return LabelCarrier(self.decoder.build(self.in_shape, n_out), self.in_shape)


def amortised_fit(ctx, data: SourceData, decoder, mkw: dict):
    """Fit (β = 0) while the final epoch fills pass 1 of the train split; returns (FitResult, nets, states)."""
    cfg = ctx.fit_config
    if cfg.stop_loss is not None:
        raise ValueError("amortised=true needs the final epoch to run; drop --stop-loss")
    in_shape, K = data.in_shape(0), int(data.n_classes)
    if data.train.y.numel() and int(data.train.y.max()) >= 2 ** 24:
        raise ValueError("labels too large to carry exactly in float32")
    aug = SourceData(Split([_carry(data.train.xs[0], data.train.y)], data.train.y),
                     Split([_carry(data.test.xs[0], data.test.y)], data.test.y),
                     list(data.names), data.target, K, data.class_names, dict(data.attrs))
    dec = _CarrierDecoder(decoder, in_shape)
    ens = make_ensemble(dec, aug.in_shape(0), K, list(ctx.seeds), salt=0).to(resolve_device(cfg.device))
    carriers = list(ens.members)
    taps = [LayerTap(c.net, mkw.get("layers"), K) for c in carriers]
    states: list[dict[str, NCAccumulator]] = [{} for _ in carriers]

    def make_sink(e):
        tap = taps[e]

        def sink(y):
            if not tap.settled:
                tap.settle()
                states[e].update({n: NCAccumulator(K, rank_tol=mkw["rank_tol"], weighting=mkw["weighting"],
                                                   method=mkw["method"], gram_max_dim=mkw["gram_max_dim"], name=n)
                                  for n in tap.names})
            for n, acc in states[e].items():
                acc.update_pass1(tap.captured[n].detach(), y)
        return sink

    def arm(on: bool):
        for e, c in enumerate(carriers):
            c.sink = make_sink(e) if on else None

    def on_epoch_end(epoch, state):
        if epoch == cfg.epochs - 2:
            arm(True)   # the next epoch is the last: its forward passes are pass 1
        elif epoch == cfg.epochs - 1:
            arm(False)

    if cfg.epochs <= 1:
        arm(True)
    try:
        res = fit(aug, dec, divergence=None, schedule=ctx.schedule_fn(), betas=[0.0], seeds=list(ctx.seeds),
                  config=replace(cfg), on_epoch_end=on_epoch_end, models=[ens], desc=str(ctx.metric))
    finally:
        arm(False)
        for t in taps:
            t.close()
    n_train = len(data.train)
    for st in states:
        if not st or any(int(a.counts.sum()) != n_train for a in st.values()):
            raise NCStateError(f"amortised pass 1 saw {[int(a.counts.sum()) for a in st.values()]} samples, "
                               f"expected {n_train} (one full final epoch)")
    return res, [c.net for c in carriers], states
