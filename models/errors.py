"""The model zoo's error: raised for any model that cannot be resolved, read or built."""

from __future__ import annotations

from transfer.errors import TransferError


class ModelError(TransferError):
    """A checkpoint is missing, unreadable or not in a format we know, or a model name or
    option cannot be honoured (the message says what to do)."""
