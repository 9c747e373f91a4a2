"""The toolkit's typed errors: what a user can fix, said in one line.

Every error the toolkit raises on purpose derives from :class:`MmgcnError`. Its message
names the file or field at fault and the fix; the command line (:mod:`mmgcn.cli`) prints
it as one line ``mmgcn: error: <message>`` and exits with status 2. Anything else that
escapes is a bug: the command line prints a short note and where the traceback was saved
(``--debug`` prints it).

Most classes also derive from the built-in exception that describes them
(``ValueError``, ``FloatingPointError``, ...), so ``except ValueError`` around library
calls keeps working.

This module imports nothing from the package, so every layer may raise these errors.
"""

from __future__ import annotations


class MmgcnError(Exception):
    """Base of the errors a user can act on (bad input, refused operation)."""


class ConfigError(MmgcnError, ValueError):
    """A config key is unknown, a value has the wrong type or is out of range."""


class DataError(MmgcnError, ValueError):
    """Input data is malformed. The message names the file, the field and the fix."""


class DownloadError(DataError):
    """A file could not be fetched in time, was too large, or did not match its pin."""


class UnsafeInputError(DataError):
    """A file tried something the loaders never do: run code, escape a folder, link out."""


class DeviceError(ConfigError):
    """The requested torch device is not available on this machine."""


class CheckpointError(MmgcnError, ValueError):
    """A checkpoint is unreadable, of another model, or its weights do not fit / are not finite."""


class RunMismatchError(MmgcnError, ValueError):
    """A run is used with data or a config other than the ones it was made with."""


class TrainingDivergedError(MmgcnError, FloatingPointError):
    """The loss or the parameters became NaN / infinite; the last good checkpoint is kept."""


class BenchLockedError(MmgcnError, RuntimeError):
    """Another process holds the lock of a benchmark output directory."""


__all__ = [
    "BenchLockedError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "DownloadError",
    "MmgcnError",
    "RunMismatchError",
    "TrainingDivergedError",
    "UnsafeInputError",
]
