"""The ``amortised`` mode: pass 1 of the training split folded into the last training epoch.

The thesis saves one forward pass per epoch this way. A batch-end callback of the one training
loop feeds each member's hooked layer outputs, with that member's batch labels, to its
accumulators during the final epoch. The result is biased (class means from moving weights and
train-mode batch norm), which the run's attrs say.
"""
from __future__ import annotations

from usable import Memberwise, SpecError, make_ensemble, resolve_device

from .accumulator import NCAccumulator, NCStateError
from .measure import LayerTap


class Pass1DuringTraining:
    """Batch-end callback: in epoch ``epoch``, add every member's layer outputs to its pass-1 state."""

    def __init__(self, taps: list[LayerTap], epoch: int, make_accumulator):
        self.taps, self.epoch, self.make = taps, epoch, make_accumulator
        self.states: list[dict[str, NCAccumulator]] = [{} for _ in taps]

    def on_batch_end(self, state) -> None:
        if state.epoch != self.epoch:
            return
        for e, tap in enumerate(self.taps):
            if not tap.settled:
                tap.settle()
                self.states[e] = {n: self.make(n) for n in tap.names}
            for n, acc in self.states[e].items():
                acc.update_pass1(tap.captured[n].detach(), state.targets[e])


def amortised_fit(ctx, data, decoder, measure_kwargs: dict):
    """Fit (β = 0) while the final epoch fills pass 1 of the train split; returns (FitResult, nets, states)."""
    cfg = ctx.fit_config
    if cfg.stop_loss is not None:
        raise SpecError("amortised=true needs the final epoch to run; drop --stop-loss")
    K = int(data.n_classes)
    ens = make_ensemble(Memberwise(decoder), data.in_shape(0), K, list(ctx.seeds), salt=0).to(resolve_device(cfg.device))
    nets = list(ens.members)
    taps = [LayerTap(net, measure_kwargs.get("layers"), K) for net in nets]
    mk = measure_kwargs
    collect = Pass1DuringTraining(taps, cfg.epochs - 1, lambda n: NCAccumulator(
        K, rank_tol=mk["rank_tol"], weighting=mk["weighting"], method=mk["method"], gram_max_dim=mk["gram_max_dim"], name=n))
    try:
        res = ctx.fit(data, betas=[0.0], decoders=Memberwise(decoder), models=[ens], callbacks=[collect])
    finally:
        for t in taps:
            t.close()
    n_train = len(data.train)
    for st in collect.states:
        if not st or any(int(a.counts.sum()) != n_train for a in st.values()):
            raise NCStateError(f"amortised pass 1 saw {[int(a.counts.sum()) for a in st.values()]} samples, "
                               f"expected {n_train} (one full final epoch)")
    return res, nets, collect.states
