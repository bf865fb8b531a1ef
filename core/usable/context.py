"""A run in progress: a RunSpec's plugins resolved, its data loaded once, the one training loop
at hand; ``run_metric`` computes the metric and stamps the result with its provenance."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import shlex
import subprocess
import sys
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import SpecError, UserError
from .registry import get_entry, get_manager
from .runspec import RunSpec
from .spec import Spec


class RunContext:
    """Everything a metric needs: ``ctx.data`` (the combined sources), ``ctx.fit(...)`` (the one
    training loop with the run's decoder, divergence, schedule, βs, seeds and settings),
    ``ctx.decoder_obj()``, ``ctx.divergence_fn(target)``; ``ctx.spec`` is the RunSpec."""

    def __init__(self, spec: RunSpec, data=None):
        self.spec = spec
        if data is not None:
            self.__dict__["data"] = data

    metric = property(lambda self: self.spec.metric)
    sources = property(lambda self: list(self.spec.sources))
    decoder = property(lambda self: self.spec.decoder)
    divergence = property(lambda self: self.spec.divergence)
    schedule = property(lambda self: self.spec.schedule)
    betas = property(lambda self: list(self.spec.betas))
    seeds = property(lambda self: list(self.spec.seeds))
    fit_config = property(lambda self: self.spec.fit)

    @cached_property
    def data(self):
        """The sources of every ``--source`` spec, combined (targets must agree)."""
        from .data import combine
        if not self.spec.sources:
            raise SpecError("no --source given; e.g. --source pid:task=and (see `usable list sources`)")
        return combine([get_entry("sources", s.name).create(s.params) for s in self.spec.sources])

    def decoder_obj(self, spec: Spec | None = None):
        spec = spec or self.decoder
        return get_entry("decoders", spec.name).create(spec.params)

    def divergence_fn(self, target: str):
        if self.divergence is None:
            return None
        entry = get_entry("divergences", self.divergence.name)
        allowed = entry.extra.get("targets", ("classes",))
        if target not in allowed:
            reg = get_manager().registry("divergences")
            fits = [n for n in reg.names() if target in reg.get(n).extra.get("targets", ("classes",))]
            raise SpecError(f"divergence {entry.name!r} works on {'/'.join(allowed)} targets, but this source "
                            f"has a {target} target; use one of: {', '.join(fits)}")
        return entry.create(self.divergence.params)

    def schedule_fn(self):
        return get_entry("schedules", self.schedule.name).create(self.schedule.params)

    def fit(self, data=None, *, betas: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
            decoders=None, desc: str | None = None, **fit_kwargs: Any):
        """Run the one training loop with this run's plugins and settings. Keyword arguments that
        name training settings (``epochs=3``) change them; the rest go to ``usable.fit``."""
        from .loop import fit
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
        settings = {k: fit_kwargs.pop(k) for k in list(fit_kwargs) if hasattr(self.fit_config, k)}
        return fit(data, decoders if decoders is not None else self.decoder_obj(), divergence=divergence,
                   schedule=self.schedule_fn(), betas=betas, seeds=list(self.seeds if seeds is None else seeds),
                   config=replace(self.fit_config, **settings), desc=desc or str(self.metric), **fit_kwargs)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "none"
    except Exception:
        return "none"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment_attrs() -> dict[str, Any]:
    """Versions, git commit and command line: the provenance every stored result carries."""
    import torch
    return {"usable_version": __version__, "plugin_versions": json.dumps(get_manager().versions(), sort_keys=True),
            "torch_version": torch.__version__, "python_version": platform.python_version(),
            "git_commit": _git_commit(), "command_line": " ".join(shlex.quote(a) for a in sys.argv)}


def run_metric(run: RunSpec | RunContext):
    """Compute the run's metric and stamp the result with its provenance."""
    import xarray as xr

    from .xrcompat import install
    install()
    ctx = run if isinstance(run, RunContext) else RunContext(run)
    entry = get_entry("metrics", ctx.metric.name)
    start = now_iso()
    ds = entry.create(ctx.metric.params, ctx=ctx)
    if not isinstance(ds, xr.Dataset):
        raise UserError(f"metric {entry.name!r} (plugin {entry.plugin}) returned {type(ds).__name__}, "
                        "not an xarray Dataset; fix the plugin")
    ds.attrs.update(ctx.spec.to_attrs())
    ds.attrs.update(environment_attrs())
    ds.attrs.update({"start_time": start, "end_time": now_iso()})
    return ds
