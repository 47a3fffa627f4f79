"""Errors that reach the user as one clear message and exit code 2.

Everything that is the user's input's fault (a malformed file, a missing
column, a label that does not fit the task, a feature index beyond the
model) raises :class:`InputError`.  The command line catches it, prints the
message alone (no traceback) and exits with ``InputError.exit_code``.
"""
import errno


class StreamFMError(Exception):
    """Base class of streamfm's own errors."""

    exit_code = 1


class InputError(StreamFMError, ValueError):
    """Bad input: the message says what, where, and what to do."""

    exit_code = 2


class RowError(InputError):
    """Bad input found in one row of a batch, after it was read (a label the model does not know,
    a feature index beyond the model's).

    ``row`` is the row's place in the batch and ``reason`` the message without
    a place; whoever knows where the batch came from says where the row is
    (:meth:`at`), else the message names the row of the batch.
    """

    def __init__(self, row: int, reason: str):
        self.row = int(row)
        self.reason = reason
        super().__init__(f"row {self.row} of this batch: {reason}")

    def at(self, where: str) -> InputError:
        """The same error, placed: ``where`` is e.g. ``data.svm:17`` or ``data.csv: row 16``."""
        return InputError(f"{where}: {self.reason}")


class DivergenceError(StreamFMError):
    """Training diverged (a non-finite or exploding loss, non-finite parameters); the last good
    checkpoint is kept."""

    exit_code = 3


class DiskFullError(StreamFMError, OSError):
    """No space left on the device while writing a file; what was committed before is intact.
    (An ``OSError`` too, as the ENOSPC it reports.)"""

    exit_code = 1


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk: ENOSPC, or pyarrow's error carrying its text."""
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc)


def disk_full(path, written: int) -> DiskFullError:
    """"No space left on device while writing PATH" with what the output needs at least."""
    return DiskFullError(f"no space left on device while writing {path}: it needs more than "
                         f"{written / 1e6:,.1f} MB (what was written before the disk filled); nothing was "
                         "replaced, the partial output is removed")
