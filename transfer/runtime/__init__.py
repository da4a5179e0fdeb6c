"""Where and how computations run: ``--device`` (``device``), ``--precision`` (``precision``),
several processes (``distributed``) and resumable training checkpoints (``checkpoint``).
"""
