"""Metrics built on the one training loop: ``usable`` (V-information), ``rine`` (redundant
information of n sources), ``redundancy_matrix``, the ``cosine`` baseline and ``rine_table``
(the RINE paper's Table 1 / A5 in one run)."""
from typing import Annotated, Literal

from usable import SpecError, hookimpl


def usable(ctx, joint: Annotated[bool, "also fit one decoder on all sources concatenated"] = False,
           pvi: Annotated[bool, "store per-sample pointwise V-information (dim sample)"] = True):
    """Usable information I_V(X→Y) of each source, in bits on the test split."""
    from .metrics import compute_usable
    return compute_usable(ctx, joint, pvi)


MaxDivergence = Annotated[float, "flag a held-out divergence above this at the end (0: no check)"]


def _max_divergence(metric: str, value: float) -> float:
    if not value >= 0:  # NaN too
        raise SpecError(f"{metric}: max_divergence={value} must be >= 0 (0 turns the agreement check off)")
    return value


def rine(ctx, per_class: Annotated[bool, "also report redundant information per class (dim class)"] = False,
         atoms: Annotated[bool, "two sources: also unique information and synergy (a joint decoder is fitted)"] = False,
         max_divergence: MaxDivergence = 0.02):
    """Redundant information of n ≥ 2 sources (RINE), in bits; flags values outside what is possible."""
    from .metrics import compute_rine
    return compute_rine(ctx, per_class, atoms, _max_divergence("rine", max_divergence))


def redundancy_matrix(ctx, diagonal: Annotated[bool, "fill the diagonal with each source's usable information"] = True):
    """RINE for every pair of sources as a (source_a, source_b) matrix; diagonal = usable information."""
    from .matrix import compute_redundancy_matrix
    return compute_redundancy_matrix(ctx, diagonal)


def cosine(ctx, split: Annotated[Literal["test", "train", "all"], "samples to compare"] = "test",
           centre: Annotated[bool, "subtract each unit's mean first (a correlation)"] = False):
    """Mean cosine similarity between sources' feature vectors (target-agnostic baseline)."""
    from .similarity import compute_cosine
    return compute_cosine(ctx, split, centre)


def rine_table(ctx, tasks: Annotated[list[str], "canonical pid tasks joined by '+' (unq, and, rdnxor, imperfectrdn, "
                                                 "xor, ...)"] = ("unq", "and", "rdnxor", "imperfectrdn"),
               n: Annotated[int, "samples drawn per task (the paper: 10,000)"] = 10000,
               test_fraction: Annotated[float, "held-out fraction (the paper: 0.2)"] = 0.2,
               data_seed: Annotated[int, "seed of each task's draw and split (fixed across training seeds)"] = 0,
               encoding: Annotated[Literal["onehot", "index"], "source encoding: one-hot vectors, or index (one "
                                   "scalar per source, as the RINE reference code feeds its toy decoders)"] = "onehot",
               average_last: Annotated[int, "also report I∩ from the held-out cross-entropy averaged over the last "
                                       "k epochs (the reference code uses 5)"] = 1,
               max_divergence: MaxDivergence = 0.02):
    """RINE paper Table 1 / A5: RINE on the canonical tasks for every (seed, β), paper numbers beside."""
    from .table_a5 import compute_rine_table
    return compute_rine_table(ctx, list(tasks), n, test_fraction, data_seed, encoding, average_last,
                              _max_divergence("rine_table", max_divergence))


def _plot(module: str, name: str):
    def plot(ds, out, kind=None):
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)(ds, out, kind)
    return plot


@hookimpl
def register_metrics(register):
    register("usable", usable)
    register("rine", rine)
    register("redundancy_matrix", redundancy_matrix, plot=_plot("matrix", "plot_matrix"))
    register("cosine", cosine)
    register("rine_table", rine_table, requires=("pid",))
