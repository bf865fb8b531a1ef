"""A tracker's run in a results store, rewritten whole after each measured epoch.

Each write reads the run's finished epochs, adds the new one, and puts the result in place with
the store's staging and one rename (``Results.staged`` / ``Results.commit(replace=True)``): a
reader or a crash sees the run before or after an epoch, never half of one. A run that stopped
half-way therefore holds its finished epochs; a tracker with the same store, run name and
settings continues it. Measuring epoch e replaces a stored epoch e and drops stored epochs
after e (they belong to a training that was abandoned, e.g. restarted from an earlier
checkpoint). A lock per run keeps two writers from interleaving.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import secrets
import warnings
from typing import Any

import xarray as xr

from usable import ZARR_FORMAT, Results, SpecError, StoreError, quiet_zarr, storable

_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")


def new_run_name() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"track-{stamp}-{secrets.token_hex(4)}"


class RunWriter:
    def __init__(self, path, run: str | None, settings: dict[str, Any]):
        self.results = Results(path, create=True)
        self.run_id = run or new_run_name()
        if not isinstance(self.run_id, str) or not _RUN.fullmatch(self.run_id):
            raise SpecError(f"run={self.run_id!r}: use 1-200 letters, digits, '_', '-', '.' or '+', starting with "
                            "a letter or digit")
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.resumed = self.run_id in self.results.runs
        if self.resumed:
            self._check(self.results.attrs(self.run_id))
        self._last = None  # the run as this writer last wrote it (read back from the store only once)

    def _check(self, attrs: dict[str, Any]) -> None:
        if attrs.get("kind") != "tracker":
            raise SpecError(f"run {self.run_id!r} in {self.results.path} was not written by a tracker; "
                            "choose another run= name")
        old = json.loads(attrs.get("tracker_settings", "{}"))
        diff = {k: (old.get(k), self.settings.get(k)) for k in sorted(set(old) | set(self.settings))
                if old.get(k) != self.settings.get(k)}
        if diff:
            raise SpecError(f"run {self.run_id!r} in {self.results.path} was written with other settings ("
                            + "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
                            + "); choose another run= name to start a new run")

    def stored(self) -> xr.Dataset | None:
        if self._last is not None:
            return self._last
        if self.run_id not in self.results.runs:
            return None
        return self.results[self.run_id].load()

    def write(self, ds: xr.Dataset, epoch: int, attrs: dict[str, Any]) -> xr.Dataset:
        """Add (or replace) ``epoch``; returns the whole run as written."""
        with self.results.lock(f"{self.run_id}.tracker"):
            old = self.stored()
            parts = [ds]
            start = attrs.get("start_time")
            if old is not None:
                start = old.attrs.get("start_time", start)
                later = [int(e) for e in old.epoch.values if int(e) > epoch]
                if later:
                    warnings.warn(f"tracker run {self.run_id!r}: epoch {epoch} measured again; the stored epochs "
                                  f"{later} after it belong to the earlier training and are dropped", stacklevel=3)
                keep = old.sel(epoch=old.epoch < epoch)
                if keep.sizes["epoch"]:
                    if list(map(str, keep.layer_name.values)) != list(map(str, ds.layer_name.values)):
                        raise SpecError(f"run {self.run_id!r} measured layers {list(keep.layer_name.values)}, "
                                        f"now {list(ds.layer_name.values)}; choose another run= name")
                    parts = [keep, ds]
            run = parts[0].copy() if len(parts) == 1 else xr.concat(parts, dim="epoch", data_vars="minimal",
                                                             coords="minimal", compat="override",
                                                             combine_attrs="override", join="outer")
            run.attrs = {**ds.attrs, **attrs, "start_time": start,
                         "epochs_measured": [int(e) for e in run.epoch.values],
                         "epochs_trained": int(run.epoch.values.max())}
            out = storable(run)
            out.attrs["run_id"] = self.run_id
            out.attrs["stored_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            with self.results.staged(self.run_id) as stage:
                try:
                    with quiet_zarr():
                        out.to_zarr(str(stage), mode="w", zarr_format=ZARR_FORMAT, consolidated=False)
                except OSError as exc:
                    raise StoreError(f"writing run {self.run_id!r} into {self.results.path} failed: "
                                     f"{exc.strerror or exc}") from None
                self.results.commit(stage, self.run_id, replace=True)
            self._last = run
            return run
