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
