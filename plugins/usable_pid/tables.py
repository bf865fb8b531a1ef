"""The canonical tasks as exact tables, and their exact mutual information (plain Python)."""
from __future__ import annotations

import math

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


def table(task: str):
    """(source columns, target column, probabilities as written) of a task."""
    return columns(TASKS[task])


def columns(rows: list[tuple]):
    """(source columns, target column, probabilities) of a table of (x_1, …, x_n, y, p) rows."""
    n_src = len(rows[0]) - 2
    cols = list(zip(*rows))
    return [list(c) for c in cols[:n_src]], list(cols[n_src]), list(cols[-1])


def exact_mutual_information(task: str, sources: tuple[int, ...]) -> float:
    """I(X_S; Y) in bits from the exact table, for a tuple of source indices S."""
    xs, y, raw = table(task)
    p = [v / sum(raw) for v in raw]
    joint: dict = {}
    for k in range(len(p)):
        key = (tuple(xs[i][k] for i in sources), y[k])
        joint[key] = joint.get(key, 0.0) + p[k]
    px: dict = {}
    py: dict = {}
    for (x, yy), v in joint.items():
        px[x] = px.get(x, 0.0) + v
        py[yy] = py.get(yy, 0.0) + v
    return float(sum(v * math.log2(v / (px[x] * py[yy])) for (x, yy), v in joint.items() if v > 0))
