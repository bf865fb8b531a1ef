"""MI estimator baselines beside usable information, on tasks with a known I(X;Y), in one run.

Per task: the ground truth, the sample's own truth (the mean true pointwise MI of its 2,000 test
pairs: what a perfect critic's held-out Donsker-Varadhan estimate would read), and for each
estimator the estimate (mean ± sd over training seeds), its bias and its time. Estimators:

- ``infonce``, ``nwj``, ``mine``, ``smile``: critic bounds (usable_mi), held-out, K = 2,000;
- ``doe``: difference of entropies, Gaussian chain rule over Y's coordinates;
- ``usable``: usable information I_V(X→Y) with a Gaussian decoder, one head per coordinate of Y
  (the V-information of diagonal-Gaussian decoders; for 1-D Y exactly the ``usable`` metric);
- ``ksg``: Kraskov k-NN (k = 3) on all 10,000 pairs; deterministic, so its sd is 0.

Every neural estimator trains through ``usable.fit``, vectorised: one fit per (estimator, input
shape) trains all tasks of that shape × all seeds as one ensemble, and the time of a task is its
share of that fit (fit wall time / tasks in it). Decoder ``mi_mlp:hidden=64`` everywhere; Adam,
lr 0.003, batch 128; critics up to 50 epochs, each member kept at its best epoch on 10% of the
training pairs (patience 5; SMILE by its JS bound); DoE and usable information up to 30 epochs,
each decoder kept at its best validation log-likelihood the same way.

Tasks (n = 10,000, 80/20 split, data seed 0): Gaussian pairs in 1, 5 and 25 dimensions at 1 and
4 bits; the 5-D pairs through the MI-preserving maps half-cube, asinh and a random invertible MLP;
and the benchmark-mi tasks this plugin reproduces exactly (1v1-normal-0.75, student-identity-1-1-1,
asinh-student-identity-1-1-1, student-identity-5-5-2).

    python benchmarks/mi_estimators.py             # the full table (writes results/mi_estimators.json)
    python benchmarks/mi_estimators.py --quick     # 1-D and 5-D Gaussians only, 1 seed
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from usable import FitConfig, create, fit, train_test_split_indices
from usable_mi.critics import train_critics
from usable_mi.entropies import train_doe
from usable_mi.knn import ksg_estimate
from usable_mi.pairs import joint_all, pair_of
from usable_mi.sources import gaussian_pmi_bits, student_pmi_bits, untransformed

OUT = Path(__file__).resolve().parent / "results" / "mi_estimators.json"
BITS_075 = -0.5 * math.log2(1 - 0.75 ** 2)  # benchmark-mi's 1v1-normal-0.75
CRITICS = ["infonce", "nwj", "mine", "smile"]
ESTIMATORS = CRITICS + ["doe", "usable", "ksg"]
DECODER = "mi_mlp:hidden=64"


def tasks(quick: bool):
    """(name, source spec, benchmark-mi task id or None)."""
    out = [(f"gaussian {d}x{d} {b} bit", f"mi_gaussian:dim={d},bits={b}", None)
           for d in ((1, 5) if quick else (1, 5, 25)) for b in (1, 4)]
    if quick:
        return out
    out += [(f"{t} gaussian 5x5 {b} bit", f"mi_gaussian:dim=5,bits={b},transform={t}", None)
            for t in ("halfcube", "asinh", "mlp") for b in (1, 4)]
    out += [("normal 1x1 rho=0.75", f"mi_gaussian:dim=1,bits={BITS_075:.12f}", "1v1-normal-0.75"),
            ("student 1x1 df=1", "mi_student:dim=1,df=1", "student-identity-1-1-1"),
            ("asinh student 1x1 df=1", "mi_student:dim=1,df=1,transform=asinh", "asinh-student-identity-1-1-1"),
            ("student 5x5 df=2", "mi_student:dim=5,df=2", "student-identity-5-5-2")]
    return out


def sample_truth(data) -> float:
    """Mean true pointwise MI over the test pairs, on the draw before the source's map."""
    a = data.attrs
    kind = "gaussian" if a["task"].startswith("gaussian") else "student"
    n = len(data.train) + len(data.test)
    x, y = untransformed(kind, a["dim_x"], a["rho"], n, 0, a.get("df", 0.0))
    _, test = train_test_split_indices(n, len(data.test) / n, 1)
    pmi = gaussian_pmi_bits(x[test], y[test], a["rho"]) if kind == "gaussian" else \
        student_pmi_bits(x[test], y[test], a["rho"], a["df"])
    return float(pmi.mean())


def gaussian_usable(cfg, pairs, decoder, seeds, names):
    return train_doe(functools.partial(fit, config=cfg), pairs, decoder, seeds, heads="independent", task_names=names,
                     desc="usable", validation=0.1, patience=5)


