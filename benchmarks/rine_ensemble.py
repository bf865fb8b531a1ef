"""The RINE paper's Table A5 sweep (4 tasks × β ∈ {0, 5, 15} × 5 seeds = 60 cells), timed two ways
in the same run, through the same code path (``usable.fit``):

  (a) sequential: 60 separate one-member fits, one after another;
  (b) vectorised: ONE fit whose 60 (task, seed, β) members train as one batched model
      (``fit`` takes a list of same-shaped datasets: each member trains on its own task).

Prints a table and writes benchmarks/results/rine_ensemble.json (both times, speed-up, threads,
torch version, and the largest per-cell difference between the two). Each cell of (b) starts from
the same weights and draws the same mini-batches as its twin in (a); only float rounding differs
(batched vs single matmuls), so cells agree closely but not bitwise.

Data: the shipped config's encoding (each source one scalar symbol, as the RINE reference code),
and every task's decoder over 4 classes (``usable.data.with_classes``; AND and IMPERFECTRDN never
use two of them), so that all 60 cells share one shape. Both paths use exactly this data.

Threads: a short probe times each path at 1 and at 2 torch threads and each uses its faster
(one-member fits: 1 thread, where extra threads only add synchronisation to tiny kernels; the
60-member model: its batched matmuls can split across both cores).

    python benchmarks/rine_ensemble.py            # the full sweep (30 epochs, as the paper)
    python benchmarks/rine_ensemble.py --epochs 5 # a quicker look
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from usable import FitConfig, create, fit, null_logp, with_classes

TASKS = ["unq", "and", "rdnxor", "imperfectrdn"]
BETAS = [0.0, 5.0, 15.0]
SEEDS = [0, 1, 2, 3, 4]
OUT = Path(__file__).resolve().parent / "results" / "rine_ensemble.json"


def run_fit(data, betas, seeds, epochs, threads):
    cfg = FitConfig(epochs=epochs, batch_size=128, optimizer="sgd", lr=0.01, lr_decay=0.97, momentum=0.9,
                    weight_decay=0.005, threads=threads, progress=False, device="cpu")
    return fit(data, create("decoders", "mlp:hidden=25+15+10"), divergence=create("divergences", "l1:reduction=mean"),
               schedule=create("schedules", "exp:gamma=0.97"), betas=betas, seeds=seeds, config=cfg)


def mean_ce(res):
    """(dataset, seed, beta) mean over sources of the held-out cross-entropy, in bits."""
    return res.to_dataset().cross_entropy.mean("source").values


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    # The shipped config's data (each source one scalar symbol, the reference code's encoding),
    # every task's decoder over 4 classes: all 60 cells then share one shape and train as one model.
    datas = {t: with_classes(create("sources", f"pid:task={t},n=10000,test_fraction=0.2,seed=0,encoding=index"), 4)
             for t in TASKS}
    h_null = {t: float(-null_logp(d, "test")[0].double().mean()) for t, d in datas.items()}
    all_data = [datas[t] for t in TASKS]

    # Threads, measured for each path (after a warm-up): tiny one-member fits are fastest on one
    # thread; the 60-member model's batched matmuls can use both cores.
    run_fit(datas["rdnxor"], BETAS, SEEDS[:1], 1, 1)
    probe = {"sequential": {}, "vectorised": {}}
    for th in (1, 2):
        probe["sequential"][th] = timed(lambda: run_fit(datas["rdnxor"], [5.0], [0], 2, th))[1]
        probe["vectorised"][th] = timed(lambda: run_fit(all_data, BETAS, SEEDS, 2, th))[1]
    threads = {k: min(v, key=v.get) for k, v in probe.items()}

    vec, seq = {}, {}
    t_seq = c_seq = 0.0
    # (b) vectorised: the whole sweep, 4 tasks × 5 seeds × 3 β = 60 members, as one fit
    torch.set_num_threads(threads["vectorised"])
    res, t_vec, c_vec = timed(lambda: run_fit(all_data, BETAS, SEEDS, args.epochs, threads["vectorised"]))
    per_task = mean_ce(res)  # (task, seed, beta)
    for g, task in enumerate(TASKS):
        vec[task] = h_null[task] - per_task[g]
    print(f"vectorised (1 fit, 60 members) {t_vec:7.1f} s wall {c_vec:7.1f} s cpu", flush=True)
    torch.set_num_threads(threads["sequential"])
    for task in TASKS:  # (a) sequential: 60 one-member fits
        cells = np.zeros((len(SEEDS), len(BETAS)))
        for i, s in enumerate(SEEDS):
            for j, b in enumerate(BETAS):
                res, w, c = timed(lambda: run_fit(datas[task], [b], [s], args.epochs, threads["sequential"]))
                cells[i, j] = h_null[task] - mean_ce(res)[0, 0, 0]
                t_seq, c_seq = t_seq + w, c_seq + c
        seq[task] = cells
        print(f"sequential {task:<13} done; {t_seq:7.1f} s wall so far", flush=True)

    diff = {t: np.abs(vec[t] - seq[t]) for t in TASKS}
    max_diff = float(max(d.max() for d in diff.values()))
    rows = []
    print(f"\n{'task':<14}{'beta':>6}{'vectorised':>12}{'sequential':>12}{'max |diff|':>12}")
    for t in TASKS:
        for j, b in enumerate(BETAS):
            rows.append({"task": t, "beta": b, "vectorised_mean": float(vec[t][:, j].mean()),
                         "sequential_mean": float(seq[t][:, j].mean()), "max_abs_diff": float(diff[t][:, j].max()),
                         "vectorised": vec[t][:, j].tolist(), "sequential": seq[t][:, j].tolist()})
            print(f"{t:<14}{b:>6g}{vec[t][:, j].mean():>12.4f}{seq[t][:, j].mean():>12.4f}{diff[t][:, j].max():>12.4f}")
    result = {
        "benchmark": "rine_ensemble: Table A5 sweep, 60 sequential one-member fits vs one 60-member vectorised fit",
        "data": "pid tasks, n=10000, 80/20, encoding=index, decoders over 4 classes (with_classes)",
        "cells": len(TASKS) * len(BETAS) * len(SEEDS), "epochs": args.epochs, "samples": 10000,
        "sequential_wall_s": t_seq, "vectorised_wall_s": t_vec, "speedup_wall": t_seq / t_vec,
        "sequential_cpu_s": c_seq, "vectorised_cpu_s": c_vec, "speedup_cpu": c_seq / c_vec,
        "threads": threads,
        "thread_probe_wall_s": {k: {str(t): w for t, w in v.items()} for k, v in probe.items()},
        "max_abs_diff_bits": max_diff, "cells_within_0.02": int(sum((d <= 0.02).sum() for d in diff.values())),
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    print(f"\nsequential {t_seq:.1f} s wall ({c_seq:.1f} s cpu) · vectorised {t_vec:.1f} s wall ({c_vec:.1f} s cpu)"
          f" · speed-up {t_seq / t_vec:.1f}× wall, {c_seq / c_vec:.1f}× cpu · threads {threads}"
          f" (probe {probe}) · max |diff| {max_diff:.4f} bit · torch {torch.__version__}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
