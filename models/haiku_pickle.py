"""Read DeepMind's BYOL checkpoint, a plain pickle naming JAX / Haiku / BYOL classes, without
JAX and without running arbitrary code.

The unpickler admits numpy arrays and plain containers only; every class of the BYOL stack
becomes an inert attribute holder, so nothing from the file can execute.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from models.errors import ModelError

# Modules whose classes the BYOL pickle names; they become attribute holders.
_STAND_IN_MODULES = ("byol", "haiku", "jax", "jaxlib", "optax", "acme")

# numpy functions and types needed to rebuild arrays and scalars (both numpy 1.x and 2.x paths).
_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_BUILTINS_ALLOWED = {
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class ByolExperimentState(NamedTuple):
    """Field order of BYOL's ``_ByolExperimentState``, which pickles positionally."""

    online_params: Any
    target_params: Any
    online_state: Any
    target_state: Any
    opt_state: Any


class StandIn:
    """An inert stand-in for a class of the BYOL stack: keeps constructor args and state."""

    qualname = "StandIn"

    def __new__(cls, *args, **kwargs):  # noqa: D102 - pickle calls cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.state = state

    def __getattr__(self, name: str):
        state = self.__dict__.get("state")
        if isinstance(state, dict) and name in state:
            return state[name]
        raise AttributeError(name)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_ALLOWED:
            return np.ndarray if name == "ndarray" else _numpy_attr(module, name)
        if (module, name) in _BUILTINS_ALLOWED:
            return {"OrderedDict": collections.OrderedDict}.get(name) or _builtin(module, name)
        if module.split(".")[0] in _STAND_IN_MODULES:
            if name == "_ByolExperimentState":
                return ByolExperimentState
            return type(name, (StandIn,), {"qualname": f"{module}.{name}"})
        raise ModelError(
            f"the BYOL pickle names {module}.{name}, which a parameters file should not contain; "
            "refusing to load it"
        )


def _numpy_attr(module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):  # numpy 1.x <-> 2.x module move
        alt = (
            module.replace("numpy._core", "numpy.core")
            if "_core" in module
            else module.replace("numpy.core", "numpy._core")
        )
        return getattr(importlib.import_module(alt), name)


def _builtin(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def as_mapping(obj: Any) -> Mapping:
    """The dict inside a params/state container (a dict, or a stand-in for Haiku's FlatMapping)."""
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, StandIn):
        for candidate in (obj.state, *obj.args):
            if candidate is not None:
                try:
                    return as_mapping(candidate)
                except ModelError:
                    continue
    raise ModelError(f"expected a mapping of parameters, found {type(obj).__name__}")


def load_byol_pickle(path: str | Path) -> tuple[Mapping, Mapping]:
    """Return ``(online_params, online_state)`` of a BYOL checkpoint as nested dicts of arrays."""
    try:
        with open(path, "rb") as handle:
            checkpoint = _RestrictedUnpickler(handle).load()
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(
            f"could not read {path} as BYOL's pickled checkpoint ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(checkpoint, Mapping) or "experiment_state" not in checkpoint:
        raise ModelError(f"{path} is not a BYOL checkpoint: no 'experiment_state' entry")
    state = checkpoint["experiment_state"]
    try:
        online_params, online_state = state.online_params, state.online_state
    except AttributeError as error:
        raise ModelError(
            f"{path}: 'experiment_state' has no online_params / online_state"
        ) from error
    params = {key: dict(as_mapping(value)) for key, value in as_mapping(online_params).items()}
    stats = {key: dict(as_mapping(value)) for key, value in as_mapping(online_state).items()}
    return params, stats
