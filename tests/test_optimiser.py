"""The loop's own optimiser does torch.optim's arithmetic bit for bit (SGD with momentum and weight
decay, Adam, AdamW, the exponential lr decay), on a flat parameter and on separate tensors."""
import pytest
import torch

from usable import FitConfig
from usable.loop import Optimiser


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.005])
def test_same_numbers_as_torch_optim(kind, weight_decay):
    cfg = FitConfig(optimizer=kind, lr=0.05, lr_decay=0.9, momentum=0.9, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 4, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    opt = Optimiser(ours, cfg)
    kw = dict(lr=cfg.lr, weight_decay=weight_decay)
    ref = {"sgd": lambda: torch.optim.SGD(theirs, momentum=0.9, **kw), "adam": lambda: torch.optim.Adam(theirs, **kw),
           "adamw": lambda: torch.optim.AdamW(theirs, **kw)}[kind]()
    sched = torch.optim.lr_scheduler.ExponentialLR(ref, gamma=0.9)
    for epoch in range(3):
        for _ in range(4):
            target = torch.randn(3, 4, generator=g)
            opt.step(((ours[0] - target) ** 2).sum() + ours[1].abs().sum())
            ref.zero_grad()
            (((theirs[0] - target) ** 2).sum() + theirs[1].abs().sum()).backward()
            ref.step()
        opt.decay()
        sched.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert opt.flat is not None  # the two tensors became views of one flat buffer
