"""Drawing samples of a canonical task: one-hot (or index) sources, class target, seeded split."""
from __future__ import annotations

import numpy as np
import torch

from usable import SourceData, Split, train_test_split_indices

from .tables import REDUNDANCY, TASKS, columns


def _codes(values: list) -> tuple[np.ndarray, list]:
    levels = sorted(set(values), key=str)
    return np.array([levels.index(v) for v in values]), levels


def sample_pid(task: str, n: int, test_fraction: float, seed: int, encoding: str) -> SourceData:
    data = sample_table(TASKS[task], n, test_fraction, seed, encoding)
    data.attrs.update({"task": task, "true_redundancy_bits": REDUNDANCY[task]})
    return data


def sample_table(rows: list[tuple], n: int, test_fraction: float = 0.2, seed: int = 0,
                 encoding: str = "onehot") -> SourceData:
    """n i.i.d. draws from a table of (x_1, …, x_n, y, p) rows (any symbols; p need not sum to 1)."""
    xs, y, p = columns(rows)
    p = np.asarray(p, dtype=float)
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(p), size=n, p=p)
    y_codes, y_levels = _codes(y)
    inputs = []
    for col in xs:
        codes, levels = _codes(col)
        if encoding == "index":
            inputs.append(codes[rows].astype(np.float32)[:, None])
        else:
            inputs.append(np.eye(len(levels), dtype=np.float32)[codes[rows]])
    target = y_codes[rows].astype(np.int64)
    tr, te = train_test_split_indices(n, test_fraction, seed + 1)

    def split(idx):
        return Split([torch.from_numpy(o[idx]) for o in inputs], torch.from_numpy(target[idx]))
    return SourceData(split(tr), split(te), [f"x{i + 1}" for i in range(len(xs))], "classes",
                      len(y_levels), [str(v) for v in y_levels],
                      {"encoding": encoding})
