"""Epoch-by-epoch storage for ``track``: an interrupted run keeps its finished epochs and resumes.

Layout of a checkpoint folder (``track:checkpoint=PATH``)::

    PATH/epochs.zarr/epoch-0001   one finished run per measured epoch (usable.store.write_run:
    PATH/epochs.zarr/epoch-0002   staged then renamed, so an epoch appears whole or not at all)
    PATH/state.pt                 main network weights + epochs trained + the run's spec, a
                                  usable checkpoint (plain data, read with weights_only=True),
                                  replaced atomically after each epoch's data is written

``usable results ls PATH/epochs.zarr`` lists the finished epochs while a run is going;
``EpochStore(PATH).combined()`` concatenates them along ``epoch``. The order (data first, then
state) means a crash can only lose the epoch in progress: on resume that epoch is retrained from
the last state and its measurement, if one was written, is replaced.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import xarray as xr

from usable import Results, SpecError, load_checkpoint, save_checkpoint


class CheckpointMismatch(SpecError):
    pass


class EpochStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.epochs_path = self.path / "epochs.zarr"
        self.state_path = self.path / "state.pt"

    @staticmethod
    def run_id(epoch: int) -> str:
        return f"epoch-{int(epoch):04d}"

    def done_epochs(self) -> list[int]:
        if not (self.epochs_path / "zarr.json").exists():
            return []
        return [int(r.split("-")[1]) for r in Results(self.epochs_path).runs if r.startswith("epoch-")]

    def write_epoch(self, ds: xr.Dataset, epoch: int) -> str:
        store = Results(self.epochs_path, create=True)
        rid = self.run_id(epoch)
        stale = self.epochs_path / rid
        if stale.exists():  # measured before a crash, then retrained from the previous state
            shutil.rmtree(stale)
        return store.write_run(ds, run_id=rid)

    def combined(self) -> xr.Dataset:
        epochs = sorted(self.done_epochs())
        if not epochs:
            raise SpecError(f"no finished epochs under {self.epochs_path}")
        store = Results(self.epochs_path)
        parts = [store[self.run_id(e)].load() for e in epochs]
        ds = xr.concat(parts, dim="epoch", data_vars="minimal", coords="minimal", compat="override",
                       combine_attrs="override")
        for k in ("run_id", "stored_time"):
            ds.attrs.pop(k, None)
        return ds

    def save_state(self, state: dict[str, Any]) -> None:
        """The main network's weights and plain metadata (atomic: the old state or the new one)."""
        meta = {k: v for k, v in state.items() if k != "model"}
        save_checkpoint(self.state_path, [state["model"]], **meta)

    def load_state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        state_dicts, meta = load_checkpoint(self.state_path)
        return {"model": state_dicts[0], **meta}

    def check_spec(self, spec: dict[str, Any]) -> None:
        """Resuming with different settings would mix two experiments in one run: refuse."""
        state = self.load_state()
        if state is None:
            return
        old = state.get("spec", {})
        diff = {k: (old.get(k), spec.get(k)) for k in set(old) | set(spec) if old.get(k) != spec.get(k)}
        if diff:
            raise CheckpointMismatch(
                f"checkpoint {self.path} was written by a run with different settings: "
                + "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
                + ". Use another checkpoint= folder, or delete this one to start over.")


def spec_key(spec: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(spec, default=str, sort_keys=True))
