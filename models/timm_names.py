"""Which names timm knows: ``<architecture>[.<pretrained tag>]`` checked against timm's lists, with
the closest names suggested. timm is imported on first use (it takes a second to import)."""

from __future__ import annotations

import difflib

from models.errors import ModelError


def check_timm_name(name: str) -> None:
    """Raise unless ``<architecture>[.<tag>]`` is a timm architecture (with that pretrained tag),
    naming the closest known names."""
    import timm

    arch, _, tag = name.partition(".")
    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=6, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ModelError(
            f"timm has no architecture {arch!r}{hint} (list them with: python -c \"import timm; "
            f"print(timm.list_models('*{arch.split('_')[0] or 'vit'}*'))\")"
        )
    if tag:
        tags = timm.list_pretrained(f"{arch}.*")
        if name not in tags:
            close = difflib.get_close_matches(name, tags, n=6, cutoff=0.0)
            known = f"; its tags: {', '.join(close)}" if close else " (it has none)"
            raise ModelError(f"timm has no pretrained tag {tag!r} for {arch}{known}")

