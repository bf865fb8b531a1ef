"""User errors: problems with what someone asked for (a spec, a file, a store), not bugs.

The CLI prints any ``UserError`` as one line (the message names the problem and the fix) and
keeps the traceback of everything else, so a genuine bug is never hidden; ``usable --traceback``
shows it for user errors too. Plugins raise these (``usable.SpecError`` ...) for bad input.
"""


class UserError(Exception):
    """Something the user asked for cannot be done; the message says why and what to do."""


class SpecError(UserError, ValueError):
    """A spec, option or config names an unknown parameter or gives a value it cannot take."""


class DataError(UserError, ValueError):
    """The data cannot be used as given (missing files, bad values, empty splits, ...)."""


class StoreError(UserError, RuntimeError):
    """A results store cannot be read or written as asked."""


class PluginError(UserError, RuntimeError):
    """Two plugins registered the same name, or a plugin broke the registration contract."""


class UnknownName(UserError, KeyError):
    """A name that no loaded plugin registered. The message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


class MissingDependency(UserError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra to install.
    Also an ImportError, so code that already falls back on ImportError keeps doing so."""


def require(module: str, extra: str, what: str | None = None):
    """Import and return ``module`` (``"pynwb"``, ``"dask.array"``), or raise MissingDependency
    naming the extra that installs it: ``pynwb = usable.require("pynwb", extra="neural")``.

    Heavy optional dependencies (timm, pynwb, dask) live in extras so ``pip install usable`` stays
    small; a plugin asks for one here, at its import site, so a user without it reads one line
    saying what to install instead of a traceback."""
    import importlib
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # the module itself, or a package it needs (pynwb without hdmf): both are fixed by the extra
        missing = exc.name or module
        problem = "is not installed" if missing.split(".")[0] == module.split(".")[0] else f"cannot import {missing}"
        subject = f"{what} needs {module}, which" if what else module
        raise MissingDependency(f"{subject} {problem}: install usable[{extra}], e.g. pip install 'usable[{extra}]'") \
            from None


class GuardWarning(UserWarning):
    """An estimate outside what is possible (its ``flags`` say which cells and why)."""
