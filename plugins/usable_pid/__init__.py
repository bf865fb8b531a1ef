"""Canonical partial-information-decomposition tasks (RINE paper appendix A), sampled exactly.

Each task is a table of (x_1, …, x_n, y, p). Samples are drawn i.i.d. from that table with a seed
and each source is one-hot encoded over the values it takes in the table (or given as one scalar
symbol index, as the RINE reference code feeds its toy decoders).
"""
from typing import Annotated, Literal

from usable import SpecError, hookimpl

from .tables import REDUNDANCY, TASKS, exact_mutual_information  # noqa: F401  (plain Python, no numpy)

Task = Literal["and", "imperfectrdn", "rdn3", "rdnxor", "unq", "xor", "xor3"]


def make_pid(task: Annotated[Task, "canonical task (RINE paper appendix A; rdn3/xor3 have 3 sources)"] = "and",
             n: Annotated[int, "number of samples drawn"] = 10000,
             test_fraction: Annotated[float, "held-out fraction"] = 0.2,
             seed: Annotated[int, "seed of the draw and the split (fixed across training seeds)"] = 0,
             encoding: Annotated[Literal["onehot", "index"], "each source one-hot, or one scalar symbol index "
                                 "(the RINE reference code's toy input)"] = "onehot"):
    """Canonical PID tasks sampled from their exact distributions (one-hot sources)."""
    if n < 2:
        raise SpecError(f"source pid: n={n} samples; draw at least 2 (the paper: 10000)")
    from .sample import sample_pid
    return sample_pid(task, n, test_fraction, seed, encoding)


@hookimpl
def register_sources(register):
    register("pid", make_pid)
