"""Mutual-information estimator baselines beside usable information, on ground-truth tasks.

Metrics (all in bits, between X and Y: by default the first two sources, or a source and the
target): the critic bounds ``infonce``, ``nwj``, ``mine`` and ``smile`` (critics g(x)·h(y) built
from the run's decoder and trained through ``usable.fit``, held-out estimates), ``doe``
(difference of entropies with the loop's own Gaussian / softmax decoders) and ``ksg`` (Kraskov
k-NN). Sources with a known I(X;Y): ``mi_gaussian``, ``mi_student`` (optionally through
MI-preserving maps) and ``bmi`` (benchmark-mi's tasks, when installed). Decoder: ``mi_mlp``, a
smooth MLP with a linear skip, the critic family these estimators are tuned with.
"""
from typing import Annotated, Literal

from usable import SpecError, hookimpl

_X = Annotated[str, "X: a source name or index, or 'target' (default: the first source)"]
_Y = Annotated[str, "Y: a source name or index, or 'target' (default: the second source, else the target)"]
_EMBED = Annotated[int, "embedding size d of the critic f(x, y) = s·g(x)·h(y)/√d (the decoders' n_out)"]
_NEG = Annotated[int, "held-out candidates per sample: 0 = every test sample, else blocks of this many"]
_STD = Annotated[bool, "standardise every feature with training statistics (invertible: I(X;Y) unchanged)"]
_VAL = Annotated[float, "fraction of the training split set aside to keep each member at its best epoch "
                        "(0: the last epoch)"]
_PAT = Annotated[int, "stop once no member's validation bound has improved for this many epochs"]
_TRANSFORM = Literal["none", "halfcube", "asinh", "mlp"]
_TRANSFORM_HELP = ("MI-preserving map applied to X and to Y: none | halfcube (t·√|t|) | asinh | "
                   "mlp (random invertible)")


# ------------------------------------------------------------------------------------ metrics
def infonce(ctx, x: _X = "", y: _Y = "", embed: _EMBED = 64, negatives: _NEG = 0, standardize: _STD = True,
            validation: _VAL = 0.1, patience: _PAT = 5):
    """InfoNCE bound on I(X;Y) (≤ log2 K, K the held-out candidates), held-out, in bits."""
    from .metrics import compute_critic
    return compute_critic(ctx, "infonce", x, y, embed, negatives, standardize, validation, patience)


def nwj(ctx, x: _X = "", y: _Y = "", embed: _EMBED = 64, negatives: _NEG = 0, standardize: _STD = True,
        validation: _VAL = 0.1, patience: _PAT = 5):
    """NWJ (f-divergence) bound E_p[f] − E_q[e^(f−1)] on I(X;Y), held-out, in bits."""
    from .metrics import compute_critic
    return compute_critic(ctx, "nwj", x, y, embed, negatives, standardize, validation, patience)


def mine(ctx, x: _X = "", y: _Y = "", embed: _EMBED = 64, negatives: _NEG = 0, standardize: _STD = True,
         validation: _VAL = 0.1, patience: _PAT = 5,
         ema: Annotated[float, "rate of the moving average of E_q[e^f] in MINE's corrected gradient"] = 0.01):
    """MINE: Donsker-Varadhan bound trained with the moving-average bias correction, held-out, in bits."""
    from .metrics import compute_critic
    return compute_critic(ctx, "mine", x, y, embed, negatives, standardize, validation, patience, ema=ema)


def smile(ctx, x: _X = "", y: _Y = "", embed: _EMBED = 64, negatives: _NEG = 0, standardize: _STD = True,
          validation: _VAL = 0.1, patience: _PAT = 5,
          clip: Annotated[float, "τ: e^f clipped to [e^−τ, e^τ] in the partition term"] = 5.0):
    """SMILE: clipped Donsker-Varadhan estimate, critic trained with the JS bound, held-out, in bits."""
    from .metrics import compute_critic
    return compute_critic(ctx, "smile", x, y, embed, negatives, standardize, validation, patience, clip=clip)


