"""UsableCallback: a Lightning run writes the same arrays as the plain tracker in a plain loop
(same seed, same data, same training steps)."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import usable

L = pytest.importorskip("lightning")

C, EPOCHS = 3, 2
LAYERS = ["2", "6"]


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    return torch.randn(n, 3, 8, 8, generator=g) + 0.5 * y.float().view(-1, 1, 1, 1), y


TRAIN, TEST = _data(60, 1), _data(30, 2)
KW = dict(n_classes=C, every=1, dib_epochs=2, dib_batch_size=16, seed=3)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, C))


def _loader():
    return DataLoader(TensorDataset(*TRAIN), batch_size=20, shuffle=False)


class Module(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = _net()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def test_lightning_callback_writes_what_the_plain_tracker_writes(tmp_path):
    from usable.integrations.lightning import UsableCallback
    cb = UsableCallback(LAYERS, module="net", train=TensorDataset(*TRAIN), test=TEST, store=tmp_path / "pl.zarr",
                        run="pl", **KW)
    trainer = L.Trainer(max_epochs=EPOCHS, callbacks=[cb], accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Module(), _loader())
    got = usable.open_results(tmp_path / "pl.zarr")["pl"].load()

    net = _net()  # the same training in a plain loop, tracked by hand
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    tracker = usable.Tracker(net, LAYERS, train=TensorDataset(*TRAIN), test=TEST, store=tmp_path / "plain.zarr",
                             run="plain", **KW)
    for epoch in range(1, EPOCHS + 1):
        with tracker.epoch(epoch):
            net.train()
            for x, y in _loader():
                opt.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
    want = usable.open_results(tmp_path / "plain.zarr")["plain"].load()

    assert got.epoch.values.tolist() == want.epoch.values.tolist() == [1, 2]
    assert sorted(got.data_vars) == sorted(want.data_vars) and "sufficiency" in got and "nc1" in got
    for v in want.data_vars:
        np.testing.assert_array_equal(got[v].values, want[v].values, err_msg=v)
    for c in ("layer_name", "layer_decoder", "layer_dim"):
        assert got[c].values.tolist() == want[c].values.tolist()
    assert got.attrs["dib_decoder"] == want.attrs["dib_decoder"] and got.attrs["dib_decoder"].startswith("suffix")
    assert cb.tracker.done_epochs == [1, 2]
