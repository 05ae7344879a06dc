"""The errors a user can fix: the CLI prints their message without a traceback and exits 1 for
bad data, 2 for a bad command line or configuration.

Kept apart from the modules that raise them so the CLI can catch them without importing those
modules' libraries (pandera, Dask) for commands that never use them.
"""


class InputError(Exception):
    """A problem the user can fix that is not how the command was given: bad data (a table, a
    file) or a service of theirs that failed (the team server); the message says which (exit 1)."""


class UsageError(InputError):
    """A command that cannot run as given: a path, an option, a setting, a model the registry lacks
    or a store or cluster that cannot be reached; nothing was done (exit 2)."""
