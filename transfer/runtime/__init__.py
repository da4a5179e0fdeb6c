"""Where and how computations run: ``--device`` (``device``), ``--precision`` (``precision``),
several processes (``distributed``), resumable training checkpoints (``checkpoint``) and what a run
shows on the console (``console``: log lines and progress bars that stay readable in a log file).
"""
