"""transfer/console.py: log lines as scripts print them, and progress bars that stay
readable in a log file (a redirected run, a sweep cell's log, a Slurm job's output)."""

from __future__ import annotations

import io
import logging

from transfer import console


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_writing_to_a_file_writes_a_few_plain_lines(monkeypatch):
    """60,000 images in batches of 64 redrew a tqdm bar 938 times, a carriage return each: in a
    file that is one unreadable line of ~100 kB. Here: the first and the last state, on lines of
    their own, and one more line only every LOG_INTERVAL_S seconds."""
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    bar = console.progress(total=60_000, desc="features fashion-mnist/trainval", unit="img")
    for start in range(0, 60_000, 64):
        bar.update(min(64, 60_000 - start))
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert lines[0].startswith("features fashion-mnist/trainval:   0%")
    assert lines[-1].startswith("features fashion-mnist/trainval: 100%")
    assert "60000/60000" in lines[-1] and lines[-1] == lines[-1].strip()
    assert len(text) < 500


def test_a_bar_on_a_terminal_redraws_in_place(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bar = console.progress(total=10, desc="kNN", unit="chunk", enabled=True)
    assert bar.mininterval < console.LOG_INTERVAL_S
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert "\r" in terminal.getvalue()


def test_a_disabled_bar_writes_nothing(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    assert list(console.progress(range(5), enabled=False)) == list(range(5))
    assert log.getvalue() == ""


def test_setup_console_shows_the_librarys_lines_as_scripts_print_them(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    console.setup_console()
    console.setup_console()  # twice: still one line per message
    logging.getLogger("transfer.features.cache").warning("cache entry %s unusable", "x.pt")
    logging.getLogger("models.timm_backbone").info("note: %s", "dropped the head")
    logging.getLogger("models.timm_backbone").debug("not shown")
    logging.getLogger("elsewhere").warning("not ours")
    assert log.getvalue().splitlines() == ["warning: cache entry x.pt unusable",
                                           "note: dropped the head"]
