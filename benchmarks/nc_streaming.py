"""Streaming NC1 (two passes, O(C·D) state) vs a naive all-in-memory baseline, plus a real CNN.

For D in {1024, 4096, 16384, 65536}, N = 50,000, C = 10: synthetic float32 features fed in
batches (regenerated from per-batch seeds for pass 2, as a network would recompute them), timing
and peak memory of
  (a) the two-pass streaming method (usable_nc.NCAccumulator, method=two_pass),
  (b) a naive baseline that stores every feature and calls np.linalg.pinv(Σ_B, rcond=explicit),
      only where its features and D×D matrices fit (D <= 4096 here),
  (e) the two-pass method on nearly collapsed features at a large common offset (1e4 + class
      means of spread 1, within-class noise 1e-3: the float32 spacing at 1e4 is the noise's size),
      its NC1 against a float64 streaming reference over the same float32 batches,
and for the thesis CNN f− (cnn_minus) on CIFAR-shaped inputs,
  (c) the forward passes alone vs (d) measure_layers (every layer, both passes).
Each case runs in its own process so its peak RSS (VmHWM) is its own. One torch thread.

    .venv/bin/python benchmarks/nc_streaming.py            # all cases, table + JSON
    .venv/bin/python benchmarks/nc_streaming.py --quick    # small N for a smoke run
    .venv/bin/python benchmarks/nc_streaming.py --cases offset --quick   # only case (e)
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


def batches(n: int, d: int, seed: int = 0, offset: float = 3.0, noise: float = 1.0, means_dtype=None):
    """Synthetic features: class means (scale 1, common offset) + noise, float32, reproducible.
    ``means_dtype=torch.float64`` keeps the class means off the float32 grid, as real features'
    means are (float32 means at 1e4 sit on the grid, and rounding them again costs nothing)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    mus = torch.randn(C, d, generator=g, dtype=means_dtype) + offset
    for b, s in enumerate(range(0, n, BATCH)):
        gb = torch.Generator().manual_seed(seed * 1_000_003 + b + 1)
        m = min(BATCH, n - s)
        y = torch.randint(0, C, (m,), generator=gb)
        yield (mus[y] + noise * torch.randn(m, d, generator=gb, dtype=mus.dtype)).float(), y


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


OFFSET, NOISE = 1e4, 1e-3
ALL_CASES = "stream,naive,offset,cnn"


