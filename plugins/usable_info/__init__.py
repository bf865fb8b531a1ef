"""Metrics built on the one training loop: ``usable`` (V-information), ``rine`` (redundant
information of n sources), ``redundancy_matrix`` and the ``cosine`` baseline."""
from usable import hookimpl

from .metrics import register_all


@hookimpl
def register_metrics(register):
    register_all(register)
