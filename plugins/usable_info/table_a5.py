"""``rine_table``: the RINE paper's Table 1 / Table A5 in one run.

Every canonical task is sampled (``pid`` source), and all (seed, β) members of a task train
together in one vectorised ``fit``; the result is one Dataset with dims (task, seed, beta), the
paper's published numbers beside it, and a printed comparison (``attrs["report"]``).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import SpecError, create, get_entry, null_logp

from .metrics import named, rine_result

# RINE paper, Table A5 (β = 0, 5, 15; mean over 5 seeds) and Table 1 (β = 15: mean and sd): the
# one place these numbers are written. Only Table 1 publishes standard deviations.
PAPER_MEAN = {
    "unq": {0.0: 0.981, 5.0: 0.809, 15.0: 0.006},
    "and": {0.0: 0.318, 5.0: 0.008, 15.0: 0.007},
    "rdnxor": {0.0: 0.981, 5.0: 0.983, 15.0: 0.977},
    "imperfectrdn": {0.0: 0.983, 5.0: 0.978, 15.0: 0.984},
}
PAPER_SD = {"unq": {15.0: 0.016}, "and": {15.0: 0.001}, "rdnxor": {15.0: 9e-4}, "imperfectrdn": {15.0: 0.002}}


def compute_rine_table(ctx, tasks: list[str], n: int, test_fraction: float, data_seed: int, encoding: str,
                       average_last: int, max_divergence: float) -> xr.Dataset:
    """RINE on each canonical task for every (seed, β) of the context; one fit per task shape.

    The tasks are the ``pid`` source's, created by spec through the registry. ``average_last`` =
    k > 1 also reports the RINE reference code's protocol (the paper's tables): H_V(Y|∅) minus the
    held-out cross-entropy averaged over the last k epochs, not just the last.
    """
    known = next(p for p in get_entry("sources", "pid").params if p.name == "task").choices
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise SpecError(f"rine_table: unknown task(s) {unknown}; choose from {', '.join(sorted(known))} "
                        "joined by '+', e.g. rine_table:tasks=unq+and")
    if ctx.sources:
        raise SpecError("rine_table builds its own pid sources from tasks=...; drop --source")
    if average_last < 1:
        raise SpecError(f"rine_table: average_last={average_last}; average over k >= 1 epochs")
    requested = [float(b) for b in ctx.betas]
    datas = {t: create("sources", f"pid:task={t},n={n},test_fraction={test_fraction},seed={data_seed},"
                                  f"encoding={encoding}") for t in tasks}
    if len({d.n_sources for d in datas.values()}) != 1:
        raise SpecError(f"rine_table: tasks {tasks} mix 2- and 3-source tasks; run them separately")
    # Tasks of one shape (inputs, classes) train as ONE ensemble of (task, seed, β) members.
    groups: dict = {}
    for t, d in datas.items():
        groups.setdefault((tuple(d.in_shape(i) for i in range(d.n_sources)), d.n_classes), []).append(t)
    fitted = {}
    for members in groups.values():
        res = ctx.fit([datas[t] for t in members], betas=sorted(set(requested) | {0.0}), dataset_names=members,
                      desc=f"rine_table {'+'.join(members)}")
        r = res.to_dataset()
        for t in members:
            fitted[t] = r.sel(dataset=t, drop=True)
    null = xr.DataArray(np.stack([null_logp(datas[t], "test")[0].double().numpy() for t in tasks]),
                        dims=("task", "sample"), coords={"task": tasks})  # tasks draw equal test splits
    h_null = -null.mean("sample")
    r = xr.concat([fitted[t] for t in tasks], dim=xr.DataArray(tasks, dims="task", name="task"))
    at = r.sel(beta=requested)
    curve = at.test_cross_entropy_curve.isel(epoch=slice(-int(average_last), None))
    if curve.isnull().any():
        raise SpecError("rine_table: average_last needs the held-out curve every epoch (eval_every = 1)")
    paper_mean = [[PAPER_MEAN.get(t, {}).get(b, np.nan) for b in requested] for t in tasks]
    paper_sd = [[PAPER_SD.get(t, {}).get(b, np.nan) for b in requested] for t in tasks]
    compared = "redundant_information_last" if average_last > 1 else "redundant_information"
    ds = rine_result(r, at, h_null, null, max_divergence).assign({
        "redundant_information_last": named(h_null - curve.mean("epoch").mean("source"),
                                            f"I∩ from the held-out cross-entropy averaged over the last "
                                            f"{int(average_last)} epochs (the RINE reference code's protocol)"),
        "paper_mean": named(xr.DataArray(paper_mean, dims=("task", "beta")), "RINE paper Table A5 / Table 1 mean over 5 seeds"),
        "paper_sd": named(xr.DataArray(paper_sd, dims=("task", "beta")), "RINE paper Table 1 sd over 5 seeds (NaN: not published)"),
        "true_redundancy": named(xr.DataArray([datas[t].attrs["true_redundancy_bits"] for t in tasks], dims="task"),
                                 "ground-truth redundancy I∧∩ (Griffith et al.)"),
    }).transpose("task", "seed", "beta", ...)
    ds.attrs.update({
        "headline": ["redundant_information", "redundant_information_last"] if average_last > 1
        else ["redundant_information"],
        "report": format_report(ds, compared), "compared_variable": compared,
        "encoding": encoding, "average_last": int(average_last),
        "samples": int(n), "test_fraction": float(test_fraction), "data_seed": int(data_seed),
        "divergence_form": ctx.fit_config.divergence_form,
        "split_fitted": "train", "split_evaluated": "test", "target": "classes",
    })
    return ds


def format_report(ds: xr.Dataset, var: str = "redundant_information") -> str:
    """Ours mean (sd over seeds) next to the paper's numbers, one line per (task, β)."""
    ri = ds[var]
    mean = ri.mean("seed")
    sd = ri.std("seed", ddof=1) if ds.sizes["seed"] > 1 else mean * np.nan
    lines = [f"RINE paper Table A5 / Table 1 (bits); ours = {var}",
             f"{'task':<14}{'beta':>6}{'ours mean':>11}{'(sd)':>9}{'paper':>8}{'(sd)':>9}{'ours-paper':>12}"]
    for t in ds.task.values:
        for b in ds.beta.values:
            m, s = float(mean.sel(task=t, beta=b)), float(sd.sel(task=t, beta=b))
            pm, ps = float(ds.paper_mean.sel(task=t, beta=b)), float(ds.paper_sd.sel(task=t, beta=b))
            ps_txt = f"({ps:.3f})" if np.isfinite(ps) else ""
            diff = f"{m - pm:+.3f}" if np.isfinite(pm) else ""
            lines.append(f"{t:<14}{b:>6g}{m:>11.3f}{f'({s:.3f})':>9}{pm:>8.3f}{ps_txt:>9}{diff:>12}")
    return "\n".join(lines)
