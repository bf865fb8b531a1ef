"""A configured run: plugin specs + fit settings -> a metric's Dataset with full provenance."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import torch
import xarray as xr

from . import __version__
from .data import SourceData, combine
from .fit import FitConfig, FitResult, fit
from .params import SpecError
from .registry import get_entry, get_manager
from .spec import Spec, parse_spec


def parse_int_list(values: Sequence[str | int] | str) -> list[int]:
    """'0-4' -> [0,1,2,3,4]; '0,2,5' -> [0,2,5]; also lists of such items."""
    items = [values] if isinstance(values, (str, int)) else list(values)
    out: list[int] = []
    for item in items:
        for tok in str(item).split(","):
            tok = tok.strip()
            if not tok:
                continue
            m = re.fullmatch(r"(-?\d+)-(-?\d+)", tok)
            out.extend(range(int(m[1]), int(m[2]) + 1) if m else [int(tok)])
    return out


def parse_float_list(values: Sequence[str | float] | str) -> list[float]:
    items = [values] if isinstance(values, (str, int, float)) else list(values)
    return [float(t) for item in items for t in str(item).split(",") if t.strip()]


@dataclass
class RunContext:
    """Everything a metric needs: resolved plugins, the data, and the one training loop."""

    metric: Spec
    sources: list[Spec]
    decoder: Spec = field(default_factory=lambda: Spec("mlp"))
    divergence: Spec | None = field(default_factory=lambda: Spec("l1"))
    schedule: Spec = field(default_factory=lambda: Spec("exp"))
    betas: list[float] = field(default_factory=lambda: [0.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    fit_config: FitConfig = field(default_factory=FitConfig)

    @cached_property
    def data(self) -> SourceData:
        """The sources of every ``--source`` spec, combined (targets must agree)."""
        if not self.sources:
            raise SpecError("no --source given; e.g. --source pid:task=and (see `usable list sources`)")
        datas = [get_entry("sources", s.name).create(s.params) for s in self.sources]
        return combine(datas)

    def source_data(self, spec: Spec) -> SourceData:
        return get_entry("sources", spec.name).create(spec.params)

    def decoder_obj(self, spec: Spec | None = None):
        spec = spec or self.decoder
        return get_entry("decoders", spec.name).create(spec.params)

    def divergence_fn(self, target: str):
        if self.divergence is None:
            return None
        entry = get_entry("divergences", self.divergence.name)
        allowed = entry.extra.get("targets", ("classes",))
        if target not in allowed:
            fits = [n for n in get_manager().registry("divergences").names()
                    if target in get_entry("divergences", n).extra.get("targets", ("classes",))]
            raise SpecError(f"divergence {entry.name!r} works on {'/'.join(allowed)} targets, but this "
                            f"source has a {target} target; use one of: {', '.join(fits)}")
        return entry.create(self.divergence.params)

    def schedule_fn(self):
        return get_entry("schedules", self.schedule.name).create(self.schedule.params)

    def fit(self, data: SourceData | Sequence[SourceData] | None = None, *, betas: Sequence[float] | None = None,
            seeds: Sequence[int] | None = None, decoders=None, desc: str | None = None,
            **config_changes: Any) -> FitResult:
        """Run the one training loop with this context's plugins and settings."""
        data = data if data is not None else self.data
        first = data[0] if isinstance(data, (list, tuple)) else data  # a list: one ensemble over datasets
        betas = list(self.betas if betas is None else betas)
        divergence = None
        if first.n_sources > 1 and self.divergence is not None:
            if any(b > 0 for b in betas):
                divergence = self.divergence_fn(first.target)  # required: a mismatch is an error
            else:
                # β = 0 trains no divergence, but its held-out value is still a useful diagnostic
                # (how far apart unconstrained decoders are) when the divergence fits the target.
                try:
                    divergence = self.divergence_fn(first.target)
                except SpecError:
                    divergence = None
        return fit(data, decoders if decoders is not None else self.decoder_obj(),
                   divergence=divergence,
                   schedule=self.schedule_fn(), betas=betas,
                   seeds=list(self.seeds if seeds is None else seeds),
                   config=replace(self.fit_config, **config_changes), desc=desc or str(self.metric))

    def provenance(self) -> dict[str, Any]:
        return {
            "metric": str(self.metric),
            "sources": [str(s) for s in self.sources],
            "decoder": str(self.decoder),
            "divergence": str(self.divergence) if self.divergence else "none",
            "schedule": str(self.schedule),
            "betas": [float(b) for b in self.betas],
            "seeds": [int(s) for s in self.seeds],
            "fit": json.dumps(self.fit_config.to_attrs()),
        }


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "none"
    except Exception:
        return "none"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment_attrs() -> dict[str, Any]:
    return {
        "usable_version": __version__,
        "plugin_versions": json.dumps(get_manager().versions(), sort_keys=True),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "git_commit": _git_commit(),
        "command_line": " ".join(shlex.quote(a) for a in sys.argv),
    }


def run_metric(ctx: RunContext) -> xr.Dataset:
    """Compute ``ctx.metric`` and stamp the result with its provenance."""
    entry = get_entry("metrics", ctx.metric.name)
    start = now_iso()
    ds = entry.create(ctx.metric.params, ctx=ctx)
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"metric {entry.name!r} (plugin {entry.plugin}) returned {type(ds).__name__}, not an xarray Dataset")
    ds.attrs.update(ctx.provenance())
    ds.attrs.update(environment_attrs())
    ds.attrs.update({"start_time": start, "end_time": now_iso()})
    return ds
