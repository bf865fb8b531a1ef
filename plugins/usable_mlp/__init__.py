"""Fully connected decoders: ``mlp`` (hidden sizes, batch norm, ReLU) and ``linear``.

Both train natively batched (stacked weights, batched matmuls) when several seeds or β values
share one fit; ``build`` gives the plain single network (a ``usable.Network`` of named blocks).
"""
from typing import Annotated

from usable import SpecError, hookimpl


def make_mlp(hidden: Annotated[list[int], "hidden sizes joined by '+' (the RINE paper's 25+15+10)"] = (25, 15, 10),
             batch_norm: Annotated[bool, "batch norm after each hidden linear layer"] = True):
    """Fully connected network: [Linear -> BatchNorm -> ReLU] per hidden size, then a linear head."""
    if any(h < 1 for h in hidden):
        raise SpecError(f"decoder mlp: hidden sizes must be >= 1, got {list(hidden)}; e.g. hidden=25+15+10 "
                        "(or use the linear decoder for no hidden layer)")
    from .mlp import MLP
    return MLP(hidden, batch_norm)


def make_linear():
    """Linear (softmax-regression, or linear-Gaussian for real targets) decoder on flattened input."""
    from .mlp import MLP
    return MLP([], batch_norm=False)


@hookimpl
def register_decoders(register):
    register("mlp", make_mlp)
    register("linear", make_linear)
