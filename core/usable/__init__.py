"""usable: how much information about a target a family of decoders can actually use.

``__all__`` is the whole public surface, for built-in and third-party plugins alike. Names load
on first use (PEP 562), so ``from usable import hookimpl`` and ``usable --help`` import neither
torch nor xarray.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "hookspecs": ["hookimpl"],
    "errors": ["UserError", "SpecError", "DataError", "StoreError", "PluginError", "UnknownName", "MissingDependency",
               "require", "GuardWarning"],
    "params": ["Param", "ListOf"],
    "spec": ["Spec", "parse_spec", "format_spec"],
    "registry": ["create", "list_names", "get_entry", "get_manager", "plugin", "lazy_exports"],
    "runspec": ["FitConfig", "RunSpec", "load_config", "parse_seeds", "parse_betas"],
    "data": ["SourceData", "Split", "combine", "with_classes", "train_test_split_indices"],
    "ensemble": ["Network", "ModuleEnsemble", "VmapEnsemble", "Memberwise", "make_ensemble", "member_seed", "reset_parameters",
                 "strip_hooks"],
    "loop": ["fit", "evaluate", "predict", "combine_divergence", "resolve_device", "Objective", "LoopState"],
    "result": ["FitResult", "Members"],
    "info": ["LOG2E", "null_logp", "class_null_logp", "gaussian_null_logp", "entropy_bits", "bootstrap_ci"],
    "context": ["RunContext", "run_metric", "environment_attrs", "now_iso"],
    "store": ["Results", "open_results", "write_run", "query_runs", "storable", "clean_attrs", "quiet_zarr",
              "ZARR_FORMAT"],
    "checkpoint": ["save_checkpoint", "load_checkpoint", "load_networks"],
    "table": ["headline_vars", "summarise", "format_table"],
    "progressbar": ["progress", "VERBOSITY"],
    "cli": ["fit_options", "spec_options", "run_spec", "notice"],
}
# Public names a plugin provides, reached through the registry (never imported by the core), so
# USABLE_LOAD_PLUGINS governs them like every other plugin entry.
_FROM_PLUGINS = {"Tracker": "tracker", "list_layers": "tracker", "usable_information": "api", "rine": "api",
                 "neural_collapse": "api", "from_arrays": "api"}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["__version__", *sorted(_WHERE), *sorted(_FROM_PLUGINS)]


def __getattr__(name: str):
    if name in _FROM_PLUGINS:
        from .registry import plugin
        return getattr(plugin(_FROM_PLUGINS[name]), name)
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'usable' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__
