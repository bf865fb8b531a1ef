"""Streaming NC1 (two passes, O(C·D) state) vs a naive all-in-memory baseline, plus a real CNN.

For D in {1024, 4096, 16384, 65536}, N = 50,000, C = 10: synthetic float32 features fed in
batches (regenerated from per-batch seeds for pass 2, as a network would recompute them), timing
and peak memory of
  (a) the two-pass streaming method (usable_nc.NCAccumulator, method=two_pass),
  (b) a naive baseline that stores every feature and calls np.linalg.pinv(Σ_B, rcond=explicit),
      only where its features and D×D matrices fit (D <= 4096 here),
and for the thesis CNN f− (cnn_minus) on CIFAR-shaped inputs,
  (c) the forward passes alone vs (d) measure_layers (every layer, both passes).
Each case runs in its own process so its peak RSS (VmHWM) is its own. One torch thread.

    .venv/bin/python benchmarks/nc_streaming.py            # all cases, table + JSON
    .venv/bin/python benchmarks/nc_streaming.py --quick    # small N for a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "nc_streaming.json"
C = 10
BATCH = 256
DIMS = [1024, 4096, 16384, 65536]
NAIVE_MAX_DIM = 4096  # 16384 would need 3.3 GB of features + 2 GB per D×D matrix; 65536: 13 GB + 34 GB


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def batches(n: int, d: int, seed: int = 0):
    """Synthetic features: class means (scale 1, common offset 3) + unit noise, float32, reproducible."""
    import torch
    g = torch.Generator().manual_seed(seed)
    mus = torch.randn(C, d, generator=g) + 3.0
    for b, s in enumerate(range(0, n, BATCH)):
        gb = torch.Generator().manual_seed(seed * 1_000_003 + b + 1)
        m = min(BATCH, n - s)
        y = torch.randint(0, C, (m,), generator=gb)
        yield mus[y] + torch.randn(m, d, generator=gb), y


def case_stream(n: int, d: int) -> dict:
    from usable_nc import NCAccumulator
    base = rss_mb("VmRSS")
    t0 = time.perf_counter()
    acc = NCAccumulator(C, method="two_pass")
    for h, y in batches(n, d):
        acc.update_pass1(h, y)
    acc.finalize_means()
    for h, y in batches(n, d):
        acc.update_pass2(h, y)
    out = acc.compute()
    return {"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(), "base_mb": base, "nc1": out["nc1"],
            "rank": out["rank"], "state_mb": sum(v.numel() * v.element_size() for v in acc.state_dict().values()
                                                  if hasattr(v, "numel")) / 2**20}


def case_naive(n: int, d: int) -> dict:
    import numpy as np
    import torch
    base = rss_mb("VmRSS")
    t0 = time.perf_counter()
    H = np.empty((n, d), dtype=np.float32)
    Y = np.empty(n, dtype=np.int64)
    s = 0
    for h, y in batches(n, d):
        H[s:s + len(y)], Y[s:s + len(y)] = h.numpy(), y.numpy()
        s += len(y)
    mu = np.stack([H[Y == c].astype(np.float64).mean(0) for c in range(C)])
    A = mu - H.astype(np.float64, copy=False).mean(0) if d <= 1024 else mu - (np.bincount(Y, minlength=C) @ mu) / n
    SB = A.T @ A / C
    H -= mu[Y].astype(np.float32)          # in place: features centred at their class means
    SW = (H.T @ H).astype(np.float64) / n  # float32 product, as a naive implementation would
    del H
    # explicit cutoff between the C−1 real eigenvalues of Σ_B and the numerical zeros
    nc1 = float(np.trace(SW @ np.linalg.pinv(SB, rcond=1e-10, hermitian=True)) / C)
    return {"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(), "base_mb": base, "nc1": nc1}


def case_cnn(n: int, mode: str) -> dict:
    import torch
    import usable
    from usable_nc import measure_layers
    torch.manual_seed(0)
    net = usable.create("decoders", "cnn_minus").build((3, 32, 32), C)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, C, (n,), generator=g)
    base = rss_mb("VmRSS")
    t0 = time.perf_counter()
    if mode == "forward":
        net.eval()
        with torch.no_grad():
            for s in range(0, n, 500):
                net(x[s:s + 500])
        extra = {}
    else:
        res = measure_layers(net, (x, y), n_classes=C, batch_size=500, method="two_pass")
        extra = {"layers": res.layers, "dims": [res.metrics[k]["dim"] for k in res.layers],
                 "nc1": [res.metrics[k]["nc1"] for k in res.layers]}
    return {"seconds": time.perf_counter() - t0, "peak_mb": rss_mb(), "base_mb": base, **extra}


def child(args) -> None:
    import torch
    torch.set_num_threads(1)
    if args.case == "stream":
        out = case_stream(args.n, args.dim)
    elif args.case == "naive":
        out = case_naive(args.n, args.dim)
    else:
        out = case_cnn(args.n, args.case.split("_", 1)[1])
    print("RESULT " + json.dumps(out))


def run_child(case: str, n: int, dim: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", "--case", case, "--n", str(n), "--dim", str(dim)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr or p.stdout)[-400:]}
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", default="")
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=0)
    ap.add_argument("--cnn-n", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="N = 5000, CNN N = 1000")
    args = ap.parse_args()
    if args.child:
        return child(args)
    n, cnn_n = (5_000, 1_000) if args.quick else (args.n, args.cnn_n)
    from tqdm.auto import tqdm
    rows = []
    jobs = [("stream", d) for d in DIMS] + [("naive", d) for d in DIMS if d <= NAIVE_MAX_DIM]
    for case, d in tqdm(jobs, desc="nc_streaming"):
        rows.append({"case": case, "D": d, "N": n, **run_child(case, n, d)})
    cnn = {m: run_child(f"cnn_{m}", cnn_n) for m in ("forward", "measure")}
    print(f"\nNC1, N={n}, C={C}, batch {BATCH}, float32 features, 1 thread ({platform.processor() or platform.machine()})")
    print(f"{'method':<8} {'D':>6} {'time s':>8} {'peak MB':>8} {'base MB':>8} {'NC1':>14}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<8} {r['D']:>6}  error: {r['error'][-120:]}")
            continue
        print(f"{r['case']:<8} {r['D']:>6} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} {r['base_mb']:>8.0f} {r['nc1']:>14.8g}")
    for d in DIMS:
        if d > NAIVE_MAX_DIM:
            print(f"naive    {d:>6}  skipped: features {n * d * 4 / 2**30:.1f} GiB + D×D float64 {d * d * 8 / 2**30:.1f} GiB each")
    agree = {r["D"]: None for r in rows}
    for d in agree:
        s = [r for r in rows if r["D"] == d and r["case"] == "stream" and "nc1" in r]
        b = [r for r in rows if r["D"] == d and r["case"] == "naive" and "nc1" in r]
        if s and b:
            agree[d] = abs(s[0]["nc1"] / b[0]["nc1"] - 1)
            print(f"D={d}: streaming vs naive NC1 relative difference {agree[d]:.2e}")
    f, m = cnn["forward"], cnn["measure"]
    if "error" not in f and "error" not in m:
        print(f"\ncnn_minus on {cnn_n} CIFAR-shaped inputs: forward only {f['seconds']:.2f} s (peak {f['peak_mb']:.0f} MB); "
              f"measure_layers, every layer, two passes {m['seconds']:.2f} s (peak {m['peak_mb']:.0f} MB), "
              f"ratio {m['seconds'] / f['seconds']:.2f} (2 = the forward passes alone)")
        print(f"  layers {m['layers']} dims {m['dims']}")
    else:
        print("cnn case failed:", f.get("error") or m.get("error"))
    big = [r for r in rows if r["case"] == "stream" and r["D"] == 65536 and "peak_mb" in r]
    if big:
        print(f"D=65536 streaming peak RSS {big[0]['peak_mb']:.0f} MB (limit 1024 MB; a D×D float64 state would be 32 GiB)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"N": n, "C": C, "batch": BATCH, "threads": 1, "rows": rows,
                               "relative_difference_stream_vs_naive": agree, "cnn_minus": {"N": cnn_n, **cnn},
                               "python": platform.python_version()}, indent=2, default=str))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
