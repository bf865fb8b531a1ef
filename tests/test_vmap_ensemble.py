"""Decoders without a native ensemble, stacked and vmapped (VmapEnsemble): each member trains
as its own fit does (same initial weights, batches and per-member batch norm). One step agrees to
float rounding (outputs ~1e-6, gradients ~2e-6 of their scale: a grouped convolution sums in
another order); over two epochs batch norm on 32-image batches amplifies that to ~1.5e-4 in the
weights (measured), so trajectories are compared at 1e-3. A module vmap cannot take runs member
by member with the same numbers."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from usable import FitConfig, ModuleEnsemble, SourceData, Split, VmapEnsemble, create, fit


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 3, 12, 12, generator=g) * 0.3
    x[torch.arange(n), y] += 1.0  # the class lights one colour channel
    return Split([x], y)


DATA = SourceData(images(96, 0), images(48, 1), ["image"], "classes", 3)
CFG = FitConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, progress=False, threads=1)


@pytest.mark.parametrize("decoder", ["resnet18:width=4", "cnn_minus:widths=4+4+8"])
def test_vmapped_members_equal_their_own_fits(decoder):
    together = fit(DATA, create("decoders", decoder), seeds=[0, 1, 2], config=replace(CFG, ensemble="vmap"))
    ens = together.models[0]
    assert isinstance(ens, VmapEnsemble) and ens.vmap_error is None
    t = together.to_dataset()
    for e, s in enumerate((0, 1, 2)):
        alone = fit(DATA, create("decoders", decoder), seeds=[s], config=replace(CFG, ensemble="loop"))
        assert isinstance(alone.models[0], ModuleEnsemble)
        a = alone.to_dataset()
        for v in ("cross_entropy", "train_loss", "test_cross_entropy_curve"):
            np.testing.assert_allclose(t[v].sel(seed=s).values, a[v].sel(seed=s).values, rtol=1e-4, atol=1e-5, err_msg=v)
        mine, theirs = ens.member(e).state_dict(), alone.models[0].members[0].state_dict()
        assert mine.keys() == theirs.keys()
        for k in mine:  # weights and the running statistics of every batch norm
            np.testing.assert_allclose(mine[k].double().numpy(), theirs[k].double().numpy(), rtol=1e-3, atol=1e-3, err_msg=k)
    # the members did train: every member's training loss fell from the first epoch to the second
    assert bool((t.train_loss.isel(epoch=1) < t.train_loss.isel(epoch=0)).all())


def test_one_step_outputs_and_gradients_equal_member_by_member():
    from usable import make_ensemble
    dec = create("decoders", "resnet18:width=4")
    v = make_ensemble(dec, (3, 12, 12), 3, [0, 1, 2], vmap=True)
    m = make_ensemble(dec, (3, 12, 12), 3, [0, 1, 2])
    x = torch.randn(3, 32, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    ov, om = v(x), m(x)
    assert float((ov - om).detach().abs().max()) <= 1e-5 * float(om.detach().abs().max())
    ov.square().sum().backward()
    om.square().sum().backward()
    named = dict(m.members[0].named_parameters())
    for name, stacked in zip(v._pnames, v.stacked):
        each = torch.stack([dict(mm.named_parameters())[name].grad for mm in m.members])
        assert name in named and float((stacked.grad - each).abs().max()) <= 1e-5 * float(each.abs().max()) + 1e-7, name


class ValueBranch(nn.Module):
    """A forward that branches on a tensor's value: vmap cannot take it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 12 * 12, 3)

    def forward(self, x):
        h = self.lin(x.flatten(1))
        return h if float(h.sum()) > -1e9 else -h


class Branchy:
    def build(self, in_shape, n_out):
        return ValueBranch()


def test_a_module_vmap_cannot_take_runs_member_by_member():
    cfg = replace(CFG, epochs=1, ensemble="vmap")
    with pytest.warns(RuntimeWarning, match="cannot be vmapped"):
        stacked = fit(DATA, Branchy(), seeds=[0, 1], config=cfg)
    assert stacked.models[0].vmap_error
    loop = fit(DATA, Branchy(), seeds=[0, 1], config=replace(cfg, ensemble="loop"))
    np.testing.assert_allclose(stacked.to_dataset().cross_entropy.values, loop.to_dataset().cross_entropy.values,
                               rtol=1e-5, atol=1e-6)
