"""Discrete distributions with exact partial-information values, for testing RINE against truth.

Each case is a table of (x_1, …, x_n, y, p) rows, like the canonical tasks of the ``pid`` source;
``exact(rows)`` computes with dit, exactly: Griffith et al.'s I∧ (the Gács–Körner common
information of the sources relative to the target, dit's PID_GK), the minimum mutual information
MMI = min_i I(X_i; Y), every I(X_i; Y) and I(X_1..X_n; Y). Any reasonable redundancy lies in
[I∧, MMI]. The cases: the canonical tasks, noisy copies, k-ary redundancy, redundancy plus unique
or synergistic parts, products (independent compositions) and mixtures of tasks, random
deterministic functions and random joint tables, and three-source tasks.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from usable_pid.tables import TASKS


def _norm(rows):
    total = sum(r[-1] for r in rows)
    merged: dict = {}
    for r in rows:
        if r[-1] > 0:
            merged[r[:-1]] = merged.get(r[:-1], 0.0) + r[-1] / total
    return [(*k, v) for k, v in merged.items()]


def product(a, b):
    """Independent composition: each source and the target are pairs (a part, b part)."""
    return _norm([tuple(f"{x}|{y}" for x, y in zip(ra[:-1], rb[:-1])) + (ra[-1] * rb[-1],)
                  for ra in a for rb in b])


def mixture(a, b, w):
    """With probability w a row of a, else of b (symbols kept apart by a tag on every variable)."""
    return _norm([tuple(f"a{v}" for v in r[:-1]) + (w * r[-1],) for r in a] +
                 [tuple(f"b{v}" for v in r[:-1]) + ((1 - w) * r[-1],) for r in b])


def noisy_copy(eps):
    """Y = X (a fair bit), X1 = X, X2 = X flipped with probability eps."""
    return _norm([(x, x ^ f, x, 0.5 * (eps if f else 1 - eps)) for x in (0, 1) for f in (0, 1)])


def kary_redundant(k):
    return [(s, s, s, 1 / k) for s in range(k)]


def redundant_plus_unique():
    """Y = (R, A): X1 = (R, A), X2 = R; I∩ = 1, U1 = 1."""
    return [(f"{r}{a}", r, f"{r}{a}", 0.25) for r in (0, 1) for a in (0, 1)]


def random_function(seed, k=3, n_y=3):
    """Y = f(X1, X2) for a random f, X1, X2 uniform over k symbols."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, n_y, size=(k, k))
    return _norm([(a, b, int(f[a, b]), 1 / k ** 2) for a in range(k) for b in range(k)])


def random_table(seed, k=2, n_y=2, concentration=0.5):
    """A joint table p(x1, x2, y) drawn from a Dirichlet."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([concentration] * (k * k * n_y))
    return _norm([(a, b, c, float(p[i])) for i, (a, b, c) in enumerate(itertools.product(range(k), range(k), range(n_y)))])


def block_table(seed, concentration=0.5):
    """A shared block label Q (a fair bit) that both sources and the target carry, with a random
    2×2×2 table inside each block: the meet is Q, so I∧ = I(Q; Y) = 1 bit, MMI above it."""
    rng = np.random.default_rng(100 + seed)
    rows = []
    for q in (0, 1):
        p = rng.dirichlet([concentration] * 8)
        rows += [(f"{q}{a}", f"{q}{b}", f"{q}{c}", 0.5 * float(p[i]))
                 for i, (a, b, c) in enumerate(itertools.product(range(2), range(2), range(2)))]
    return _norm(rows)


def redundant3_noisy(eps):
    """Three noisy copies of one bit (X3 flipped with probability eps), Y = the bit."""
    return _norm([(x, x, x ^ f, x, 0.5 * (eps if f else 1 - eps)) for x in (0, 1) for f in (0, 1)])


CANONICAL = ("unq", "and", "xor", "rdnxor", "imperfectrdn", "rdn3", "xor3")


def cases() -> dict[str, list[tuple]]:
    t = {k: [tuple(r) for r in v] for k, v in TASKS.items()}
    return {
        **{name: t[name] for name in ("unq", "and", "xor", "rdnxor", "imperfectrdn")},
        "noisy_copy_0.05": noisy_copy(0.05),
        "noisy_copy_0.2": noisy_copy(0.2),
        "redundant_3ary": kary_redundant(3),
        "redundant_plus_unique": redundant_plus_unique(),
        "rdn_x_and": product(kary_redundant(2), t["and"]),
        "rdnxor_x_unq": product(t["rdnxor"], t["unq"]),
        "rdn_x_xor": product(kary_redundant(2), t["xor"]),
        "mix_rdn_xor_0.5": mixture(kary_redundant(2), t["xor"], 0.5),
        "mix_rdnxor_and_0.7": mixture(t["rdnxor"], t["and"], 0.7),
        "mix_unq_rdn_0.3": mixture(t["unq"], kary_redundant(4), 0.3),
        **{f"random_function_{s}": random_function(s) for s in range(4)},
        **{f"random_table_{s}": random_table(s) for s in range(4)},
        **{f"block_table_{s}": block_table(s) for s in range(2)},
        "rdn3": t["rdn3"],
        "xor3": t["xor3"],
        "rdn3_noisy_0.1": redundant3_noisy(0.1),
    }


def _dist(rows):
    import dit
    return dit.Distribution([tuple(str(v) for v in r[:-1]) for r in rows], [float(r[-1]) for r in rows])


def meet(rows) -> list[int]:
    """The Gács–Körner common variable of the sources, per row: the connected component of the
    row's source values in the graph that links values co-occurring with positive probability
    (the finest variable that every source determines)."""
    n = len(rows[0]) - 2
    parent: dict = {}

    def find(v):
        while parent.setdefault(v, v) != v:
            v = parent[v]
        return v
    for r in rows:
        first = find((0, r[0]))
        for i in range(1, n):
            parent[find((i, r[i]))] = first
    roots = [find((0, r[0])) for r in rows]
    return [sorted(set(roots), key=str).index(q) for q in roots]


def i_and_gk(rows) -> float:
    """I∧ by dit's PID_GK lattice (slow beyond ~16 rows; used to check ``meet``)."""
    from dit.pid import PID_GK
    n = len(rows[0]) - 2
    return float(PID_GK(_dist(rows), [[i] for i in range(n)], [n])[tuple((i,) for i in range(n))])


@functools.lru_cache(maxsize=None)
def _exact(key):
    from dit.multivariate import coinformation
    rows = list(key)
    n = len(rows[0]) - 2
    # I∧ = I(Q; Y) for Q the sources' meet (Griffith et al. 2014): dit computes the information of
    # the exact table with Q appended; dit's own PID_GK lattice agrees and is tested against this.
    with_q = _dist([(*r[:-1], q, r[-1]) for r, q in zip(rows, meet(rows))])
    red = float(coinformation(with_q, [[n + 1], [n]]))
    d = _dist(rows)
    mi = [float(coinformation(d, [[i], [n]])) for i in range(n)]
    joint = float(coinformation(d, [list(range(n)), [n]]))
    return {"i_and": red, "mmi": min(mi), "mi": mi, "joint": joint}


def exact(rows) -> dict:
    """{"i_and": I∧, "mmi": MMI, "mi": [I(X_i;Y)], "joint": I(X;Y)} in bits, exactly."""
    return _exact(tuple(tuple(r) for r in rows))
