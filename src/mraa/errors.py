"""Exceptions that the command line turns into one-line messages."""


class MRAAError(Exception):
    """A user-facing error: bad input, a missing file, a config that does not match a checkpoint.

    The CLI prints ``error: <message>`` and exits with status 2 instead of showing a traceback.
    """
