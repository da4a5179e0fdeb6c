"""The parent of every local cell, run as a program (``python guard.py COMMAND...``).

It runs the cell's command in its own process group (the guard leads a new session) and kills
that whole group (the script, its DataLoader workers, torchrun's ranks) once its stdin closes:
when the sweep ends a cell early, is interrupted or dies, even by SIGKILL, which no handler of
the sweep's could catch. Standard library only, so that it starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

GRACE_S = 10  # seconds between the group's SIGTERM and its SIGKILL


def main(command: list[str]) -> int:
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard outlives the TERM it sends its group

    def watch() -> None:
        while os.read(0, 4096):
            pass
        if child.poll() is None:
            os.killpg(0, signal.SIGTERM)
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
