"""Metrics built on the one training loop: ``usable`` (V-information), ``rine`` (redundant
information of n sources), ``redundancy_matrix`` and the ``cosine`` baseline."""
from usable import hookimpl

from . import cosine, matrix, metrics


@hookimpl
def register_metrics(register):
    metrics.register_all(register)
    matrix.register_all(register)
    cosine.register_all(register)
