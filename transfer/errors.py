"""The base of the project's error classes: every script catches ``TransferError`` at its
boundary and prints ``error: <message>`` (exit 2) instead of a traceback, whatever module
raised it (datasets, models, solvers, training)."""

from __future__ import annotations

# How torch's DataLoader re-raises an error of a worker process: ``ExceptionWrapper.reraise``
# calls the error's class with "Caught <Class> in DataLoader worker process N.\nOriginal
# Traceback (most recent call last):\n...<module>.<Class>: <message>".
_WORKER_MARK = "\nOriginal Traceback (most recent call last):\n"


class TransferError(Exception):
    """Bad input or a failed step, with a message that says what to fix.

    Raised again in the main process from a DataLoader worker, an error keeps only its original
    message: the worker's traceback names torch's internals, not the bad file.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and _WORKER_MARK in args[0]:
            args = (_original_message(args[0], type(self)),)
        super().__init__(*args)


def _original_message(text: str, error_type: type) -> str:
    """The message after the last ``<module>.<Class>: `` line of a worker's traceback."""
    head = f"{error_type.__module__}.{error_type.__qualname__}: "
    at = text.rfind("\n" + head)
    if at < 0:  # an error class torch could not name: keep the traceback's last line
        return text.rstrip().rsplit("\n", 1)[-1]
    return text[at + 1 + len(head) :].rstrip()
