"""``UsableCallback``: the tracker as a Lightning callback (extra ``[lightning]``).

A thin layer: the tracker is built when training starts (``on_train_start``) and measures
after every ``every``-th training epoch (``on_train_epoch_end``, epoch = epochs completed) and
after the last one (``on_train_end``). Under a DDP strategy Lightning has initialised
torch.distributed, so the tracker merges the statistics of every process and rank 0 writes.
"""
from __future__ import annotations

from typing import Any, Sequence

from usable import SpecError

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise SpecError("UsableCallback needs Lightning: pip install 'usable[lightning]' (or pip install lightning)") from None


class UsableCallback(Callback):
    """Track ``layers`` of the LightningModule (or of its submodule ``module``, e.g. ``"net"``).

    ``train``/``test``: the measurement data (DataLoader, Dataset or (x, y) tensors); by default
    the datasets of the trainer's training and first validation loader, read in dataset order.
    ``measure_start``: also measure the untrained model as epoch 0. Every other keyword
    (``n_classes``, ``store``, ``run``, ``every``, ``metrics``, ``pool``, ``decoder``, ...) goes
    to ``usable.Tracker``; ``callback.tracker`` is the tracker once training has started.
    """

    def __init__(self, layers: Sequence[str] | str = "auto", *, n_classes: int, train=None, test=None,
                 module: str | None = None, measure_start: bool = False, **tracker_kwargs: Any):
        super().__init__()
        self.layers, self.n_classes, self.train, self.test = layers, n_classes, train, test
        self.module, self.measure_start, self.kwargs = module, bool(measure_start), tracker_kwargs
        self.tracker = None
        self._last = None

    def _data(self, trainer, given, which: str):
        if given is not None:
            return given
        loader = trainer.train_dataloader if which == "train" else trainer.val_dataloaders
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        if isinstance(loader, dict):
            loader = next(iter(loader.values()), None)
        if loader is None:
            raise SpecError(f"UsableCallback: no {which} data; pass {'train' if which == 'train' else 'test'}= "
                            "(a DataLoader, Dataset or (x, y) tensors)")
        return loader

    def on_train_start(self, trainer, pl_module) -> None:
        if self.tracker is None:
            from .tracker import Tracker
            model = pl_module.get_submodule(self.module) if self.module else pl_module
            self.tracker = Tracker(model, self.layers, train=self._data(trainer, self.train, "train"),
                                   test=self._data(trainer, self.test, "test"), n_classes=self.n_classes,
                                   **self.kwargs)
        if self.measure_start and trainer.current_epoch == 0:
            self.tracker.epoch_end(0, force=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._last = trainer.current_epoch + 1  # epochs completed
        self.tracker.epoch_end(self._last)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last is not None and self._last not in self.tracker.done_epochs:
            self.tracker.epoch_end(self._last, force=True)
