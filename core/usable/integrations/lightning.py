"""``usable.integrations.lightning.UsableCallback``: the tracker as a Lightning callback (extra
``[lightning]``). Provided by the tracker plugin, reached through the registry."""


def __getattr__(name: str):
    if name == "UsableCallback":
        from ..registry import plugin
        return plugin("tracker").UsableCallback
    raise AttributeError(f"module 'usable.integrations.lightning' has no attribute {name!r}")
