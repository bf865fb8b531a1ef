"""usable_api: the functional API on plain arrays, a front end over registered metrics.

``usable.usable_information(x, y)``, ``usable.rine([x1, x2], y, beta=15)``,
``usable.neural_collapse(features, y)`` and ``usable.from_arrays(xs, y)`` (names loaded on first
use through the registry, so USABLE_LOAD_PLUGINS governs them like any plugin entry). It
registers no entries; it runs the ``usable`` and ``rine`` metrics (plugin ``info``) and ``nc``
(plugin ``nc``) by name through ``usable.run_metric``, the path ``usable run`` takes, so the core
names no plugin's metric. Docs: docs/results.md.
"""
from usable import lazy_exports

_API = {"usable_information": "functions", "rine": "functions", "neural_collapse": "functions",
        "from_arrays": "functions", "class_codes": "functions"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
