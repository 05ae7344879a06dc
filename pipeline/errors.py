"""The errors a user can fix: the CLI prints their message without a traceback and exits 1 for
bad data, 2 for a bad command line or configuration.

Kept apart from the modules that raise them so the CLI can catch them without importing those
modules' libraries (pandera, Dask) for commands that never use them.
"""


class InputError(Exception):
    """Bad input from the user: a table, a file or the cluster address; the message says which."""


class UsageError(InputError):
    """A command that cannot run as given: a path, an option or a setting; nothing was done."""
