"""usable_vision: image sources (digits, cifar10, fashion_mnist), views (crops, channels,
frequencies) and image decoders (resnet18, timm:<model>, cnn_plus, cnn_minus).

RINE paper section 4.2 / figure A3 and the thesis's section 2.3 / figure 2.3. The ``mlp`` decoder
(plugin usable_mlp) also takes images: it flattens them.
"""
from usable import hookimpl

from . import decoders, sources
from .views import channels, crops, frequency, split_views  # noqa: F401


@hookimpl
def register_sources(register):
    sources.register_all(register)


@hookimpl
def register_decoders(register):
    decoders.register_all(register)
