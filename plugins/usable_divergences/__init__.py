"""Divergences between two predictions, per sample. Inputs are probability vectors over the last
axis (class targets) or predicted means (Gaussian targets); every function returns one value per
sample (the last axis reduced). ``usable.fit`` combines them over n sources (pairwise/consensus).
"""
from typing import Annotated, Literal

from usable import SpecError, hookimpl


Smooth = Annotated[float, "width s of a smooth bottom: Σ sqrt((p−q)² + s²) − s, within s of the exact "
                           "value (0 = exact |p − q|)"]


def _smooth(name: str, smooth: float) -> float:
    if not 0 <= smooth < 1:
        raise SpecError(f"divergence {name}: smooth={smooth} must be in [0, 1) (e.g. 0.01, or 0 for the exact form)")
    return smooth


def l1(reduction: Annotated[Literal["sum", "mean"], "sum over classes (paper) or mean (reference code)"] = "sum",
       smooth: Smooth = 0.0):
    """L1 distance Σ_k |p_k − q_k| ∈ [0, 2] (the RINE paper's D); reduction=mean divides by K, as
    the RINE reference code does, so its published β values mean the same."""
    from .functions import make_l1
    return make_l1(reduction, _smooth("l1", smooth))


def tv(smooth: Smooth = 0.0):
    """Total variation ½ Σ_k |p_k − q_k| ∈ [0, 1]."""
    from .functions import make_tv
    return make_tv(_smooth("tv", smooth))


def js():
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m), m = (p+q)/2, in bits ∈ [0, 1]."""
    from .functions import make_js
    return make_js()


def skl():
    """Symmetric KL divergence KL(p‖q) + KL(q‖p) in nats ∈ [0, ∞) (probabilities clamped at 1e-12)."""
    from .functions import make_skl
    return make_skl()


def hellinger(squared: Annotated[bool, "return H² instead of H"] = False):
    """Hellinger distance sqrt(½ Σ_k (√p_k − √q_k)²) ∈ [0, 1] (squared=true: its square)."""
    from .functions import make_hellinger
    return make_hellinger(squared)


def l2(squared: Annotated[bool, "return ‖p−q‖² instead of ‖p−q‖"] = False):
    """Euclidean distance ‖p − q‖₂ ∈ [0, √2] (squared=true: ‖p − q‖₂² ∈ [0, 2])."""
    from .functions import make_l2
    return make_l2(squared)


def mean_sq():
    """Gaussian decoders: squared distance of the predicted means Σ (μ_p − μ_q)² ∈ [0, ∞)."""
    from .functions import make_mean_sq
    return make_mean_sq()


@hookimpl
def register_divergences(register):
    for factory in (l1, tv, js, skl, hellinger, l2):
        register(factory.__name__, factory, targets=("classes",))
    register("mean_sq", mean_sq, targets=("real",))
