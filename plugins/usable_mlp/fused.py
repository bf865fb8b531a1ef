"""The MLP family's whole training epoch as one compiled call (kernel.c through ctypes).

Why: a step of these small decoders costs microseconds of arithmetic but, in eager PyTorch, about
a hundred op dispatches plus autograd bookkeeping (3-6 ms measured on this project's 2-core
machine). The kernel runs member by member, with the member's weights, optimiser state and
activations in cache, and returns to Python once per epoch. It is compiled once with the
system's C compiler (about 0.3 s) and cached under ``$USABLE_CACHE`` (default
``~/.cache/usable``) by a hash of its source, the flags and the CPU; ``USABLE_COMPILE=0``, a
missing compiler, or anything it does not cover (callbacks at batch end, other divergences or
targets, a GPU) trains through the generic eager path instead, with the same numbers to float
tolerance (tests/test_fused_mlp.py).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernel.c")
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-std=gnu11", "-fPIC", "-shared"]
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}
DIVERGENCES = {"l1": 1, "l2sq": 2, "l2": 3, "js": 4, "skl": 5, "hellinger": 6, "hellinger_sq": 7, "l1_smooth": 8}
_LIB: list = []  # [CDLL or None] once tried


def _cpu() -> str:
    try:
        return next(line for line in open("/proc/cpuinfo") if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def enabled() -> bool:
    return os.environ.get("USABLE_COMPILE", "1") != "0"


def library():
    """The compiled kernel (compiled now if the cache lacks it), or None with a one-line notice."""
    if _LIB:
        return _LIB[0]
    key = hashlib.sha1(SOURCE.read_bytes() + " ".join(FLAGS).encode() + _cpu().encode()).hexdigest()[:16]
    cache = Path(os.environ.get("USABLE_CACHE", "~/.cache/usable")).expanduser() / "kernels"
    so = cache / f"mlp_epoch-{key}.so"
    lib = None
    try:
        if not so.exists():
            cache.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
            os.close(fd)
            cc = os.environ.get("CC", "cc")
            out = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                os.unlink(tmp)
                raise OSError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"{cc} failed")
            os.replace(tmp, so)  # atomic: concurrent processes see a whole library or none
        lib = ctypes.CDLL(str(so))
        lib.usable_mlp_epoch.restype = lib.usable_mlp_predict.restype = ctypes.c_int
        lib.usable_mlp_epoch.argtypes = [ctypes.c_void_p] * 4
        lib.usable_mlp_predict.argtypes = [ctypes.c_void_p] * 3
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"usable: the MLP kernel could not be compiled ({exc}); training in eager PyTorch instead "
              "(slower; set USABLE_COMPILE=0 to skip this attempt)", file=sys.stderr)
    _LIB.append(lib)
    return lib


def _divergence_code(objective, n_sources: int) -> tuple[int, float, float] | None:
    """The kernel's code, scale and smoothing width for the fit's divergence: a divergence names
    its formula with a ``fused = (kind, scale[, smooth])`` attribute (the divergences plugin sets
    it); others are not covered."""
    if objective.divergence is None or n_sources < 2:
        return 0, 1.0, 0.0
    fused = getattr(objective.divergence, "fused", None)
    if not fused or fused[0] not in DIVERGENCES:
        return None
    scale = 1.0 / objective.n_classes if fused[1] == "1/K" else float(fused[1])
    return DIVERGENCES[fused[0]], scale, float(fused[2]) if len(fused) > 2 else 0.0


def _ptr(t) -> int:
    return 0 if t is None else t.data_ptr()


def _layer_pointers(models) -> list[int]:
    """Per source, per linear layer: W b gW gb [gamma beta ggamma gbeta running mean, var]."""
    ptrs = []
    for m in models:
        for layer in m.layers():
            ptrs += [_ptr(layer.weight), _ptr(layer.bias), _ptr(layer.weight.grad), _ptr(layer.bias.grad)]
            if layer.norm is not None:
                bn = layer.norm
                ptrs += [_ptr(bn.weight), _ptr(bn.bias), _ptr(bn.weight.grad), _ptr(bn.bias.grad),
                         _ptr(bn.running_mean), _ptr(bn.running_var)]
    return ptrs


def _same_family(models) -> bool:
    first = models[0]
    return all(type(m) is type(first) and m.hidden == first.hidden and m.batch_norm == first.batch_norm
               and m.n_members == first.n_members for m in models)


def fused_predict(models, xs, n_members, member_data, device):
    """Eval-mode outputs of every member on a whole split (a list over sources of (E, N, K)), or
    None when the kernel does not cover it. ``member_data``: as in usable.loop.predict."""
    if not enabled() or not _same_family(models) or (device is not None and device.type != "cpu"):
        return None
    if models[0].layers()[0].weight.device.type != "cpu":
        return None
    if any(x.dtype != torch.float32 or x.device.type != "cpu" for x in xs):
        return None
    lib = library()
    if lib is None:
        return None
    first = models[0]
    E, S, L = first.n_members, len(models), len(first.hidden) + 1
    if member_data is None:
        G, mdata = 1, torch.zeros(E, dtype=torch.int32)
        xs = [x.reshape(1, x.shape[0], -1).contiguous() for x in xs]
    else:
        G, mdata = xs[0].shape[0], member_data.to(torch.int32).contiguous()
        xs = [x.reshape(x.shape[0], x.shape[1], -1).contiguous() for x in xs]
    N = xs[0].shape[1]
    K = models[0].layers()[-1].weight.shape[-1]
    outs = [torch.empty(E, N, K) for _ in models]
    dims = [[x.shape[-1], *first.hidden, K] for x in xs]
    icfg = [E, S, G, N, L, K, int(first.batch_norm)] + [d for row in dims for d in row]
    eps = next((layer.norm.eps for layer in first.layers() if layer.norm is not None), 1e-5)
    ptrs = [x.data_ptr() for x in xs] + [mdata.data_ptr()] + [o.data_ptr() for o in outs] + _layer_pointers(models)
    with torch.no_grad():
        rc = lib.usable_mlp_predict((ctypes.c_int64 * len(icfg))(*icfg), (ctypes.c_double * 1)(eps),
                                    (ctypes.c_void_p * len(ptrs))(*ptrs))
    if rc != 0:
        raise MemoryError("the MLP kernel could not allocate its scratch memory")
    return outs


def fused_epoch(models, data, objective, opt, beta, factors, cfg, want_div, perms):
    """Train one epoch of every member with the kernel; (3 + S, E) float64 sums, or None when the
    kernel does not cover this fit (then the caller runs the generic path)."""
    from usable import Objective
    # the kernel implements the default objective exactly; another (a critic's bound) is not covered
    if not enabled() or type(objective) is not Objective:
        return None
    if objective.target != "classes" or objective.heads or objective.head_reduction != "mean":
        return None
    if opt.flat is None or cfg.optimizer not in OPTIMIZERS or data.device.type != "cpu":
        return None
    first = models[0]
    if not _same_family(models):
        return None
    div = _divergence_code(objective, len(models)) if want_div else (0, 1.0, 0.0)
    if div is None or any(x.dtype != torch.float32 for x in data.xs):
        return None
    lib = library()
    if lib is None:
        return None
    S, E, G, N, B, L, K = len(models), first.n_members, data.G, data.N, data.B, len(first.hidden) + 1, objective.n_classes
    xs = [x.reshape(G, N, -1).contiguous() for x in data.xs]
    dims = [[x.shape[-1], *first.hidden, K] for x in xs]
    icfg = [E, S, G, N, B, L, K, int(first.batch_norm), OPTIMIZERS[cfg.optimizer], div[0],
            0 if cfg.divergence_form == "pairwise" else 1, int(opt.t == 0), data.steps] + [d for row in dims for d in row]
    fcfg = [opt.lr, cfg.momentum, cfg.weight_decay, 1e-5, 0.1, div[1], float(opt.t), *factors,
            *beta.double().tolist(), div[2]]
    state = opt.state[0]
    if cfg.optimizer == "sgd":
        if "buf" not in state and cfg.momentum:
            state["buf"] = torch.zeros_like(opt.flat)
        s1 = state.get("buf", torch.zeros(1))
        s2 = s1
    else:
        s1 = state.setdefault("m", torch.zeros_like(opt.flat))
        s2 = state.setdefault("v", torch.zeros_like(opt.flat))
    y = data.y.reshape(G, N).contiguous()
    perm = perms.contiguous()
    mdata = (torch.zeros(E, dtype=torch.int32) if G == 1 else data.dataset_index.reshape(-1).to(torch.int32)).contiguous()
    keep = [*xs, y, perm, mdata]
    ptrs = [t.data_ptr() for t in keep] + [opt.flat.data_ptr(), s1.data_ptr(), s2.data_ptr()]
    ptrs += _layer_pointers(models)
    sums = torch.zeros(3 + S, E, dtype=torch.float64)
    ints = (ctypes.c_int64 * len(icfg))(*icfg)
    floats = (ctypes.c_double * len(fcfg))(*fcfg)
    pointers = (ctypes.c_void_p * len(ptrs))(*ptrs)
    if lib.usable_mlp_epoch(ints, floats, pointers, ctypes.c_void_p(sums.data_ptr())) != 0:
        raise MemoryError("the MLP kernel could not allocate its scratch memory")
    opt.t += data.steps
    return sums
