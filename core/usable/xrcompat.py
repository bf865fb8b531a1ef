"""xarray without importing dask.array on every Variable.

xarray asks, for every Variable it creates, whether the data is a dask array; to know the class
it imports dask.array (0.6 s of every ``usable run``, measured) even when nothing uses dask. No
object can be a dask array before dask.array is imported, so until then the honest answer is
"no". ``install()`` puts a stand-in into xarray's cache of optional array modules that answers
from ``sys.modules`` and hands over to xarray's own entry on any other question; once dask.array
is imported (a dask sweep, ``open_zarr`` with chunks) the class is the real one.
"""
from __future__ import annotations

import sys


class _DaskWhenImported:
    @property
    def type(self):
        mod = sys.modules.get("dask.array")
        return (mod.Array,) if mod is not None and hasattr(mod, "Array") else ()

    def __getattr__(self, name):  # module, version, available: xarray's own probe, from now on
        from xarray.namedarray import pycompat
        real = pycompat.DuckArrayModule("dask")
        pycompat._cached_duck_array_modules["dask"] = real
        return getattr(real, name)


def install() -> None:
    """Idempotent; does nothing on an xarray without that cache (its layout is private)."""
    try:
        from xarray.namedarray import pycompat
    except ImportError:
        return
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if isinstance(cache, dict) and "dask" not in cache and "dask.array" not in sys.modules:
        cache["dask"] = _DaskWhenImported()
