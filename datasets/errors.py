"""The one exception type of the datasets package, so callers can catch bad data cleanly."""

from transfer.errors import TransferError


class DatasetError(TransferError):
    """A dataset is missing, laid out wrongly, or holds a file we cannot read."""


def missing_path_error(path: object, spec: object, what: str = "file") -> DatasetError:
    """An error naming the missing ``path``, the expected layout and where to get the data.

    ``spec`` is a DatasetSpec (typed loosely to keep this module free of imports).
    """
    name = getattr(spec, "name", "?")
    layout = getattr(spec, "layout", "")
    hint = getattr(spec, "download_hint", "")
    return DatasetError(
        f"{name}: missing {what} {path}\n"
        f"expected layout under the data root:\n{_indent(layout)}\n"
        f"get the data: {hint}"
    )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
