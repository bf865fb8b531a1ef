"""Synthetic sources with known answers: ``gaussian`` (real target, closed-form redundancy) and
``synthetic`` (the RINE paper's 8-class overlap task of figure 5, with noise and shared units)."""
from usable import hookimpl

from .gaussian import make_gaussian
from .overlap import make_synthetic


@hookimpl
def register_sources(register):
    register("gaussian", make_gaussian)
    register("synthetic", make_synthetic)
