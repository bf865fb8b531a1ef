"""Sources with a known I(X;Y): Gaussian and Student-t pairs, optionally pushed through maps that
preserve mutual information, and benchmark-mi's tasks when that package is installed.

Every source returns two sources, ``x`` and ``y`` (float, (N, dim)), and a real target (Y's first
coordinate, so that V-information metrics such as ``usable`` run on it unchanged). Its attrs carry
the ground truth ``true_mi_bits`` and the pair it refers to (``mi_between = "x,y"``).

MI-preserving maps act on X and on Y separately, coordinate-wise or as an invertible network:
I(f(X); g(Y)) = I(X; Y) for injective f, g (e.g. Cover & Thomas, section 8.6), so the truth stays the
same while the joint law stops being Gaussian.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import digamma, gammaln

from usable import DataError, SourceData, SpecError, Split, train_test_split_indices

LN2 = math.log(2.0)
TRANSFORMS = ("none", "halfcube", "asinh", "mlp")


# ------------------------------------------------------------------------------------ closed forms
def gaussian_pair_bits(rho: float, pairs: int = 1) -> float:
    """I(X;Y) of ``pairs`` independent standard-normal pairs with correlation ρ: −½·log2(1 − ρ²) each."""
    return -0.5 * pairs * math.log2(1.0 - rho * rho)


def rho_for_bits(bits: float, pairs: int) -> float:
    """The per-pair correlation that gives ``bits`` of I(X;Y) over ``pairs`` independent pairs."""
    return math.sqrt(1.0 - 2.0 ** (-2.0 * bits / pairs))


def _t_entropy_term(a: float) -> float:
    """f(a) = log Γ(a/2) − (a/2)·ψ(a/2): the dof-dependent part of a Student-t differential entropy."""
    return float(gammaln(a / 2.0) - (a / 2.0) * digamma(a / 2.0))


def student_correction_nats(df: float, dim_x: int, dim_y: int) -> float:
    """What a multivariate Student-t adds to the Gaussian MI of its dispersion matrix, in nats.

    The entropy of a d-dimensional t with ν dof and dispersion Σ is ½·log det Σ + log[Γ(ν/2)(νπ)^{d/2} /
    Γ((ν+d)/2)] + (ν+d)/2·[ψ((ν+d)/2) − ψ(ν/2)] (Kotz & Nadarajah, *Multivariate t Distributions and Their
    Applications*, 2004; Arellano-Valle, Contreras-Reyes & Genton, Scand. J. Stat. 40:42-62, 2013).
    Marginals of a t are t with the same ν, so I = h(X) + h(Y) − h(X,Y) = I_Gauss(Σ) + c with
    c = f(ν) + f(ν + m + n) − f(ν + m) − f(ν + n), f(a) = log Γ(a/2) − (a/2)ψ(a/2) (the (νπ) terms
    cancel).
    Czyż et al. 2023 (benchmark-mi) use the same decomposition. c > 0: a t with Σ = I is still dependent.
    """
    f = _t_entropy_term
    return f(df) + f(df + dim_x + dim_y) - f(df + dim_x) - f(df + dim_y)


def student_pair_bits(df: float, dim: int, rho: float) -> float:
    """I(X;Y) of the ``dim`` × ``dim`` Student-t with dispersion [[I, ρI], [ρI, I]], in bits."""
    return gaussian_pair_bits(rho, dim) + student_correction_nats(df, dim, dim) / LN2


def gaussian_pmi_bits(x: np.ndarray, y: np.ndarray, rho: float) -> np.ndarray:
    """log2 p(x,y)/(p(x)p(y)) per sample for independent standard-normal pairs of correlation ρ."""
    q = 1.0 - rho * rho
    per = -0.5 * np.log(q) - (rho * rho * (x * x + y * y) - 2.0 * rho * x * y) / (2.0 * q)
    return per.sum(axis=1) / LN2


def student_pmi_bits(x: np.ndarray, y: np.ndarray, rho: float, df: float) -> np.ndarray:
    """log2 p(x,y)/(p(x)p(y)) per sample for the Student-t pair (scipy's multivariate_t densities)."""
    from scipy.stats import multivariate_t
    d = x.shape[1]
    disp = np.block([[np.eye(d), rho * np.eye(d)], [rho * np.eye(d), np.eye(d)]])
    joint = multivariate_t(np.zeros(2 * d), disp, df=df).logpdf(np.hstack([x, y]))
    marg = multivariate_t(np.zeros(d), np.eye(d), df=df)
    return (np.atleast_1d(joint) - np.atleast_1d(marg.logpdf(x)) - np.atleast_1d(marg.logpdf(y))) / LN2


def draw_gaussian(dim: int, rho: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, dim))
    return x, rho * x + math.sqrt(1.0 - rho * rho) * rng.normal(size=(n, dim))


