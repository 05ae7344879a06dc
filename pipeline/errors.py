"""The errors a user can fix: the CLI prints their message and exits 1, without a traceback.

Kept apart from the modules that raise them so the CLI can catch them without importing those
modules' libraries (pandera, Dask) for commands that never use them.
"""


class InputError(Exception):
    """Bad input from the user: a table, a file or the cluster address; the message says which."""
