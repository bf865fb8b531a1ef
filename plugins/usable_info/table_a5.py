"""``rine_table``: the RINE paper's Table 1 / Table A5 in one run.

Every canonical task is sampled (``pid`` source), and all (seed, β) members of a task train
together in one vectorised ``fit``; the result is one Dataset with dims (task, seed, beta), the
paper's published numbers beside it, and a printed comparison (``attrs["report"]``).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from usable import Param
from usable.info import null_logp
from usable.params import SpecError

from .metrics import _var

# RINE paper, Table A5 (β = 0, 5, 15; mean over 5 seeds) and Table 1 (β = 15: mean and sd).
# Only Table 1 publishes standard deviations; NaN where the paper gives none.
PAPER_MEAN = {
    "unq": {0.0: 0.981, 5.0: 0.809, 15.0: 0.006},
    "and": {0.0: 0.318, 5.0: 0.008, 15.0: 0.007},
    "rdnxor": {0.0: 0.981, 5.0: 0.983, 15.0: 0.977},
    "imperfectrdn": {0.0: 0.983, 5.0: 0.978, 15.0: 0.984},
}
PAPER_SD = {"unq": {15.0: 0.016}, "and": {15.0: 0.001}, "rdnxor": {15.0: 9e-4}, "imperfectrdn": {15.0: 0.002}}
DEFAULT_TASKS = "unq-and-rdnxor-imperfectrdn"


def _tasks(text) -> list[str]:
    items = text if isinstance(text, (list, tuple)) else str(text).replace(";", "-").split("-")
    return [t.strip().lower() for t in items if str(t).strip()]


def compute_rine_table(ctx, tasks=DEFAULT_TASKS, n: int = 10000, test_fraction: float = 0.2,
                       data_seed: int = 0, encoding: str = "onehot", average_last: int = 1) -> xr.Dataset:
    """RINE on each canonical task for every (seed, β) of the context; one fit per task shape.

    ``average_last`` = k > 1 also reports the RINE reference code's protocol (the paper's tables):
    H_V(Y|∅) minus the held-out cross-entropy averaged over the last k epochs, not just the last.
    """
    from usable_pid import REDUNDANCY, TASKS, make_pid  # the pid plugin ships the exact tables

    tasks = _tasks(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise SpecError(f"rine_table: unknown task(s) {unknown}; choose from {', '.join(sorted(TASKS))} "
                        "joined by '-', e.g. rine_table:tasks=unq-and")
    if ctx.sources:
        raise SpecError("rine_table builds its own pid sources from tasks=...; drop --source")
    requested = [float(b) for b in ctx.betas]
    betas = sorted(set(requested) | {0.0})  # β = 0 also gives each source's own usable information
    keep = [betas.index(b) for b in requested]
    b0 = betas.index(0.0)
    n_src = {len(TASKS[t][0]) - 2 for t in tasks}
    if len(n_src) != 1:
        raise SpecError(f"rine_table: tasks {tasks} mix 2- and 3-source tasks; run them separately")
    ri, div, usable, ce_all, h_nulls, last_k = [], [], [], [], [], []
    def h_null_of(d):
        return float(-null_logp(d, "test")[0].double().mean())
    datas = {t: make_pid(task=t, n=n, test_fraction=test_fraction, seed=data_seed, encoding=encoding)
             for t in tasks}
    # Tasks of one shape (inputs, classes) train as ONE ensemble of (task, seed, β) members.
    groups: dict = {}
    for t, d in datas.items():
        groups.setdefault((tuple(d.in_shape(i) for i in range(d.n_sources)), d.n_classes), []).append(t)
    fitted = {}
    for members in groups.values():
        res = ctx.fit([datas[t] for t in members], betas=betas, desc=f"rine_table {'+'.join(members)}")
        for g, t in enumerate(members):
            fitted[t] = (res, g)
    for task in tasks:
        data, (res, g) = datas[task], fitted[task]

        def part(arr, res=res, g=g):  # this task's (seed, beta, ...) block of a member array
            a = res.by_seed_beta(arr)
            return a[g] if res.n_datasets > 1 else a
        curve = res.history["test_ce"][-int(average_last):]  # (k, E, n) bits
        if np.isnan(curve).any():
            raise SpecError("rine_table: average_last needs the held-out curve every epoch (eval_every = 1)")
        h_null = h_null_of(data)
        last_k.append(h_null - part(curve.mean(axis=0))[:, keep].mean(axis=2))
        ce = part(res.test_ce)  # (seed, beta_all, source)
        ri.append(h_null - ce[:, keep].mean(axis=2))
        div.append(part(res.test_divergence)[:, keep])
        usable.append(h_null - ce[:, b0])
        ce_all.append(ce[:, keep])
        h_nulls.append(h_null)
    nan = float("nan")
    paper_mean = np.array([[PAPER_MEAN.get(t, {}).get(b, nan) for b in requested] for t in tasks])
    paper_sd = np.array([[PAPER_SD.get(t, {}).get(b, nan) for b in requested] for t in tasks])
    ri = np.stack(ri)
    ds = xr.Dataset(
        {
            "redundant_information": _var(ri, ("task", "seed", "beta"),
                                          "redundant information I∩ = H_V(Y|∅) − mean held-out cross-entropy"),
            "divergence": _var(np.stack(div), ("task", "seed", "beta"), "held-out divergence D(f_1..f_n)", units="1"),
            "cross_entropy": _var(np.stack(ce_all), ("task", "seed", "beta", "source"),
                                  "held-out cross-entropy of each decoder"),
            "usable_information": _var(np.stack(usable), ("task", "seed", "source"),
                                       "each source's own usable information (β = 0 decoders)"),
            "null_entropy": _var(np.array(h_nulls), ("task",), "H_V(Y|∅) on the test split"),
            "redundant_information_last": _var(np.stack(last_k), ("task", "seed", "beta"),
                                               f"I∩ from the held-out cross-entropy averaged over the last "
                                               f"{int(average_last)} epochs (the RINE reference code's protocol)"),
            "paper_mean": _var(paper_mean, ("task", "beta"), "RINE paper Table A5 / Table 1 mean over 5 seeds"),
            "paper_sd": _var(paper_sd, ("task", "beta"), "RINE paper Table 1 sd over 5 seeds (NaN: not published)"),
            "true_redundancy": _var(np.array([REDUNDANCY[t] for t in tasks]), ("task",),
                                    "ground-truth redundancy I∧∩ (Griffith et al.)"),
        },
        coords={"task": tasks, "seed": [int(s) for s in ctx.seeds], "beta": requested,
                "source": [f"x{i + 1}" for i in range(n_src.pop())]},
    )
    ds.attrs.update({
        "headline": ["redundant_information", "redundant_information_last"] if average_last > 1
        else ["redundant_information"],
        "report": format_report(ds, "redundant_information_last" if average_last > 1 else "redundant_information"),
        "compared_variable": "redundant_information_last" if average_last > 1 else "redundant_information",
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


def register_all(register):
    register("rine_table", compute_rine_table, params=[
        Param("tasks", DEFAULT_TASKS, str, "canonical pid tasks joined by '-' (unq, and, rdnxor, imperfectrdn, xor, ...)"),
        Param("n", 10000, int, "samples drawn per task (the paper: 10,000)"),
        Param("test_fraction", 0.2, float, "held-out fraction (the paper: 0.2)"),
        Param("data_seed", 0, int, "seed of each task's draw and split (fixed across training seeds)"),
        Param("encoding", "onehot", str, "source encoding: one-hot vectors, or index (one scalar per source, "
              "as the RINE reference code feeds its toy decoders)", choices=("onehot", "index")),
        Param("average_last", 1, int, "also report I∩ from the held-out cross-entropy averaged over the "
              "last k epochs (the reference code uses 5)"),
    ], help="RINE paper Table 1 / A5: RINE on the canonical tasks for every (seed, β), paper numbers beside")