def draw_student(dim: int, rho: float, df: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = draw_gaussian(dim, rho, n, rng)
    w = np.sqrt(df / rng.chisquare(df, size=(n, 1)))  # one mixing scale per sample: a multivariate t
    return x * w, y * w


def untransformed(kind: str, dim: int, rho: float, n: int, seed: int, df: float = 0.0):
    """The draw a source of that seed makes before its map (maps consume the generator after it),
    so the true pointwise MI of any transformed task can be evaluated on it."""
    rng = np.random.default_rng(seed)
    return draw_gaussian(dim, rho, n, rng) if kind == "gaussian" else draw_student(dim, rho, df, n, rng)


# ------------------------------------------------------------------------------------ maps
def half_cube(v: np.ndarray) -> np.ndarray:
    """t ↦ t·√|t| (benchmark-mi's half-cube map): monotone, so MI-preserving, with heavier tails."""
    return v * np.sqrt(np.abs(v))


def random_invertible_mlp(dim: int, rng: np.random.Generator, layers: int = 2, slope: float = 0.3):
    """A random invertible network R^dim → R^dim: [orthogonal W, bias, leaky ReLU] × ``layers``, then one
    more orthogonal map and bias. Each step is a bijection (full-rank W, strictly monotone activation)."""
    def orthogonal():
        q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
        return q * np.sign(np.diag(r))
    weights = [(orthogonal(), rng.normal(scale=0.5, size=dim)) for _ in range(layers + 1)]

    def apply(v: np.ndarray) -> np.ndarray:
        for k, (w, b) in enumerate(weights):
            v = v @ w + b
            if k < layers:
                v = np.where(v > 0, v, slope * v)
        return v
    return apply


def apply_transform(name: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    if name not in TRANSFORMS:
        raise SpecError(f"transform {name!r}; choose one of {', '.join(TRANSFORMS)}")
    if name == "halfcube":
        return half_cube(x), half_cube(y)
    if name == "asinh":
        return np.arcsinh(x), np.arcsinh(y)
    if name == "mlp":  # one network for X and another for Y, both drawn from the data seed
        return random_invertible_mlp(x.shape[1], rng)(x), random_invertible_mlp(y.shape[1], rng)(y)
    return x, y


# ------------------------------------------------------------------------------------ packaging
def pair_data(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, attrs: dict) -> SourceData:
    """Two sources ``x`` and ``y`` and the real target Y_1, split train/test by ``seed``."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("the drawn sample holds non-finite values (a Student-t with small dof through a steep map "
                        "can overflow); use a smaller df-sensitive map, e.g. transform=asinh, or more dof")
    tr, te = train_test_split_indices(len(x), test_fraction, seed + 1)

    def split(idx):
        xs = [torch.tensor(x[idx], dtype=torch.float32), torch.tensor(y[idx], dtype=torch.float32)]
        return Split(xs, torch.tensor(y[idx, 0], dtype=torch.float32))

    attrs = {"mi_between": "x,y", "dim_x": int(x.shape[1]), "dim_y": int(y.shape[1]), **attrs}
    return SourceData(split(tr), split(te), ["x", "y"], "real", None, None, attrs)


def _check_common(n: int, test_fraction: float, dim: int) -> None:
    if dim < 1:
        raise SpecError(f"dim must be >= 1, got {dim}")
    if n < 10:
        raise SpecError(f"n must be at least 10 (samples to train and to hold out), got {n}")
    if not 0 < test_fraction < 1:
        raise SpecError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")


def make_gaussian_pair(dim: int, bits: float, transform: str, n: int, test_fraction: float, seed: int) -> SourceData:
    _check_common(n, test_fraction, dim)
    if not (math.isfinite(bits) and bits >= 0):
        raise SpecError(f"mi_gaussian: bits must be a finite number >= 0 (the I(X;Y) to build in), got {bits}")
    rng = np.random.default_rng(seed)
    rho = rho_for_bits(bits, dim)
    x, y = apply_transform(transform, *draw_gaussian(dim, rho, n, rng), rng)
    return pair_data(x, y, test_fraction, seed, {
        "task": f"gaussian-{dim}x{dim}-{bits:g}bit" + ("" if transform == "none" else f"-{transform}"),
        "true_mi_bits": gaussian_pair_bits(rho, dim), "rho": rho, "transform": transform})


def make_student_pair(dim: int, df: float, rho: float, transform: str, n: int, test_fraction: float,
                      seed: int) -> SourceData:
    _check_common(n, test_fraction, dim)
    if not df > 0:
        raise SpecError(f"mi_student: df (degrees of freedom) must be > 0, got {df}")
    if not 0 <= rho < 1:
        raise SpecError(f"mi_student: rho (the dispersion's correlation of each pair) must lie in [0, 1), got {rho}")
    rng = np.random.default_rng(seed)
    x, y = apply_transform(transform, *draw_student(dim, rho, df, n, rng), rng)
    return pair_data(x, y, test_fraction, seed, {
        "task": f"student-{dim}x{dim}-df{df:g}-rho{rho:g}" + ("" if transform == "none" else f"-{transform}"),
        "true_mi_bits": student_pair_bits(df, dim, rho), "df": float(df), "rho": float(rho), "transform": transform})


def make_bmi_task(task: str, n: int, test_fraction: float, seed: int) -> SourceData:
    """A task of benchmark-mi (Czyż et al. 2023), sampled with its own sampler and ground truth."""
    if n < 10:
        raise SpecError(f"bmi: n must be at least 10, got {n}")
    try:
        import bmi as benchmark_mi
    except ImportError:
        raise DataError("source bmi needs the benchmark-mi package (it brings JAX): install usable[bmi], "
                        "i.e. pip install benchmark-mi") from None
    tasks = benchmark_mi.benchmark.BENCHMARK_TASKS
    if task not in tasks:
        import difflib
        close = difflib.get_close_matches(task, list(tasks), n=5, cutoff=0.3)
        raise SpecError(f"bmi: no benchmark-mi task {task!r}" + (f"; close: {', '.join(close)}" if close else "")
                        + f" ({len(tasks)} tasks, e.g. {next(iter(tasks))})")
    t = tasks[task]
    x, y = t.sample(n, seed)
    return pair_data(np.asarray(x), np.asarray(y), test_fraction, seed, {
        "task": f"bmi:{task}", "task_name": str(t.name), "true_mi_bits": float(t.mutual_information) / LN2})
