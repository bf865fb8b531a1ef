"""Vectorised ensembles: members of one fit train independently and equal one-member fits.

Also checks the natively batched layers against torch's own modules (nn.BatchNorm1d, and the
hand-written batch-norm backward against autograd in float64) and the flat-parameter optimiser.
"""
import numpy as np
import torch
from torch import nn

from usable import FitConfig, create, fit, make_ensemble
from usable_mlp.mlp import BatchedBatchNorm, BatchedMLP


def make_l1(reduction):
    return create("divergences", f"l1:reduction={reduction}")


def make_mlp(hidden=(25, 15, 10)):
    return create("decoders", "mlp", hidden=list(hidden))


def make_pid(**params):
    return create("sources", "pid", **params)


def make_exp(gamma=0.97):
    return create("schedules", f"exp:gamma={gamma}")


def make_constant():
    return create("schedules", "constant")


def member_table(res, var="cross_entropy"):
    """(dataset, seed, beta, ...) array of a fit, from its labelled result."""
    return res.to_dataset()[var].values

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
    joint_fit = fit(data, make_mlp(), betas=betas, seeds=seeds, **kw)
    joint = joint_fit.to_dataset()
    for s in seeds:
        for b in betas:
            alone = fit(data, make_mlp(), betas=[b], seeds=[s], **kw).to_dataset()
            np.testing.assert_allclose(joint.cross_entropy.sel(seed=s, beta=b), alone.cross_entropy.sel(seed=s, beta=b),
                                       atol=1e-4)
            np.testing.assert_allclose(joint.train_loss.sel(seed=s, beta=b), alone.train_loss.sel(seed=s, beta=b),
                                       rtol=1e-4)
    # and the members really differ: different seeds give different weights
    w = joint_fit.models[0].net[0].weight
    assert not torch.allclose(w[0], w[3])


def test_members_are_independent():
    """Changing one member's β does not change any other member's training at all."""
    data = make_pid(task="unq", n=800)
    kw = dict(divergence=make_l1("mean"), schedule=make_constant(), seeds=[3], config=CFG)
    a = fit(data, make_mlp(), betas=[0.0, 5.0], **kw)
    b = fit(data, make_mlp(), betas=[0.0, 15.0], **kw)
    ce_a, ce_b = member_table(a), member_table(b)
    np.testing.assert_allclose(ce_a[0, 0, 0], ce_b[0, 0, 0], atol=1e-5)   # the β = 0 member
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
    from usable import with_classes

    datas = [with_classes(make_pid(task=t, n=600, seed=0), 4) for t in ("and", "xor", "imperfectrdn")]
    cfg = FitConfig(epochs=3, progress=False)
    kw = dict(divergence=make_l1("mean"), schedule=make_exp(0.9), config=cfg)
    joint = fit(datas, make_mlp([7, 5]), betas=[0.0, 5.0], seeds=[0, 1], dataset_names=["and", "xor", "imp"], **kw)
    ce = joint.to_dataset().cross_entropy
    assert ce.dims == ("dataset", "seed", "beta", "source") and ce.shape == (3, 2, 2, 2)
    for g, d in zip(["and", "xor", "imp"], datas):
        for s in (0, 1):
            for b in (0.0, 5.0):
                alone = fit(d, make_mlp([7, 5]), betas=[b], seeds=[s], **kw).to_dataset().cross_entropy
                np.testing.assert_allclose(ce.sel(dataset=g, seed=s, beta=b), alone.isel(dataset=0, seed=0, beta=0),
                                           atol=1e-4)
    import pytest

    import usable
    with pytest.raises(usable.DataError, match="cannot train in one ensemble"):
        fit([datas[0], make_pid(task="and", n=600, seed=0)], make_mlp([7, 5]), **kw)


def test_a_member_depends_on_its_companions_only_through_float_rounding():
    """Seed 1 trained alone and inside a 10-member ensemble: the batched kernels round differently
    for other member counts, never by more than 1e-6 bit (measured: up to 4e-8). This is the
    tolerance a resumed sweep holds against an uninterrupted one."""
    data = make_pid(task="rdnxor", n=2000)
    kw = dict(divergence=make_l1("mean"), schedule=make_exp(), config=CFG)
    alone = fit(data, make_mlp(), betas=[5.0], seeds=[1], **kw).to_dataset().cross_entropy
    inside = fit(data, make_mlp(), betas=[5.0, 15.0], seeds=[0, 1, 2, 3, 4], **kw).to_dataset().cross_entropy
    diff = float(abs(inside.sel(seed=1, beta=5.0) - alone.sel(seed=1, beta=5.0)).max())
    assert diff <= 1e-6, diff
