"""usable: how much information about a target a family of decoders can actually use."""
__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402
from .params import Param, SpecError, int_list  # noqa: E402
from .spec import Spec, parse_spec, format_spec  # noqa: E402
from .data import SourceData, Split, combine  # noqa: E402
from .ensemble import Network, ModuleEnsemble, make_ensemble  # noqa: E402
from .fit import FitConfig, FitResult, fit, evaluate, predict  # noqa: E402
from .registry import (  # noqa: E402
    create, create_decoder, create_divergence, create_schedule, create_source, get_manager,
    list_decoders, list_divergences, list_metrics, list_schedules, list_sources, PluginError,
    UnknownName,
)
from .store import open_results, write_run  # noqa: E402
from .run import RunContext, run_metric  # noqa: E402

__all__ = [
    "__version__", "hookimpl", "Param", "SpecError", "int_list", "Spec", "parse_spec", "format_spec",
    "SourceData", "Split", "combine", "Network", "ModuleEnsemble", "make_ensemble", "FitConfig",
    "FitResult", "fit", "evaluate", "predict", "create", "create_decoder", "create_divergence",
    "create_schedule", "create_source", "get_manager", "list_decoders", "list_divergences",
    "list_metrics", "list_schedules", "list_sources", "PluginError", "UnknownName", "open_results",
    "write_run", "RunContext", "run_metric",
]
