"""β-schedules: each returns factor(t, epochs) ∈ [0, 1]; the β in force at time t is β·factor(t).

t is the epoch index counted from 0 (fractional when the schedule is applied per step), so the
``exp`` schedule gives β_i = β(1 − γ^i), starting at 0 in the first epoch (RINE paper eq. A9).
"""
from __future__ import annotations

import math

from usable import Param, hookimpl


def make_exp(gamma: float = 0.97):
    """β_t = β(1 − γ^t): reverse annealing from 0 towards β (RINE paper appendix C.3)."""
    if not 0 < gamma < 1:
        raise ValueError(f"exp schedule: gamma must be in (0, 1), got {gamma}")
    return lambda t, epochs: 1.0 - gamma ** t


def make_constant():
    """β_t = β from the first step."""
    return lambda t, epochs: 1.0


def make_linear(warmup: float = 0.0):
    """β_t = β·min(1, t/warmup); warmup in epochs, 0 = the whole run."""
    def linear(t, epochs):
        w = warmup or max(epochs - 1, 1)
        return min(1.0, t / w)
    return linear


def make_cosine(warmup: float = 0.0):
    """β_t = β·(1 − cos(π·min(1, t/warmup)))/2; warmup in epochs, 0 = the whole run."""
    def cosine(t, epochs):
        w = warmup or max(epochs - 1, 1)
        return 0.5 * (1.0 - math.cos(math.pi * min(1.0, t / w)))
    return cosine


def make_step(at: float = 10.0):
    """β_t = 0 before epoch ``at``, β from then on."""
    return lambda t, epochs: 1.0 if t >= at else 0.0


@hookimpl
def register_schedules(register):
    register("exp", make_exp, params=[Param("gamma", 0.97, float, "decay of (1 − factor) per epoch")])
    register("constant", make_constant)
    register("linear", make_linear, params=[Param("warmup", 0.0, float, "epochs to reach β (0 = all)")])
    register("cosine", make_cosine, params=[Param("warmup", 0.0, float, "epochs to reach β (0 = all)")])
    register("step", make_step, params=[Param("at", 10.0, float, "epoch at which β switches on")])