def doe(ctx, x: _X = "", y: _Y = "",
        heads: Annotated[Literal["chain", "independent"], "continuous Y: chain rule over its coordinates, or "
                         "independent Gaussian heads (diagonal-Gaussian V-information)"] = "chain",
        validation: Annotated[float, "fraction of the training split set aside to keep each decoder at its best "
                              "epoch (0: last epoch)"] = 0.1, patience: _PAT = 5):
    """Difference of entropies H(Y) − H(Y|X) with the run's decoders as Gaussian (or softmax) densities, in bits."""
    from .metrics import compute_doe
    return compute_doe(ctx, x, y, heads, validation, patience)


def ksg(ctx, k: Annotated[int, "neighbours"] = 3, x: _X = "", y: _Y = "",
        split: Annotated[Literal["all", "train", "test"], "samples to use (no training: all by default)"] = "all",
        standardize: _STD = True):
    """Kraskov-Stögbauer-Grassberger k-NN estimate of I(X;Y) (KD-tree), in bits; no training."""
    from .metrics import compute_ksg
    return compute_ksg(ctx, k, x, y, split, standardize)


# ------------------------------------------------------------------------------------ sources
def mi_gaussian(dim: Annotated[int, "dimension of X and of Y (independent pairs)"] = 1,
                bits: Annotated[float, "I(X;Y) in bits, spread evenly over the pairs"] = 1.0,
                transform: Annotated[_TRANSFORM, _TRANSFORM_HELP] = "none",
                n: Annotated[int, "samples drawn"] = 10000,
                test_fraction: Annotated[float, "held-out fraction"] = 0.2,
                seed: Annotated[int, "seed of the draw, the maps and the split"] = 0):
    """Gaussian pairs X, Y ∈ R^dim with a chosen I(X;Y) = −½·Σ log2(1 − ρ²) (sources x, y)."""
    from .sources import make_gaussian_pair
    return make_gaussian_pair(dim, bits, transform, n, test_fraction, seed)


def mi_student(dim: Annotated[int, "dimension of X and of Y"] = 1,
               df: Annotated[float, "degrees of freedom ν"] = 3.0,
               rho: Annotated[float, "correlation of each (x_k, y_k) pair in the dispersion matrix"] = 0.0,
               transform: Annotated[_TRANSFORM, _TRANSFORM_HELP] = "none",
               n: Annotated[int, "samples drawn"] = 10000,
               test_fraction: Annotated[float, "held-out fraction"] = 0.2,
               seed: Annotated[int, "seed of the draw, the maps and the split"] = 0):
    """Multivariate Student-t pair (sources x, y); closed-form I(X;Y), dependent even at rho=0."""
    from .sources import make_student_pair
    return make_student_pair(dim, df, rho, transform, n, test_fraction, seed)


def bmi(task: Annotated[str, "benchmark-mi task id, e.g. 1v1-normal-0.75"] = "1v1-normal-0.75",
        n: Annotated[int, "samples drawn"] = 10000,
        test_fraction: Annotated[float, "held-out fraction"] = 0.2,
        seed: Annotated[int, "seed of the task's sampler and the split"] = 0):
    """A benchmark-mi task (Czyż et al. 2023) with its ground truth; needs `pip install usable[bmi]`."""
    from .sources import make_bmi_task
    return make_bmi_task(task, n, test_fraction, seed)


# ------------------------------------------------------------------------------------ decoders
def mi_mlp(hidden: Annotated[list[int], "hidden sizes joined by '+'"] = (64,),
           activation: Annotated[Literal["softplus", "silu", "tanh", "relu"], "hidden activation"] = "softplus",
           skip: Annotated[bool, "add a linear map of the input to the output"] = True):
    """Smooth MLP with a linear skip (natively batched): the critic embedding the MI metrics are tuned with."""
    if not hidden or any(h < 1 for h in hidden):
        raise SpecError(f"decoder mi_mlp: hidden sizes must be >= 1, got {list(hidden)}; e.g. hidden=64 or 64+64")
    from .embed import MIMLP
    return MIMLP(hidden, activation, skip)


@hookimpl
def register_metrics(register):
    for factory in (infonce, nwj, mine, smile, doe, ksg):
        register(factory.__name__, factory)


@hookimpl
def register_sources(register):
    register("mi_gaussian", mi_gaussian)
    register("mi_student", mi_student)
    register("bmi", bmi)


@hookimpl
def register_decoders(register):
    register("mi_mlp", mi_mlp)
