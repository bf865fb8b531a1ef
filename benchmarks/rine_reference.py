"""usable against the RINE reference protocol, in one run: a plain PyTorch loop that trains one fit
at a time the way github.com/mjkleinman/RINE does (the paper's [25-15-10] MLP with batch norm per
source, SGD momentum 0.9, lr 0.01 ×0.97 per epoch, weight decay 0.005, batch 128, 30 epochs, L1
divergence of the class probabilities averaged over classes, β_i = β(1 − 0.97^i) per epoch, the
held-out cross-entropy every epoch), timed in the same process as usable on

  one      one fit (AND, β = 15, seed 0);
  table    Table A5: 4 tasks × β ∈ {0, 5, 15} × 5 seeds = 60 fits, usable through the shipped
           config (`usable run --config rine-table-a5`: two vectorised fits of 30 members);
  resnet   5 seeds of ResNet-18 on CIFAR-shaped images (3×32×32, fixture-sized) for one epoch;
  members  a member-count sweep (1, 5, 20, 60, 240 members on AND, β = 15, a few epochs) against
           that many plain fits (the plain cost of one fit measured at the same epochs, times E);
  floor    the per-step time of a 1-member fit beside the per-step time of its arithmetic alone:
           the compiled MLP epoch (one native call per epoch, no Python inside) timed on its own.

Every row prints CPU and wall seconds, the ratio plain/usable, and the values both produced
(I∩ = H_V(Y|∅) − mean held-out cross-entropy over the last 5 epochs, in bits), so speed is never
bought with a different answer. Plain fits run on one torch thread (the cheapest in CPU for these
sizes; the reference script's default of all cores costs more CPU); usable chooses its own.

    python benchmarks/rine_reference.py                       # everything (~15 min on 2 cores)
    python benchmarks/rine_reference.py --parts one,floor     # a quick look
    python benchmarks/rine_reference.py --plain-seeds 2       # table: 24 plain fits, scaled to 60

Writes benchmarks/results/rine_reference.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import usable
from usable import FitConfig, create, fit, null_logp

TASKS = ["unq", "and", "rdnxor", "imperfectrdn"]
BETAS = [0.0, 5.0, 15.0]
SEEDS = [0, 1, 2, 3, 4]
LAST = 5  # the reference protocol's I∩: held-out cross-entropy averaged over the last 5 epochs
OUT = Path(__file__).resolve().parent / "results" / "rine_reference.json"
PAPER = dict(optimizer="sgd", lr=0.01, lr_decay=0.97, momentum=0.9, weight_decay=0.005, batch_size=128)


def task_data(task: str):
    return create("sources", f"pid:task={task},n=10000,test_fraction=0.2,seed=0,encoding=index")


def h_null(data) -> float:
    return float(-null_logp(data, "test")[0].double().mean())


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


# ------------------------------------------------------------------------------ the plain loop
def paper_mlp(n_in: int, n_out: int) -> nn.Module:
    layers, width = [], n_in
    for h in (25, 15, 10):
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def plain_fit(data, beta: float, seed: int, epochs: int, build=paper_mlp, batch_size: int = 128):
    """One fit, one decoder per source, trained as the reference code trains. Returns the held-out
    cross-entropy (bits, mean over sources) after every epoch."""
    torch.manual_seed(seed)
    xs, y = data.train.xs, data.train.y
    nets = [build(x.shape[1:] if x.ndim > 2 else x.shape[1], data.n_classes) for x in xs]
    params = [p for net in nets for p in net.parameters()]
    opt = torch.optim.SGD(params, lr=PAPER["lr"], momentum=PAPER["momentum"], weight_decay=PAPER["weight_decay"])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, PAPER["lr_decay"])
    curve = []
    for epoch in range(epochs):
        b = beta * (1 - 0.97 ** epoch)
        for net in nets:
            net.train()
        perm = torch.randperm(len(y))
        for lo in range(0, len(y), batch_size):
            idx = perm[lo:lo + batch_size]
            outs = [net(x[idx]) for net, x in zip(nets, xs)]
            loss = sum(nn.functional.cross_entropy(o, y[idx]) for o in outs) / len(outs)
            if b > 0 and len(outs) > 1:
                probs = [torch.softmax(o, dim=1) for o in outs]
                pairs = [(i, j) for i in range(len(probs)) for j in range(i + 1, len(probs))]
                loss = loss + b * sum((probs[i] - probs[j]).abs().mean() for i, j in pairs) / len(pairs)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            ce = 0.0
            for net, x in zip(nets, data.test.xs):
                net.eval()
                ce += float(nn.functional.cross_entropy(net(x), data.test.y)) / math.log(2)
            curve.append(ce / len(nets))
    return curve


def usable_fit(data, betas, seeds, epochs, decoder="mlp:hidden=25+15+10,batch_norm=true", **cfg):
    config = FitConfig(epochs=epochs, progress=False, device="cpu", **{**PAPER, **cfg})
    return fit(data, create("decoders", decoder), divergence=create("divergences", "l1:reduction=mean"),
               schedule=create("schedules", "exp:gamma=0.97"), betas=betas, seeds=seeds, config=config)


def curve_of(res, seed=None):
    """Held-out cross-entropy per epoch (bits, mean over sources) of a one-dataset, one-β fit."""
    c = res.to_dataset().test_cross_entropy_curve.mean("source").isel(dataset=0, beta=0)
    return (c.isel(seed=0) if seed is None else c.sel(seed=seed)).transpose("epoch").values


def last_value(h: float, curve) -> float:
    return h - float(np.mean(curve[-LAST:]))


def row(name, plain_cpu, plain_wall, ours_cpu, ours_wall, plain_value, ours_value, **extra):
    r = {"part": name, "plain_cpu_s": plain_cpu, "plain_wall_s": plain_wall, "usable_cpu_s": ours_cpu,
         "usable_wall_s": ours_wall, "ratio_cpu": plain_cpu / ours_cpu, "ratio_wall": plain_wall / ours_wall,
         "plain_value": plain_value, "usable_value": ours_value, **extra}
    print(f"{name:<26}{plain_cpu:>10.2f}{ours_cpu:>10.2f}{r['ratio_cpu']:>8.1f}×{plain_wall:>10.2f}{ours_wall:>10.2f}"
          f"{r['ratio_wall']:>8.1f}×   {_fmt(plain_value)} vs {_fmt(ours_value)}", flush=True)
    return r


def _fmt(v):
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


# ------------------------------------------------------------------------------------- parts
def part_one(args):
    data = task_data("and")
    h = h_null(data)
    torch.set_num_threads(1)
    plain_fit(data, 15.0, 0, 1)  # warm-up (first-call costs in torch) for both
    usable_fit(data, [15.0], [0], 1)
    curve, pw, pc = timed(lambda: plain_fit(data, 15.0, 0, args.epochs))
    res, uw, uc = timed(lambda: usable_fit(data, [15.0], [0], args.epochs))
    ours = last_value(h, curve_of(res))
    return [row("one fit (AND, β=15)", pc, pw, uc, uw, last_value(h, curve), ours)]


def part_table(args):
    datas = {t: task_data(t) for t in TASKS}
    hs = {t: h_null(d) for t, d in datas.items()}
    seeds = SEEDS[:args.plain_seeds]
    torch.set_num_threads(1)
    plain = {}
    pc = pw = 0.0
    for t in TASKS:
        for b in BETAS:
            for s in seeds:
                curve, w, c = timed(lambda: plain_fit(datas[t], b, s, args.epochs))
                plain[t, b, s] = last_value(hs[t], curve)
                pw, pc = pw + w, pc + c
        print(f"  plain {t}: done ({pc:.0f} s cpu so far)", flush=True)
    scale = len(SEEDS) / len(seeds)
    spec = usable.RunSpec.from_options(usable.load_config("rine-table-a5"), epochs=args.epochs, progress=False,
                                       threads=None)
    ds, uw, uc = timed(lambda: usable.run_metric(spec))
    ri = ds["redundant_information_last"]
    rows, cells = [], []
    for t in TASKS:
        for b in BETAS:
            p = [plain[t, b, s] for s in seeds]
            u = ri.sel(task=t, beta=b).values
            cells.append({"task": t, "beta": b, "plain_mean": float(np.mean(p)), "usable_mean": float(u.mean()),
                          "plain_sd": float(np.std(p, ddof=1)) if len(p) > 1 else None,
                          "usable_sd": float(u.std(ddof=1)), "abs_diff": abs(float(np.mean(p)) - float(u.mean()))})
    rows.append(row(f"Table A5 (60 fits{'' if scale == 1 else ', plain ×%.1f' % scale})", pc * scale, pw * scale,
                    uc, uw, None, None, cells=cells, plain_fits_measured=len(TASKS) * len(BETAS) * len(seeds)))
    print(f"\n  {'task':<14}{'β':>5}{'plain':>9}{'(sd)':>8}{'usable':>9}{'(sd)':>8}{'|diff|':>9}")
    for c in cells:
        print(f"  {c['task']:<14}{c['beta']:>5g}{c['plain_mean']:>9.4f}{_fmt(c['plain_sd']):>8}"
              f"{c['usable_mean']:>9.4f}{c['usable_sd']:>8.4f}{c['abs_diff']:>9.4f}")
    print()
    return rows


def cifar_shaped(n_train: int, n_test: int, seed: int = 0):
    """Images 3×32×32 whose class shifts the mean of one colour channel: learnable in an epoch."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randn(n, 3, 32, 32, generator=g) * 0.5
        x[torch.arange(n), y % 3] += (y[:, None, None] / 10.0) - 0.45
        return x, y
    (xtr, ytr), (xte, yte) = split(n_train), split(n_test)
    return usable.SourceData(usable.Split([xtr], ytr), usable.Split([xte], yte), ["image"], "classes", 10)


