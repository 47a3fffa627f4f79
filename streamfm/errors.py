"""Errors that reach the user as one clear message and exit code 2.

Everything that is the user's input's fault (a malformed file, a missing
column, a label that does not fit the task, a feature index beyond the
model) raises :class:`InputError`.  The command line catches it, prints the
message alone (no traceback) and exits with ``InputError.exit_code``.
"""


class StreamFMError(Exception):
    """Base class of streamfm's own errors."""

    exit_code = 1


class InputError(StreamFMError, ValueError):
    """Bad input: the message says what, where, and what to do."""

    exit_code = 2


class DivergenceError(StreamFMError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    exit_code = 3
