"""The MLP family's compiled epoch (plugins/usable_mlp/kernel.c) against the eager PyTorch path:
the same numbers to float tolerance for every optimiser, divergence, n-source form and ensemble
over datasets; members independent of their companions bit for bit; the eager fallback when
compilation is disabled or no compiler exists.

Data: left/right crops of the 8×8 digits (well-conditioned inputs). On the one-hot PID tasks both
paths agree to float rounding per step too, but batch norm over two distinct input values is
ill-conditioned there, so trajectories separate after a few hundred steps (by up to ~0.02 bit
after one epoch, measured) just as eager runs of other member counts do.

AdamW is compared without batch norm: the bias of a linear layer followed by batch norm has an
analytically zero gradient, so both paths hold rounding noise there (~1e-9), and AdamW, with no
weight-decay term added to the gradient, normalises that noise into ±lr steps that differ between
any two summation orders (measured: 0.004 bit after two epochs). Batch norm cancels those biases in
training, so they only move the running means.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from usable import FitConfig, create, fit

CROPS = "digits:view=crops,width=5"
THREE = "digits:view=crops,width=5"


@pytest.fixture(scope="module")
def crops():
    return create("sources", CROPS)


def _fit(data, compile_, monkeypatch, decoder="mlp", divergence="l1:reduction=mean", optimizer="sgd",
         form="pairwise", seeds=(0, 1), betas=(0.0, 15.0), epochs=2, **cfg):
    monkeypatch.setenv("USABLE_COMPILE", "1" if compile_ else "0")
    cfg.setdefault("lr", 0.01 if optimizer == "sgd" else 0.005)
    config = FitConfig(epochs=epochs, optimizer=optimizer, divergence_form=form, progress=False, threads=1, **cfg)
    return fit(data, create("decoders", decoder), divergence=create("divergences", divergence),
               schedule=create("schedules", "exp"), betas=list(betas), seeds=list(seeds), config=config)


def _same(a, b, atol=2e-5):
    da, db = a.to_dataset(), b.to_dataset()
    for v in ("cross_entropy", "divergence", "train_loss", "train_cross_entropy", "train_divergence",
              "test_cross_entropy_curve", "beta_in_force"):
        np.testing.assert_allclose(da[v].values, db[v].values, rtol=1e-4, atol=atol, err_msg=v)
    for ma, mb in zip(a.models, b.models):
        for x, y in zip(list(ma.parameters()) + list(ma.buffers()), list(mb.parameters()) + list(mb.buffers())):
            np.testing.assert_allclose(x.detach().numpy(), y.detach().numpy(), rtol=1e-3, atol=1e-5)


CASES = [("mlp", "l1:reduction=mean", "sgd"), ("mlp", "l1", "adam"), ("mlp:batch_norm=false", "tv", "adamw"), ("linear", "js", "sgd"),
         ("mlp:batch_norm=false", "skl", "adam"), ("mlp:hidden=8", "hellinger", "sgd"),
         ("mlp:hidden=8", "hellinger:squared=true", "adam"), ("mlp", "l2", "sgd"), ("linear", "l2:squared=true", "adamw")]


@pytest.mark.parametrize("decoder,divergence,optimizer", CASES, ids=[f"{a}-{b}-{c}" for a, b, c in CASES])
def test_compiled_epoch_equals_eager(crops, monkeypatch, decoder, divergence, optimizer):
    kw = dict(decoder=decoder, divergence=divergence, optimizer=optimizer, weight_decay=0.005)
    _same(_fit(crops, True, monkeypatch, **kw), _fit(crops, False, monkeypatch, **kw))


def test_three_sources_both_forms_and_schedule_per_step(monkeypatch):
    left = create("sources", "digits:view=crops,width=4")
    from usable import SourceData, Split
    three = SourceData(Split(left.train.xs + [left.train.xs[0].flip(-1)], left.train.y),
                       Split(left.test.xs + [left.test.xs[0].flip(-1)], left.test.y), ["a", "b", "c"], "classes", 10)
    for form in ("pairwise", "consensus"):
        kw = dict(form=form, divergence="js", schedule_per_step=True)
        _same(_fit(three, True, monkeypatch, **kw), _fit(three, False, monkeypatch, **kw))


def test_ensemble_over_datasets(monkeypatch):
    datas = [create("sources", f"digits:view=crops,width=5,split_seed={s}") for s in (0, 1)]
    _same(_fit(datas, True, monkeypatch, seeds=(0,)), _fit(datas, False, monkeypatch, seeds=(0,)))


def test_one_step_gradients_equal_eager_on_a_pid_task(monkeypatch):
    """One step on a one-hot task (128 samples, one batch): gradients to float rounding of the
    largest gradient (pre-batch-norm biases hold only rounding noise in both paths)."""
    data = create("sources", "pid:task=rdnxor,n=160")
    kw = dict(epochs=1, batch_size=128, momentum=0.0, weight_decay=0.0, lr=1e-30, seeds=(0,), betas=(15.0,))
    a, b = _fit(data, True, monkeypatch, **kw), _fit(data, False, monkeypatch, **kw)
    for ma, mb in zip(a.models, b.models):
        scale = max(float(p.grad.abs().max()) for p in mb.parameters())
        assert scale > 1e-2
        for x, y in zip(ma.parameters(), mb.parameters()):
            assert float((x.grad - y.grad).abs().max()) <= 1e-5 * scale


def test_a_member_does_not_depend_on_its_companions(crops, monkeypatch):
    alone = _fit(crops, True, monkeypatch, seeds=(1,), betas=(5.0,)).to_dataset()
    inside = _fit(crops, True, monkeypatch, seeds=(0, 1, 2), betas=(0.0, 5.0, 15.0)).to_dataset()
    for v in ("cross_entropy", "train_loss", "divergence"):
        np.testing.assert_array_equal(inside[v].sel(seed=1, beta=5.0).values, alone[v].sel(seed=1, beta=5.0).values)


def test_disabled_or_no_compiler_falls_back_to_eager(tmp_path):
    """USABLE_COMPILE=0 never builds the kernel; a missing compiler prints one notice and trains eagerly."""
    code = ("import usable, torch; d = usable.create('sources', 'digits:view=crops,width=5');"
            "r = usable.fit(d, usable.create('decoders', 'mlp'), divergence=usable.create('divergences', 'l1'),"
            " betas=[5.0], config=usable.FitConfig(epochs=1, optimizer='sgd', lr=0.01, progress=False, threads=1));"
            "print(float(r.to_dataset().cross_entropy.mean()))")
    env = {**os.environ, "USABLE_CACHE": str(tmp_path / "cache")}
    off = subprocess.run([sys.executable, "-c", code], env={**env, "USABLE_COMPILE": "0"}, capture_output=True, text=True)
    assert off.returncode == 0 and not (tmp_path / "cache").exists() and off.stderr == ""
    none = subprocess.run([sys.executable, "-c", code], env={**env, "CC": "/no/such/cc"}, capture_output=True, text=True)
    assert none.returncode == 0 and none.stderr.count("could not be compiled") == 1
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert on.returncode == 0 and list((tmp_path / "cache" / "kernels").glob("mlp_epoch-*.so"))
    assert float(off.stdout) == float(none.stdout)  # both eager: identical
    assert abs(float(on.stdout) - float(off.stdout)) < 1e-5  # the kernel: float tolerance


def test_callbacks_at_batch_end_use_the_eager_loop(crops, monkeypatch):
    class Count:
        n = 0

        def on_batch_end(self, state):
            Count.n += 1
    monkeypatch.setenv("USABLE_COMPILE", "1")
    fit(crops, create("decoders", "mlp"), seeds=[0], callbacks=[Count()], config=FitConfig(epochs=1, progress=False))
    assert Count.n == 12  # 1437 training images, batches of 128: the loop ran every step in Python
    torch.manual_seed(0)


@pytest.mark.parametrize("decoder", ["mlp", "mlp:batch_norm=false", "linear"])
def test_compiled_predict_equals_eager(monkeypatch, decoder):
    """Eval-mode outputs on a whole split (running batch-norm statistics), shared data and one
    dataset per member, equal eager's to float rounding."""
    from usable.loop import predict
    datas = [create("sources", f"digits:view=crops,width=5,split_seed={s}") for s in (0, 1)]
    r = _fit(datas, True, monkeypatch, decoder=decoder, seeds=(0, 1), epochs=1)
    xs = [torch.stack([d.test.xs[i] for d in datas]) for i in range(2)]
    member_data = torch.tensor(r.members.column("dataset"))
    for args in ((xs, member_data), ([x[0] for x in xs], None)):
        monkeypatch.setenv("USABLE_COMPILE", "1")
        a = predict(r.models, args[0], r.members.size, member_data=args[1])
        monkeypatch.setenv("USABLE_COMPILE", "0")
        b = predict(r.models, args[0], r.members.size, member_data=args[1])
        for x, y in zip(a, b):
            assert x.shape == y.shape == (r.members.size, len(datas[0].test), 10)
            np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-5)
        monkeypatch.setenv("USABLE_COMPILE", "1")  # the kernel answered (it did not fall back)
        assert type(r.models[0]).fused_predict(r.models, args[0], r.members.size, args[1], None) is not None