def part_resnet(args):
    data = cifar_shaped(args.resnet_images, args.resnet_images // 2)
    decoder = create("decoders", f"resnet18:width={args.resnet_width}")
    build = lambda shape, k: decoder.build(tuple(shape), k)  # the same architecture in both loops
    torch.set_num_threads(1)
    h = h_null(data)
    plain = [plain_fit(data, 0.0, s, 1, build=build, batch_size=64) for s in (0,)]  # warm-up
    t0w, t0c = time.perf_counter(), time.process_time()
    plain = [plain_fit(data, 0.0, s, 1, build=build, batch_size=64)[-1] for s in SEEDS]
    pw, pc = time.perf_counter() - t0w, time.process_time() - t0c
    res, uw, uc = timed(lambda: usable_fit(data, [0.0], SEEDS, 1, decoder=f"resnet18:width={args.resnet_width}",
                                           batch_size=64, optimizer="sgd", threads=1))
    ours = h - res.to_dataset().cross_entropy.mean("source").values.mean()
    return [row(f"ResNet-18 w{args.resnet_width} × 5 seeds", pc, pw, uc, uw, h - float(np.mean(plain)), float(ours),
                images=args.resnet_images)]


def part_members(args):
    data = task_data("and")
    h = h_null(data)
    torch.set_num_threads(1)
    epochs = args.sweep_epochs
    samples = [timed(lambda: plain_fit(data, 15.0, s, epochs)) for s in range(3)]
    one_cpu = statistics.median(c for _, _, c in samples)
    one_wall = statistics.median(w for _, w, _ in samples)
    plain_value = float(np.mean([last_value(h, curve) for curve, _, _ in samples]))
    rows = []
    for E in args.members:
        res, uw, uc = timed(lambda: usable_fit(data, [15.0], list(range(E)), epochs))
        c = res.to_dataset().test_cross_entropy_curve.mean("source").isel(dataset=0, beta=0)
        value = float(np.mean([last_value(h, c.isel(seed=k).values) for k in range(E)]))
        rows.append(row(f"{E} members ({epochs} epochs)", one_cpu * E, one_wall * E, uc, uw, plain_value, value,
                        members=E, usable_cpu_per_member_ms=uc / E * 1e3))
    return rows


class _TimedKernel:
    """The compiled MLP library with its epoch call timed (thread CPU time)."""

    def __init__(self, lib):
        self.lib, self.cpu, self.calls = lib, 0.0, 0

    def __getattr__(self, name):
        return getattr(self.lib, name)

    @property
    def usable_mlp_epoch(self):
        def call(*a):
            c = time.thread_time()
            rc = self.lib.usable_mlp_epoch(*a)
            self.cpu += time.thread_time() - c
            self.calls += 1
            return rc
        return call


def part_floor(args):
    import usable_mlp.fused as fused
    data = task_data("and")
    usable_fit(data, [15.0], [0], 1)
    lib = fused.library()
    if lib is None:
        print("floor: the MLP kernel is not available (USABLE_COMPILE=0 or no compiler)")
        return []
    steps = math.ceil(len(data.train) / 128)
    timer = _TimedKernel(lib)
    fused._LIB[:] = [timer]
    try:
        res, uw, uc = timed(lambda: usable_fit(data, [15.0], [0], args.epochs))
    finally:
        fused._LIB[:] = [lib]
    torch.set_num_threads(1)
    curve, pw, pc = timed(lambda: plain_fit(data, 15.0, 0, args.epochs))
    total = args.epochs * steps
    per_step = uc / total * 1e6
    floor = timer.cpu / total * 1e6
    plain = pc / total * 1e6
    print(f"{'per step, 1-member fit':<26} plain loop {plain:8.1f} µs · usable fit {per_step:6.1f} µs · "
          f"its compiled arithmetic alone {floor:6.1f} µs · fit/floor {per_step / floor:.2f}×", flush=True)
    return [{"part": "floor", "plain_step_us": plain, "usable_step_us": per_step, "kernel_step_us": floor,
             "fit_over_floor": per_step / floor, "steps": total}]


PARTS = {"one": part_one, "table": part_table, "resnet": part_resnet, "members": part_members, "floor": part_floor}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--plain-seeds", type=int, default=5, help="seeds of the plain Table A5 fits (scaled to 5)")
    ap.add_argument("--sweep-epochs", type=int, default=30)
    ap.add_argument("--members", default="1,5,20,60,240")
    ap.add_argument("--resnet-width", type=int, default=64)
    ap.add_argument("--resnet-images", type=int, default=128)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.members = [int(m) for m in args.members.split(",")]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    print(f"{'':<26}{'plain cpu':>10}{'usable':>10}{'ratio':>9}{'plain wall':>10}{'usable':>10}{'ratio':>9}   values (bits)")
    rows = []
    for p in parts:
        rows += [{"key": p, **r} for r in PARTS[p](args)]
    result = {"benchmark": "rine_reference: usable against a plain one-fit-at-a-time loop of the RINE reference protocol",
              "epochs": args.epochs, "rows": rows, "torch_version": torch.__version__,
              "torch_threads_plain": 1, "python_version": platform.python_version(),
              "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "compiled_kernel": os.environ.get("USABLE_COMPILE", "1") != "0"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():  # keep the other parts' last results when only some ran
        old = json.loads(args.out.read_text())
        result["rows"] = [r for r in old.get("rows", []) if r.get("key") not in parts] + rows
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
