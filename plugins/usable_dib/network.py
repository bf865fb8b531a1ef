"""The main network of ``dib`` and ``track`` as a ``usable.Network``, and which layers to measure."""
from __future__ import annotations

from usable import ListOf, Memberwise, Network, SpecError

from .features import set_bn_mode


class NetworkDecoder(Memberwise):
    """Trains the plain ``usable.Network`` members of a decoder plugin (not a natively batched
    stand-in such as BatchedMLP, whose layers cannot be addressed) with the chosen batch-norm mode."""

    def __init__(self, decoder, bn_mode: str = "batch"):
        super().__init__(decoder)
        self.bn_mode = bn_mode

    def build(self, in_shape, n_out) -> Network:
        net = super().build(in_shape, n_out)
        if not isinstance(net, Network):
            raise TypeError(f"decoder {self.decoder!r} built a {type(net).__name__}, not a usable.Network "
                            "of named blocks; dib and track need addressable layers")
        return set_bn_mode(net, self.bn_mode)

    def __repr__(self):
        return f"NetworkDecoder({self.decoder!r}, bn_mode={self.bn_mode})"


def parse_layers(text, n_blocks: int) -> list[int]:
    """'all' -> 0..L-1; '0+2+3' or '1-3' -> those (0 = the input, l = output of block l)."""
    if text is None or str(text).strip().lower() in ("", "all"):
        return list(range(n_blocks))
    try:
        out = sorted(set(ListOf(int)(text)))
    except ValueError:
        raise SpecError(f"layers={text!r}: give 'all' or layer indices joined by '+' such as 0+1+3 (or a range 1-3)") from None
    bad = [l for l in out if l < 0 or l >= n_blocks]
    if bad:
        raise SpecError(f"layers {bad} do not exist: this network has layers 0..{n_blocks - 1} "
                         f"(0 = input, then the outputs of all blocks but the last)")
    return out
