"""usable_dib: the decodable information bottleneck per layer (metric ``dib``) and the thesis's
training tracker (metric ``track``): NC, sufficiency and minimality of every layer, every epoch.

Cheong (2025), sections 1.3, 2.2, 2.3 and chapter 3; Dubois et al. (2020), algorithm 1.
Python API::

    from usable_dib import relabel, n_digits, digit_entropies, measure, EpochStore, equi_separation

Docs: docs/dib-tracking.md.
"""
from usable import hookimpl

from .analyses import equi_separation, gaps  # noqa: F401
from .estimator import DIBResult, SuffixDecoder, decoder_config, measure  # noqa: F401
from .features import layer_features, set_bn_mode  # noqa: F401
from .progressive_store import EpochStore  # noqa: F401
from .relabel import digit_entropies, n_digits, relabel  # noqa: F401


@hookimpl
def register_metrics(register):
    from .metrics import register_all
    register_all(register)
