"""Short names to show for models: the ``--model`` name as given, or the user's ``--label``.

Results are filed under names safe in a file name (``timm-test_vit+random-init``); a reader
wants the name they typed (``timm:test_vit``) or one they choose. Two records given the same
``--model`` name with other options (a pretrained and a random-init timm model) get that name
followed by their options, so no two rows of a table ever share a name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from models.resolve import model_label
from transfer.report.gather import ReportError, Results


def given_names(results: Results) -> dict[str, str]:
    """Result label -> the ``--model`` name its records were made with (the label itself
    where a record does not say)."""
    given: dict[str, str] = {}
    frames = [results.scores, *results.provenance.values()]
    for frame in frames:
        if "given" not in frame.columns:
            continue
        for label, name in zip(frame["model"], frame["given"], strict=True):
            if isinstance(name, str) and name:
                given.setdefault(label, name)
    for label in (*results.detection["model"], *results.dense.index):
        given.setdefault(label, label)
    return given


def _options_suffix(label: str, given: str) -> str:
    """``timm-test_vit+random-init+pool-avg`` given as ``timm:test_vit`` -> ``random-init,
    pool-avg``: the options that the label adds to the given name."""
    base = model_label(given)
    rest = label[len(base):] if label.startswith(base) else ""
    return ", ".join(part for part in rest.split("+") if part)


def _matches(key: str, label: str, given: str) -> bool:
    return key in (label, given) or model_label(key) == label


def display_names(given: Mapping[str, str], labels: Mapping[str, str] | None = None
                  ) -> dict[str, str]:
    """Result label -> the name shown. ``given`` maps each label to its ``--model`` name;
    ``labels`` (``--label NAME=TEXT``) names models by their label, their ``--model`` name or
    what that is filed under. Raises ``ReportError`` for a ``--label`` that names no model or
    two models that would be shown alike."""
    labels = dict(labels or {})
    shown: dict[str, str] = {}
    by_given: dict[str, list[str]] = {}
    for label, name in given.items():
        by_given.setdefault(name, []).append(label)
    for name, group in by_given.items():
        for label in group:
            suffix = _options_suffix(label, name) if len(group) > 1 else ""
            shown[label] = f"{name} ({suffix})" if suffix else name
    counts = pd.Series(list(shown.values())).value_counts()
    shown = {label: label if counts[text] > 1 else text for label, text in shown.items()}
    for key, text in labels.items():
        matched = [label for label in given if _matches(key, label, given[label])]
        if not matched:
            known = ", ".join(sorted(given)) or "none"
            raise ReportError(f"--label {key}={text}: no model {key!r} in the results "
                              f"(models: {known})")
        for label in matched:
            shown[label] = text
    _check_unique(shown)
    return shown


def _check_unique(shown: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for label, text in shown.items():
        if text in seen:
            raise ReportError(f"models {seen[text]} and {label} would both be shown as "
                              f"{text!r}; give them distinct names with --label NAME=TEXT")
        seen[text] = label


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """``["timm:test_vit=ViT (random)"]`` -> ``{"timm:test_vit": "ViT (random)"}``."""
    labels = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ReportError(f"--label {value!r}: expected NAME=TEXT, e.g. "
                              "timm:vit_small_patch16_224.dino=DINO ViT-S/16")
        labels[name.strip()] = text.strip()
    return labels


def renamed(frame: pd.DataFrame | None, names: Mapping[str, str]) -> pd.DataFrame | None:
    """``frame`` with its model index shown by ``names`` (labels not in it kept)."""
    if frame is None:
        return None
    return frame.rename(index=lambda label: names.get(label, label))


def parse_top1(values: list[str]) -> dict[str, float]:
    """``["timm:vit_small_patch16_224=79.9"]`` -> ``{"timm-vit_small_patch16_224": 79.9}``, each
    name as its results are filed (``model_label``)."""
    top1 = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            percent = float(number)
        except ValueError:
            percent = math.nan
        if not sep or not name or not 0 < percent < 100:  # NaN fails the range too
            raise ReportError(f"--imagenet-top1 {value!r}: expected NAME=VALUE with VALUE a "
                              "percentage, e.g. timm:vit_small_patch16_224.augreg_in21k=81.4")
        top1[model_label(name)] = percent
    return top1
