"""Where a second CPU thread starts to pay: per-step wall time of eager fits at 1 and at all
threads, against the step's multiply-adds (usable.threads.step_macs), from the paper's tiny MLP
pair to a ResNet-18. The crossover is usable.threads.PARALLEL_MACS, the rule a fit without
``threads`` follows.

    python benchmarks/threads.py          # prints a table, writes benchmarks/results/threads.json
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch

import usable
from usable import FitConfig, SourceData, Split, create, fit
from usable.threads import PARALLEL_MACS, step_macs

OUT = Path(__file__).resolve().parent / "results" / "threads.json"


def images(n, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    return Split([torch.randn(n, *shape, generator=g)], y)


def cases():
    pid = create("sources", "pid:task=and,n=2000,encoding=index")
    digits = create("sources", "digits")
    img = SourceData(images(192, (3, 32, 32)), images(32, (3, 32, 32), 1), ["image"], "classes", 10)
    yield "mlp 25-15-10 pair, 1 member", pid, "mlp:hidden=25+15+10", 1, 128
    yield "mlp 25-15-10 pair, 60 members", pid, "mlp:hidden=25+15+10", 60, 128
    yield "mlp 25-15-10 pair, 240 members", pid, "mlp:hidden=25+15+10", 240, 128
    yield "mlp 512-512 digits, 5 members", digits, "mlp:hidden=512+512", 5, 128
    yield "mlp 512-512 digits, 20 members", digits, "mlp:hidden=512+512", 20, 128
    yield "resnet18 w8, 3x32x32, 2 members", img, "resnet18:width=8", 2, 64
    yield "resnet18 w16, 3x32x32, 2 members", img, "resnet18:width=16", 2, 64
    yield "resnet18 w32, 3x32x32, 1 member", img, "resnet18:width=32", 1, 64


def per_step(data, decoder, E, batch, threads):
    cfg = FitConfig(epochs=2, batch_size=batch, threads=threads, progress=False, eval_every=0)
    kw = dict(divergence=create("divergences", "l1"), betas=[5.0] if data.n_sources > 1 else [0.0])
    steps = 2 * -(-len(data.train) // batch)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fit(data, create("decoders", decoder), seeds=list(range(E)), config=cfg, **kw)
        times.append((time.perf_counter() - t) / steps)
    return statistics.median(times)


def main():
    os.environ["USABLE_COMPILE"] = "0"  # the eager path: the compiled MLP kernel is single-threaded anyway
    cores = torch.get_num_threads()
    rows = []
    print(f"{'case':<36}{'MACs/step':>12}{'1 thread ms':>13}{f'{cores} threads ms':>14}{'speed-up':>10}")
    for name, data, decoder, E, batch in cases():
        res = fit(data, create("decoders", decoder), seeds=list(range(E)),
                  config=FitConfig(epochs=1, batch_size=batch, progress=False, eval_every=0, stop_loss=1e9))
        samples = [x[0] for x in data.train.xs]
        macs = step_macs(res.models, samples, E, batch)
        one, many = per_step(data, decoder, E, batch, 1), per_step(data, decoder, E, batch, cores)
        rows.append({"case": name, "macs_per_step": macs, "ms_1_thread": one * 1e3, f"ms_{cores}_threads": many * 1e3,
                     "speedup": one / many})
        print(f"{name:<36}{macs:>12.3g}{one * 1e3:>13.2f}{many * 1e3:>14.2f}{one / many:>9.2f}×", flush=True)
    pays = [r["macs_per_step"] for r in rows if r["speedup"] > 1.1]
    print(f"\nthreads paid (>1.1×) from {min(pays):.3g} MACs/step" if pays else "\nthreads never paid",
          f"· rule in usable.threads: PARALLEL_MACS = {PARALLEL_MACS:.3g}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "threads: eager per-step wall time at 1 vs all threads", "cores": cores,
                               "parallel_macs_rule": PARALLEL_MACS, "torch_version": torch.__version__,
                               "usable_version": usable.__version__, "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
