"""Canonical partial-information-decomposition tasks (RINE paper appendix A), sampled exactly.

Each task is a table of (x_1, …, x_n, y, p). Samples are drawn i.i.d. from that table with a seed
and each source is one-hot encoded over the values it takes in the table.
"""
from __future__ import annotations

import numpy as np
import torch

from usable import Param, SourceData, Split, hookimpl
from usable.data import train_test_split_indices

# (x1, x2, [x3,] y, probability); symbols are arbitrary labels.
TASKS: dict[str, list[tuple]] = {
    "unq": [("a", "b", "ab", 0.25), ("a", "B", "aB", 0.25), ("A", "b", "Ab", 0.25), ("A", "B", "AB", 0.25)],
    "and": [(0, 0, 0, 0.25), (0, 1, 0, 0.25), (1, 0, 0, 0.25), (1, 1, 1, 0.25)],
    "xor": [(0, 0, 0, 0.25), (0, 1, 1, 0.25), (1, 0, 1, 0.25), (1, 1, 0, 0.25)],
    "rdnxor": [(f"{r}{a}", f"{r}{b}", f"{r}{a ^ b}", 0.125) for r in ("r", "R") for a in (0, 1) for b in (0, 1)],
    "imperfectrdn": [(0, 0, 0, 0.499), (0, 1, 0, 0.001), (1, 1, 1, 0.500)],
    # three sources
    "rdn3": [(b, b, b, b, 0.5) for b in (0, 1)],
    "xor3": [(a, b, c, a ^ b ^ c, 0.125) for a in (0, 1) for b in (0, 1) for c in (0, 1)],
}

# Ground truth redundancy I∩ in bits (Griffith et al.'s I∧∩, the value RINE with deterministic
# decoders targets; RINE paper table 1).
REDUNDANCY = {"unq": 0.0, "and": 0.0, "xor": 0.0, "rdnxor": 1.0, "imperfectrdn": 0.99, "rdn3": 1.0, "xor3": 0.0}


def _table(task: str):
    rows = TASKS[task]
    n_src = len(rows[0]) - 2
    cols = list(zip(*rows))
    p = np.asarray(cols[-1], dtype=float)
    return [list(c) for c in cols[:n_src]], list(cols[n_src]), p / p.sum()


def _codes(values: list) -> tuple[np.ndarray, list]:
    levels = sorted(set(values), key=str)
    return np.array([levels.index(v) for v in values]), levels


def exact_mutual_information(task: str, sources: tuple[int, ...]) -> float:
    """I(X_S; Y) in bits from the exact table, for a tuple of source indices S."""
    xs, y, p = _table(task)
    joint: dict = {}
    for k in range(len(p)):
        key = (tuple(xs[i][k] for i in sources), y[k])
        joint[key] = joint.get(key, 0.0) + p[k]
    px: dict = {}
    py: dict = {}
    for (x, yy), v in joint.items():
        px[x] = px.get(x, 0.0) + v
        py[yy] = py.get(yy, 0.0) + v
    return float(sum(v * np.log2(v / (px[x] * py[yy])) for (x, yy), v in joint.items() if v > 0))


def make_pid(task: str = "and", n: int = 10000, test_fraction: float = 0.2, seed: int = 0,
             encoding: str = "onehot") -> SourceData:
    """Sample ``n`` draws of a canonical PID task; one-hot sources, class target, 80/20 split.

    ``encoding="index"`` gives each source as one scalar column holding its symbol's index, as the
    RINE reference code feeds its toy decoders."""
    xs, y, p = _table(task)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(p), size=n, p=p)
    y_codes, y_levels = _codes(y)
    onehots = []
    for col in xs:
        codes, levels = _codes(col)
        if encoding == "index":
            onehots.append(codes[rows].astype(np.float32)[:, None])
        else:
            onehots.append(np.eye(len(levels), dtype=np.float32)[codes[rows]])
    target = y_codes[rows].astype(np.int64)
    tr, te = train_test_split_indices(n, test_fraction, seed + 1)
    def split(idx):
        return Split([torch.from_numpy(o[idx]) for o in onehots], torch.from_numpy(target[idx]))
    return SourceData(split(tr), split(te), [f"x{i + 1}" for i in range(len(xs))], "classes",
                      len(y_levels), [str(v) for v in y_levels],
                      {"task": task, "true_redundancy_bits": REDUNDANCY[task], "encoding": encoding})


@hookimpl
def register_sources(register):
    register("pid", make_pid, params=[
        Param("task", "and", str, "canonical task (RINE paper appendix A; rdn3/xor3 have 3 sources)",
              choices=sorted(TASKS)),
        Param("n", 10000, int, "number of samples drawn"),
        Param("test_fraction", 0.2, float, "held-out fraction"),
        Param("seed", 0, int, "seed of the draw and the split (fixed across training seeds)"),
        Param("encoding", "onehot", str, "each source one-hot, or one scalar symbol index (the RINE "
              "reference code's toy input)", choices=("onehot", "index")),
    ], help="canonical PID tasks sampled from their exact distributions (one-hot sources)")
