"""Metrics built on the one training loop: ``usable`` (V-information), ``rine`` (redundant
information of n sources), ``redundancy_matrix``, the ``cosine`` baseline and ``rine_table``
(the RINE paper's Table 1 / A5 in one run)."""
from usable import hookimpl

from . import cosine, matrix, metrics, table_a5


@hookimpl
def register_metrics(register):
    metrics.register_all(register)
    matrix.register_all(register)
    cosine.register_all(register)
    table_a5.register_all(register)
