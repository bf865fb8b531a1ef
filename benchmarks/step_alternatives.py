"""Three ways to run a training step of the paper's MLP pair (two [25-15-10] decoders with batch
norm, cross-entropy + β·L1 between their predictions, SGD momentum + weight decay), timed on the
same shapes in one run:

  eager      PyTorch ops and autograd (the generic loop's step);
  compiled   the same step through torch.compile (inductor: generated C++ on CPU), compile time
             reported apart;
  kernel     usable's MLP epoch kernel (plugins/usable_mlp/kernel.c), one native call per epoch,
             divided by its steps.

    python benchmarks/step_alternatives.py      # table + benchmarks/results/step_alternatives.json

Why usable ships the kernel and not torch.compile is the table: see docs/performance.md.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

import usable
from usable import FitConfig, create, fit

OUT = Path(__file__).resolve().parent / "results" / "step_alternatives.json"
B = 128


def make_step(E: int, n_in: int, K: int):
    gen = torch.Generator().manual_seed(0)
    dims = [n_in, 25, 15, 10, K]

    def init():
        ps = []
        for a, b in zip(dims[:-1], dims[1:]):
            ps += [torch.randn(E, a, b, generator=gen) / math.sqrt(a), torch.zeros(E, 1, b)]
            if b != K:
                ps += [torch.ones(E, 1, b), torch.zeros(E, 1, b)]
        return [p.requires_grad_() for p in ps]
    params = [init(), init()]
    flat = params[0] + params[1]
    bufs = [torch.zeros_like(p) for p in flat]

    def mlp(ps, h):
        i = 0
        while i < len(ps):
            h = torch.baddbmm(ps[i + 1], h, ps[i])
            i += 2
            if h.shape[-1] != K:
                m = h.mean(1, keepdim=True)
                v = ((h - m) ** 2).mean(1, keepdim=True)
                h = torch.relu((h - m) * torch.rsqrt(v + 1e-5) * ps[i] + ps[i + 1])
                i += 2
        return h

    def step(x1, x2, y, beta, lr):
        l1 = torch.log_softmax(mlp(params[0], x1), -1)
        l2 = torch.log_softmax(mlp(params[1], x2), -1)
        ce = -(l1.gather(-1, y[..., None]).mean((1, 2)) + l2.gather(-1, y[..., None]).mean((1, 2))) / 2
        d = (l1.exp() - l2.exp()).abs().sum(-1).mean(1) / K
        loss = (ce + beta * d).sum()
        grads = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            for p, g, m in zip(flat, grads, bufs):
                m.mul_(0.9).add_(g + 0.005 * p)
                p.sub_(lr * m)
        return loss.detach()

    x1, x2 = torch.randn(E, B, n_in, generator=gen), torch.randn(E, B, n_in, generator=gen)
    y = torch.randint(0, K, (E, B), generator=gen)
    return step, (x1, x2, y, torch.full((E,), 15.0), torch.tensor(0.01))


def per_call(fn, args, n=300):
    for _ in range(10):
        fn(*args)
    times = []
    for _ in range(3):
        c = time.process_time()
        for _ in range(n):
            fn(*args)
        times.append((time.process_time() - c) / n)
    return statistics.median(times)


def kernel_step(data, E: int) -> float | None:
    import usable_mlp.fused as fused
    cfg = FitConfig(epochs=3, progress=False, threads=1, eval_every=0)
    kw = dict(divergence=create("divergences", "l1:reduction=mean"), betas=[15.0], seeds=list(range(E)), config=cfg)
    fit(data, create("decoders", "mlp:hidden=25+15+10"), **kw)
    lib = fused.library()
    if lib is None:
        return None
    spent = []

    class Timed:
        def __getattr__(self, name):
            return getattr(lib, name)

        @property
        def usable_mlp_epoch(self):
            def call(*a):
                c = time.thread_time()
                rc = lib.usable_mlp_epoch(*a)
                spent.append(time.thread_time() - c)
                return rc
            return call
    fused._LIB[:] = [Timed()]
    try:
        fit(data, create("decoders", "mlp:hidden=25+15+10"), **kw)
    finally:
        fused._LIB[:] = [lib]
    return statistics.median(spent) / math.ceil(len(data.train) / B)


def main():
    torch.set_num_threads(1)
    data = create("sources", "pid:task=and,n=10000,test_fraction=0.2,encoding=index")
    n_in, K = data.in_shape(0)[0], data.n_classes
    rows = []
    print(f"{'members':>8}{'eager µs':>11}{'compiled µs':>13}{'kernel µs':>11}{'compile s':>11}   per step (CPU)")
    for E in (1, 60):
        step, args = make_step(E, n_in, K)
        eager = per_call(step, args)
        t = time.perf_counter()
        compiled = torch.compile(step, dynamic=False)
        try:
            compiled(*args)
            compile_s = time.perf_counter() - t
            comp = per_call(compiled, args)
        except Exception as exc:  # no C++ compiler for inductor
            compile_s, comp = float("nan"), float("nan")
            print(f"torch.compile failed: {type(exc).__name__}: {exc}".splitlines()[0])
        kern = kernel_step(data, E)
        rows.append({"members": E, "eager_us": eager * 1e6, "compiled_us": comp * 1e6,
                     "kernel_us": None if kern is None else kern * 1e6, "compile_s": compile_s})
        print(f"{E:>8}{eager * 1e6:>11.1f}{comp * 1e6:>13.1f}{(kern or float('nan')) * 1e6:>11.1f}{compile_s:>11.1f}",
              flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "step_alternatives: eager vs torch.compile vs usable's MLP kernel",
                               "batch": B, "torch_version": torch.__version__, "usable_version": usable.__version__,
                               "machine": platform.machine(), "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