def fmt(v: float, width: int = 8, sign: bool = False) -> str:
    """3 decimals, or 3 significant digits where an estimator ran away (|v| ≥ 100, ±inf, nan)."""
    if not np.isfinite(v) or abs(v) >= 100:
        return f"{v:+.2g}" if sign else f"{v:.2g}"
    return f"{v:+.3f}" if sign else f"{v:.3f}"


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1-D and 5-D Gaussians, 1 seed, 20 critic epochs")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = list(range(1 if args.quick else args.seeds))
    base = dict(batch_size=128, optimizer="adam", lr=0.003, lr_decay=0.97, weight_decay=0.0, eval_every=0,
                progress=False, threads=args.threads, device="cpu")
    critic_cfg = FitConfig(epochs=20 if args.quick else 50, **base)
    density_cfg = FitConfig(epochs=20 if args.quick else 30, **base)
    decoder = create("decoders", DECODER)

    spec = tasks(args.quick)
    datas = {name: create("sources", f"{src},n=10000,seed=0") for name, src, _ in spec}
    truth = {name: float(d.attrs["true_mi_bits"]) for name, d in datas.items()}
    sample = {name: sample_truth(d) for name, d in datas.items()}
    pairs = {name: pair_of(d) for name, d in datas.items()}
    groups: dict[tuple, list[str]] = {}
    for name, p in pairs.items():  # tasks of one input shape train as one ensemble
        groups.setdefault((p.in_shape(0), p.in_shape(1)), []).append(name)

    values = {e: {} for e in ESTIMATORS}  # estimator -> task -> per-seed values
    seconds = {e: {} for e in ESTIMATORS}
    cpu = {e: 0.0 for e in ESTIMATORS}
    for shape, names in groups.items():
        group = [pairs[n] for n in names]
        for est in ESTIMATORS:
            if est in CRITICS:
                run = lambda: train_critics(functools.partial(fit, config=critic_cfg), group, [est], decoder, seeds,
                                            validation=0.1, patience=5, task_names=names, desc=est)
                out, w, c = timed(run)
                per = out.mutual_information.isel(estimator=0).values  # (task, seed)
            elif est == "doe":
                out, w, c = timed(lambda: train_doe(functools.partial(fit, config=density_cfg), group, decoder, seeds,
                                                    task_names=names, validation=0.1, patience=5))
                per = out.mutual_information.values
            elif est == "usable":
                out, w, c = timed(lambda: gaussian_usable(density_cfg, group, decoder, seeds, names))
                per = out.mutual_information.values
            else:
                res, w, c = timed(lambda: [ksg_estimate(*joint_all(p), 3)[0] for p in group])
                per = np.repeat(np.array(res)[:, None], len(seeds), axis=1)
            for k, n in enumerate(names):
                values[est][n] = per[k].tolist()
                seconds[est][n] = w / len(names)
            cpu[est] += c
            print(f"{est:<8} {shape[0]}×{shape[1]}: {len(names)} task(s) × {len(seeds)} seed(s) in {w:6.1f} s wall",
                  flush=True)

    rows = []
    for name, src, bmi_id in spec:
        row = {"task": name, "source": src, "benchmark_mi_task": bmi_id, "truth_bits": truth[name],
               "sample_truth_bits": sample[name], "estimators": {}}
        for est in ESTIMATORS:
            v = np.array(values[est][name])
            sd = float(v.std(ddof=1)) if len(v) > 1 and np.isfinite(v).all() else (0.0 if len(v) == 1 else float("nan"))
            row["estimators"][est] = {"mean": float(v.mean()), "sd": sd,
                                      "bias": float(v.mean() - truth[name]), "seconds": seconds[est][name],
                                      "per_seed": v.tolist()}
        rows.append(row)

    width = 28
    print(f"\nestimates in bits, mean ± sd over {len(seeds)} seed(s); 'sample' = mean true PMI of the test pairs")
    print(f"{'task':<{width}}{'truth':>7}{'sample':>8}" + "".join(f"{e:>15}" for e in ESTIMATORS))
    for r in rows:
        cells = "".join(f"{fmt(r['estimators'][e]['mean']):>9}±{fmt(r['estimators'][e]['sd']):<5}" for e in ESTIMATORS)
        print(f"{r['task']:<{width}}{r['truth_bits']:>7.3f}{r['sample_truth_bits']:>8.3f}{cells}")
    print("\nbias (estimate − truth) in bits, and seconds per task (its share of the vectorised fit)")
    print(f"{'task':<{width}}" + "".join(f"{e:>15}" for e in ESTIMATORS))
    for r in rows:
        cells = "".join(f"{fmt(r['estimators'][e]['bias'], sign=True):>9} {r['estimators'][e]['seconds']:>4.0f}s"
                        for e in ESTIMATORS)
        print(f"{r['task']:<{width}}{cells}")
    total = {e: sum(seconds[e].values()) for e in ESTIMATORS}
    print("\ntotal wall s: " + ", ".join(f"{e} {t:.1f}" for e, t in total.items())
          + f" · total cpu s {sum(cpu.values()):.1f} · threads {args.threads} · torch {torch.__version__}")
    result = {
        "benchmark": "mi_estimators: critic bounds, DoE, KSG and Gaussian usable information on ground-truth tasks",
        "samples": 10000, "test_fraction": 0.2, "seeds": seeds, "decoder": DECODER,
        "critic_fit": {k: v for k, v in critic_cfg.to_attrs().items()}, "critic_validation": 0.1, "critic_patience": 5,
        "density_fit": {k: v for k, v in density_cfg.to_attrs().items()}, "density_validation": 0.1,
        "density_patience": 5, "ksg_k": 3,
        "wall_s_per_estimator": total, "cpu_s_per_estimator": cpu,
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "threads": args.threads,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
