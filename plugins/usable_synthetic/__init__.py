"""Synthetic sources with known answers: ``gaussian`` (real target, closed-form redundancy) and
``synthetic`` (the RINE paper's 8-class overlap task of figure 5, with noise and shared units)."""
from usable import Param, hookimpl

from .gaussian import MODES, make_gaussian
from .overlap import make_synthetic


@hookimpl
def register_sources(register):
    register("gaussian", make_gaussian, params=[
        Param("mode", "copy", str, "copy | transform | halves | noise", choices=MODES),
        Param("sigma", 1.0, float, "sd of the observation noise X = Y + N(0, σ²)"),
        Param("a", 2.0, float, "transform: X2 = a·X1 + b"),
        Param("b", 1.0, float, "transform: X2 = a·X1 + b"),
        Param("n", 10000, int, "number of samples drawn"),
        Param("test_fraction", 0.2, float, "held-out fraction"),
        Param("seed", 0, int, "seed of the draw and the split (fixed across training seeds)"),
    ], help="real target Y ~ N(0,1), two sources with a closed-form redundancy (Gaussian decoders)")
    register("synthetic", make_synthetic, params=[
        Param("n", 8, int, "classes each source encodes, minimal overlap (classes/2: none shared, classes: all)"),
        Param("classes", 8, int, "number of classes of Y"),
        Param("noise", 0, int, "noise units N(0, noise_sd²) added to each source, independently"),
        Param("noise_sd", 2.0, float, "sd of the noise units (the paper's 2)"),
        Param("shared", 0, int, "non-task units added to both sources, the same draw"),
        Param("shared_sd", 1.0, float, "sd of the shared non-task units"),
        Param("samples", 10000, int, "number of samples drawn"),
        Param("test_fraction", 0.2, float, "held-out fraction (stratified by class)"),
        Param("seed", 0, int, "seed of the draw and the split"),
    ], help="RINE paper fig. 5: 8 classes, two sources encoding n classes each with minimal overlap")
