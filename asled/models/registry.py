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


def family(name: str) -> str:
    """The model a catalogue entry is a variant of (`variant_of`, e.g. every Table 2 / Supp. Table 1 row of
    AsLeD-Net), else the name itself: recipes set a family's scale and budget once."""
    return entry(name).get("variant_of", name)


def zero_shot_checkpoint(name: str) -> Path | None:
    """A zero-shot entry's imported official checkpoint (never trained: `zero_shot: true` + `checkpoint: PATH`)."""
    spec = entry(name)
    if not spec.get("zero_shot"):
        return None
    if not spec.get("checkpoint"):
        raise ConfigError(f"{CATALOG_FILE}: model '{name}' is zero_shot but names no `checkpoint` (the file "
                          f"`asled weights import {name} OFFICIAL_FILE --out PATH` writes)")
    return Path(spec["checkpoint"])


def model_names() -> list[str]:
    return list(catalog())


def entry(name: str) -> dict[str, Any]:
    try:
        return catalog()[name]
    except KeyError:
        known = ", ".join(model_names())
        raise ConfigError(f"unknown model '{name}'; registered models: {known} (see `asled models`)") from None


def target_module(name: str) -> str:
    """The module that defines the class registered as `name` (its code is what that model runs)."""
    return entry(name)["target"].partition(":")[0]


def resolve(target: str) -> type:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model target '{target}' cannot be imported: {exc}") from exc


def build_model(name: str, **overrides: Any):
    """Instantiate the model registered as `name`; `overrides` replace catalogue keyword arguments.

    `identity_start=True` (a recipe option, not a class argument) zeroes the model's `output_layers`
    after construction, so that a model whose output is `input + output_layers(...)` starts as the
    identity: training can then only move it away from the blurry input where the loss improves."""
    spec = entry(name)
    kwargs = {**spec.get("kwargs", {}), **overrides}
    identity = bool(kwargs.pop("identity_start", False))
    model = resolve(spec["target"])(**kwargs)
    if identity:
        identity_start(model, name)
    return model


def identity_start(model, name: str = "model") -> None:
    """Zero every parameter of `model.output_layers` (the layers whose output is added to the input).

    A model whose current configuration cannot be the identity at any weights (e.g. DBN's official
    sigmoid output) says why in an `identity_start_error` attribute, and the start is refused."""
    blocked = getattr(model, "identity_start_error", None)
    if blocked:
        raise ConfigError(f"model '{name}' ({type(model).__name__}) {blocked}")
    layers = getattr(model, "output_layers", None)
    if not layers:
        raise ConfigError(f"model '{name}' ({type(model).__name__}) declares no `output_layers`, so "
                          "identity_start cannot start it at the identity; remove identity_start for it")
    import torch  # here, so that reading the catalogue (Snakemake's DAG build) never imports torch

    with torch.no_grad():
        for layer in layers:
            for param in model.get_submodule(layer).parameters():
                param.zero_()


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def paper_count(model, spec: dict[str, Any]) -> int:
    """Parameters as the paper counts them for this entry: all, less the submodules its catalogue entry lists
    under `paper_count_excludes` (e.g. RefVSR's SPyNet, frozen in the official code and so not counted)."""
    excluded = tuple(f"{prefix}." for prefix in spec.get("paper_count_excludes", ()))
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith(excluded))


def describe(name: str) -> dict[str, Any]:
    """What `asled models --json` prints for one model."""
    spec = entry(name)
    # Built on the meta device: shapes (hence parameter counts) without allocating or initialising
    # weights, so listing a few dozen full-size models stays instant.
    import torch

    with torch.device("meta"):
        model = build_model(name)
    info = {
        "params": count_parameters(model),
        "target": spec["target"],
        "kwargs": spec.get("kwargs", {}),
        "uses_reference": bool(getattr(model, "uses_reference", False)),
        "trainable": count_parameters(model) > 0,
    }
    if "paper_count_excludes" in spec:
        info["paper_params"] = paper_count(model, spec)
    for key in ("label", "paper_row", "table", "modules", "description", "zero_shot", "checkpoint"):
        if key in spec:
            info[key] = spec[key]
    return info