def case_offset(n: int, d: int) -> dict:
    """Two-pass NC1 at a common offset of 1e4, within-class noise 1e-3, vs float64 over the same batches."""
    import numpy as np
    import torch
    from usable_nc import NCAccumulator
    data = lambda: batches(n, d, offset=OFFSET, noise=NOISE, means_dtype=torch.float64)  # noqa: E731
    t0 = time.perf_counter()
    acc = NCAccumulator(C, method="two_pass")
    for h, y in data():
        acc.update_pass1(h, y)
    acc.finalize_means()
    for h, y in data():
        acc.update_pass2(h, y)
    nc1 = acc.compute()["nc1"]
    seconds = time.perf_counter() - t0
    counts, sums = np.zeros(C), np.zeros((C, d))
    for h, y in data():
        np.add.at(sums, y.numpy(), h.numpy().astype(np.float64))
        counts += np.bincount(y.numpy(), minlength=C)
    mu = sums / counts[:, None]
    _, S, Vt = np.linalg.svd(mu - sums.sum(0) / counts.sum(), full_matrices=False)
    P = Vt[:C - 1].T / S[:C - 1]  # Σ_B⁺ at the explicit rank C − 1, through the SVD of A
    ref = 0.0
    for h, y in data():
        ref += float((((h.numpy().astype(np.float64) - mu[y.numpy()]) @ P) ** 2).sum())
    ref /= n
    return {"seconds": seconds, "peak_mb": rss_mb(), "base_mb": 0.0, "nc1": nc1, "nc1_reference": ref,
            "relative_error": nc1 / ref - 1}


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
    elif args.case == "offset":
        out = case_offset(args.n, args.dim)
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
    ap.add_argument("--cases", default=ALL_CASES, help="comma-separated subset of " + ALL_CASES)
    args = ap.parse_args()
    if args.child:
        return child(args)
    n, cnn_n = (5_000, 1_000) if args.quick else (args.n, args.cnn_n)
    cases = set(args.cases.split(","))
    from usable import progress  # a bar on a terminal, plain lines in a log
    rows = []
    jobs = [(c, d) for c in ("stream", "naive", "offset") if c in cases for d in DIMS
            if c != "naive" or d <= NAIVE_MAX_DIM]
    for case, d in progress(jobs, desc="nc_streaming", unit="case"):
        rows.append({"case": case, "D": d, "N": n, **run_child(case, n, d)})
    cnn = {m: run_child(f"cnn_{m}", cnn_n) for m in ("forward", "measure")} if "cnn" in cases else {}
    print(f"\nNC1, N={n}, C={C}, batch {BATCH}, float32 features, 1 thread ({platform.processor() or platform.machine()})")
    print(f"{'method':<8} {'D':>6} {'time s':>8} {'peak MB':>8} {'base MB':>8} {'NC1':>14}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<8} {r['D']:>6}  error: {r['error'][-120:]}")
            continue
        print(f"{r['case']:<8} {r['D']:>6} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} {r['base_mb']:>8.0f} {r['nc1']:>14.8g}")
    for d in DIMS if "naive" in cases else ():
        if d > NAIVE_MAX_DIM:
            print(f"naive    {d:>6}  skipped: features {n * d * 4 / 2**30:.1f} GiB + D×D float64 {d * d * 8 / 2**30:.1f} GiB each")
    agree = {r["D"]: None for r in rows}
    for d in agree:
        s = [r for r in rows if r["D"] == d and r["case"] == "stream" and "nc1" in r]
        b = [r for r in rows if r["D"] == d and r["case"] == "naive" and "nc1" in r]
        if s and b:
            agree[d] = abs(s[0]["nc1"] / b[0]["nc1"] - 1)
            print(f"D={d}: streaming vs naive NC1 relative difference {agree[d]:.2e}")
    for r in rows:
        if r["case"] == "offset" and "relative_error" in r:
            print(f"D={r['D']}: two-pass NC1 at offset {OFFSET:g}, noise {NOISE:g} vs float64: relative error "
                  f"{r['relative_error']:+.1e}")
    if any(r["case"] == "offset" for r in rows):
        print("  (class means rounded to float32, before the fix, N = 5000: +6.3% at D=1024, +9.1% at 4096, +7.8% at 16384)")
    f, m = cnn.get("forward", {"error": "not run"}), cnn.get("measure", {"error": "not run"})
    if "error" not in f and "error" not in m:
        print(f"\ncnn_minus on {cnn_n} CIFAR-shaped inputs: forward only {f['seconds']:.2f} s (peak {f['peak_mb']:.0f} MB); "
              f"measure_layers, every layer, two passes {m['seconds']:.2f} s (peak {m['peak_mb']:.0f} MB), "
              f"ratio {m['seconds'] / f['seconds']:.2f} (2 = the forward passes alone)")
        print(f"  layers {m['layers']} dims {m['dims']}")
    elif "cnn" in cases:
        print("cnn case failed:", f.get("error") or m.get("error"))
    big = [r for r in rows if r["case"] == "stream" and r["D"] == 65536 and "peak_mb" in r]
    if big:
        print(f"D=65536 streaming peak RSS {big[0]['peak_mb']:.0f} MB (limit 1024 MB; a D×D float64 state would be 32 GiB)")
    out = OUT if cases == set(ALL_CASES.split(",")) else OUT.with_name(f"nc_streaming_{'_'.join(sorted(cases))}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"N": n, "C": C, "batch": BATCH, "threads": 1, "rows": rows,
                               "relative_difference_stream_vs_naive": agree, "cnn_minus": {"N": cnn_n, **cnn},
                               "python": platform.python_version()}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
