"""Vectorised ensembles: members of one fit train independently and equal one-member fits.

Also checks the natively batched layers against torch's own modules (nn.BatchNorm1d, and the
hand-written batch-norm backward against autograd in float64) and the flat-parameter optimiser.
"""
import numpy as np
import torch
from torch import nn

from usable.ensemble import BatchedBatchNorm, BatchedMLP, make_ensemble
from usable.fit import FitConfig, fit
from usable_divergences import make_l1
from usable_mlp import make_mlp
from usable_pid import make_pid
from usable_schedules import make_constant, make_exp

CFG = FitConfig(epochs=3, progress=False, threads=1)


def test_batched_batchnorm_equals_torch_per_member():
    """Training and eval mode, outputs, gradients and running stats match nn.BatchNorm1d per member."""
    torch.manual_seed(0)
    E, B, F = 3, 17, 5
    x = torch.randn(E, B, F, dtype=torch.float64) * 3 + 1
    bn = BatchedBatchNorm(F, E).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(E, 1, F) + 0.5)
        bn.bias.copy_(torch.randn(E, 1, F))
    refs = []
    for e in range(E):
        r = nn.BatchNorm1d(F).double()
        with torch.no_grad():
            r.weight.copy_(bn.weight[e, 0])
            r.bias.copy_(bn.bias[e, 0])
        refs.append(r)
    g = torch.randn(E, B, F, dtype=torch.float64)
    xb = x.clone().requires_grad_()
    (bn(xb) * g).sum().backward()
    for e, r in enumerate(refs):
        xe = x[e].clone().requires_grad_()
        out = r(xe)
        (out * g[e]).sum().backward()
        torch.testing.assert_close(xb.grad[e], xe.grad)
        torch.testing.assert_close(bn.weight.grad[e, 0], r.weight.grad)
        torch.testing.assert_close(bn.bias.grad[e, 0], r.bias.grad)
        torch.testing.assert_close(bn.running_mean[e, 0], r.running_mean)
        torch.testing.assert_close(bn.running_var[e, 0], r.running_var)
    bn.eval()
    for r in refs:
        r.eval()
    y = bn(x)
    for e, r in enumerate(refs):
        torch.testing.assert_close(y[e], r(x[e]))


def test_batchnorm_backward_passes_gradcheck():
    torch.manual_seed(1)
    bn = BatchedBatchNorm(4, 2).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: bn(inp), (x,))


def test_batched_mlp_member_equals_plain_network():
    """Member e of BatchedMLP computes what MLP.build's plain network computes with its weights."""
    torch.manual_seed(2)
    mlp = make_mlp([6, 5])
    ens = BatchedMLP(4, [6, 5], 3, seeds=[11, 12])
    x = torch.randn(2, 9, 4)
    out = ens(x)
    for e in range(2):
        net = mlp.build((4,), 3)
        lin = [m for m in net.modules() if isinstance(m, nn.Linear)]
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
        blin = [m for m in ens.net if m.__class__.__name__ == "BatchedLinear"]
        with torch.no_grad():
            for l, b in zip(lin, blin):
                l.weight.copy_(b.weight[e].T)
                l.bias.copy_(b.bias[e, 0])
        assert len(bns) == 2
        torch.testing.assert_close(out[e], net(x[e]), rtol=1e-5, atol=1e-5)


def test_members_equal_one_member_fits():
    """A (seed × β) ensemble of 6 members gives, member by member, the held-out cross-entropy of
    6 separate one-member fits (same init, same batches; only float rounding differs)."""
    data = make_pid(task="rdnxor", n=1200)
    kw = dict(divergence=make_l1("mean"), schedule=make_exp(), config=CFG)
    seeds, betas = [0, 1], [0.0, 5.0, 15.0]
    joint = fit(data, make_mlp(), betas=betas, seeds=seeds, **kw)
    ce = joint.by_seed_beta(joint.test_ce)  # (seed, beta, source)
    for i, s in enumerate(seeds):
        for j, b in enumerate(betas):
            alone = fit(data, make_mlp(), betas=[b], seeds=[s], **kw)
            np.testing.assert_allclose(ce[i, j], alone.test_ce[0], atol=1e-4)
            np.testing.assert_allclose(joint.by_seed_beta(joint.history["train_loss"].T)[i, j],
                                       alone.history["train_loss"][:, 0], rtol=1e-4)
    # and the members really differ: different seeds give different weights
    w = joint.models[0].net[0].weight
    assert not torch.allclose(w[0], w[3])


def test_members_are_independent():
    """Changing one member's β does not change any other member's training at all."""
    data = make_pid(task="unq", n=800)
    kw = dict(divergence=make_l1("mean"), schedule=make_constant(), seeds=[3], config=CFG)
    a = fit(data, make_mlp(), betas=[0.0, 5.0], **kw)
    b = fit(data, make_mlp(), betas=[0.0, 15.0], **kw)
    np.testing.assert_allclose(a.test_ce[0], b.test_ce[0], atol=1e-5)   # the β = 0 member
    assert abs(a.test_divergence[1] - b.test_divergence[1]) > 1e-3     # the changed member moved


def test_flat_parameters_stay_views_and_train():
    """After fit, the modules' parameters are views into the optimiser's flat buffer and moved."""
    data = make_pid(task="and", n=600)
    dec = make_mlp([4])
    before = [p.detach().clone() for p in make_ensemble(dec, (2,), 2, [0]).parameters()]
    res = fit(data, dec, seeds=[0], config=CFG)
    ps = list(res.models[0].parameters())
    assert all(p.grad is not None and p.grad.shape == p.shape for p in ps)
    assert len({p.untyped_storage().data_ptr() for p in ps}) == 1
    assert any(not torch.equal(p0, p) for p0, p in zip(before, ps))


def test_several_datasets_train_as_one_ensemble():
    """fit([d1, d2, ...]) trains (dataset, seed, β) members as one batched model; each member
    equals the one-member fit on its own dataset."""
    from usable.data import with_classes
    from usable.fit import FitConfig, fit
    from usable_divergences import make_l1
    from usable_mlp import make_mlp
    from usable_pid import make_pid
    from usable_schedules import make_exp

    datas = [with_classes(make_pid(task=t, n=600, seed=0), 4) for t in ("and", "xor", "imperfectrdn")]
    cfg = FitConfig(epochs=3, progress=False)
    kw = dict(divergence=make_l1("mean"), schedule=make_exp(0.9), config=cfg)
    joint = fit(datas, make_mlp([7, 5]), betas=[0.0, 5.0], seeds=[0, 1], **kw)
    ce = joint.by_seed_beta(joint.test_ce)  # (dataset, seed, beta, source)
    assert ce.shape == (3, 2, 2, 2) and joint.n_datasets == 3
    for g, d in enumerate(datas):
        for i, s in enumerate((0, 1)):
            for j, b in enumerate((0.0, 5.0)):
                alone = fit(d, make_mlp([7, 5]), betas=[b], seeds=[s], **kw)
                np.testing.assert_allclose(ce[g, i, j], alone.test_ce[0], atol=1e-4)
    import pytest
    with pytest.raises(ValueError, match="cannot train in one ensemble"):
        fit([datas[0], make_pid(task="and", n=600, seed=0)], make_mlp([7, 5]), **kw)
