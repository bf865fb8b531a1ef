"""β-schedules: each returns factor(t, epochs) ∈ [0, 1]; the β in force at time t is β·factor(t).

t is the epoch index counted from 0 (fractional when the schedule is applied per step), so the
``exp`` schedule gives β_i = β(1 − γ^i), starting at 0 in the first epoch (RINE paper eq. A9).
"""
import math
from typing import Annotated

from usable import SpecError, hookimpl

Epochs = Annotated[float, "epochs to reach β (0 = the whole run)"]


def exp(gamma: Annotated[float, "decay of (1 − factor) per epoch"] = 0.97):
    """β_t = β(1 − γ^t): reverse annealing from 0 towards β (RINE paper appendix C.3)."""
    if not 0 < gamma < 1:
        raise SpecError(f"schedule exp: gamma must be in (0, 1), got {gamma}")
    return lambda t, epochs: 1.0 - gamma ** t


def constant():
    """β_t = β from the first step."""
    return lambda t, epochs: 1.0


def _warmup(warmup: float) -> float:
    if warmup < 0:
        raise SpecError(f"schedule warmup={warmup}: give epochs >= 0 (0 = the whole run)")
    return warmup


def linear(warmup: Epochs = 0.0):
    """β_t = β·min(1, t/warmup); warmup in epochs, 0 = the whole run."""
    _warmup(warmup)
    return lambda t, epochs: min(1.0, t / (warmup or max(epochs - 1, 1)))


def cosine(warmup: Epochs = 0.0):
    """β_t = β·(1 − cos(π·min(1, t/warmup)))/2; warmup in epochs, 0 = the whole run."""
    _warmup(warmup)
    return lambda t, epochs: 0.5 * (1.0 - math.cos(math.pi * min(1.0, t / (warmup or max(epochs - 1, 1)))))


def step(at: Annotated[float, "epoch at which β switches on"] = 10.0):
    """β_t = 0 before epoch ``at``, β from then on."""
    return lambda t, epochs: 1.0 if t >= at else 0.0


@hookimpl
def register_schedules(register):
    for factory in (exp, constant, linear, cosine, step):
        register(factory.__name__, factory)
