"""Name -> model registry (BasicSR style).

A *model name* (what `params.yaml` and the tables use) is an entry of the catalogue
`asled/models/catalog.yaml`: a target class plus keyword arguments. Variants of one architecture
are several catalogue entries pointing at the same class with different arguments, never copied
code. The target is a `"module:Class"` string, so `asled` never imports `baselines` unless a
baseline is asked for, and a user's own method is one file plus one catalogue entry (or one
`asled.models` entry point in their own package).

Every model follows one interface: `forward(blur, ref) -> restored`, tensors `[B, T, 3, H, W]` in
[0, 1]. Reference-free methods ignore `ref`.
"""

from __future__ import annotations

import functools
import importlib
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from asled.errors import ConfigError

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
ENTRY_POINT_GROUP = "asled.models"


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, Any]]:
    """All model entries: the shipped catalogue plus those of installed `asled.models` entry points."""
    entries: dict[str, dict[str, Any]] = yaml.safe_load(CATALOG_FILE.read_text()) or {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entries.setdefault(ep.name, {"target": ep.value})
    for name, entry in entries.items():
        if "target" not in entry:
            raise ConfigError(f"{CATALOG_FILE}: model '{name}' has no 'target' (\"module:Class\")")
    return entries


def model_names() -> list[str]:
    return list(catalog())


def entry(name: str) -> dict[str, Any]:
    try:
        return catalog()[name]
    except KeyError:
        known = ", ".join(model_names())
        raise ConfigError(f"unknown model '{name}'; registered models: {known} (see `asled models`)") from None


def resolve(target: str) -> type:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model target '{target}' cannot be imported: {exc}") from exc


def build_model(name: str, **overrides: Any):
    """Instantiate the model registered as `name`; `overrides` replace catalogue keyword arguments."""
    spec = entry(name)
    kwargs = {**spec.get("kwargs", {}), **overrides}
    return resolve(spec["target"])(**kwargs)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(name: str) -> dict[str, Any]:
    """What `asled models --json` prints for one model."""
    spec = entry(name)
    # Built on the meta device: shapes (hence parameter counts) without allocating or initialising
    # weights, so listing a few dozen full-size models stays instant.
    with torch.device("meta"):
        model = build_model(name)
    info = {
        "params": count_parameters(model),
        "target": spec["target"],
        "kwargs": spec.get("kwargs", {}),
        "uses_reference": bool(getattr(model, "uses_reference", False)),
        "trainable": count_parameters(model) > 0,
    }
    for key in ("label", "paper_row", "table", "modules", "description"):
        if key in spec:
            info[key] = spec[key]
    return info
