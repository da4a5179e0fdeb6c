"""Embed once, fit many heads: a backbone is run over a split once (``extract``), its features are
kept in a content-keyed cache (``cache``) and read back by every protocol and rerun; a many-shot
dataset's four splits come from two passes (``many_shot``)."""
