"""Hook specifications: the whole plugin surface of usable.

Every hook is handed a ``register`` callable; calling it adds one named entry to a registry and
stamps it with the plugin that provided it. See CONTRIBUTING.md for a complete example of each.
"""
from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("usable")
hookimpl = HookimplMarker("usable")


@hookspec
def register_sources(register):
    """Register data sources: ``register(name, factory, params=[...], help=...)``; factory returns a SourceData."""


@hookspec
def register_decoders(register):
    """Register decoder families: ``register(name, factory, params=[...], help=...)``; factory returns a Decoder."""


@hookspec
def register_divergences(register):
    """Register divergences between predictions: ``register(name, factory, params=[...], targets=(...))``."""


@hookspec
def register_schedules(register):
    """Register β-schedules: ``register(name, factory, params=[...])``; factory returns factor(t, epochs) in [0, 1]."""


@hookspec
def register_metrics(register):
    """Register metrics (estimators): ``register(name, compute, params=[...])``; compute(ctx, **p) returns a Dataset."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``usable`` command-line group ``cli``."""
