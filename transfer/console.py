"""What a run shows: log lines and progress bars that read well on a terminal and in a log file.

Library modules log (``logging.getLogger(__name__)``); a script calls ``setup_console`` once, so
that the project's INFO lines reach stderr as plain text and warnings as ``warning: <message>``.

On a terminal a progress bar redraws in place. Where stderr is not a terminal (a redirected run,
a sweep cell's log, a Slurm job's output) a redraw per batch would fill the file with megabytes
of carriage returns, so the bar writes one plain line at most every ``LOG_INTERVAL_S`` seconds,
and a last line when it ends.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

#: The packages whose loggers a script shows.
PROJECT_LOGGERS = ("datasets", "models", "transfer")
#: Seconds between two lines of a progress bar written to a file.
LOG_INTERVAL_S = 30.0


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (pytest swaps it per test), not the one at
    set-up time."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _ConsoleFormatter(logging.Formatter):
    """``message`` for INFO, ``warning: message`` (``error: ...``) above it, as scripts print."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def setup_console(level: int = logging.INFO) -> None:
    """Show the project's log lines on stderr (once per process; calling again changes only the
    level). Records still propagate to the root logger, where an application or pytest may
    listen."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(_ConsoleFormatter("%(message)s"))
            logger.addHandler(handler)


class _LineFile:
    """A file for tqdm where each redraw becomes one line: carriage returns dropped, a newline
    added, blank redraws skipped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self._stream.write(text + "\n")

    def flush(self) -> None:
        self._stream.flush()


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool = True, initial: int = 0,
             leave: bool = True, **extra: Any) -> tqdm:
    """A tqdm bar that redraws on a terminal and writes a line every ``LOG_INTERVAL_S`` seconds
    elsewhere; ``enabled`` False gives a silent one (same interface). ``extra`` goes to tqdm
    (``unit_scale``, ...)."""
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "initial": initial,
                               "disable": not enabled, "leave": leave, **extra}
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        # maxinterval too: tqdm's monitor thread would otherwise force a line every 10 s
        options.update(file=_LineFile(stream), mininterval=LOG_INTERVAL_S,
                       maxinterval=LOG_INTERVAL_S, ascii=True, ncols=100)
    return tqdm(iterable, **options)
