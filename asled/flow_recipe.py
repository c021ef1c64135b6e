"""The paper lineage's optical-flow recipe: how every SPyNet starts and when it trains.

AsLeD-Net builds on BasicVSR, whose recipe (BasicSR `options/train/BasicVSR/train_BasicVSR_REDS.yml`,
mmagic's `basicvsr` configs) starts SPyNet from pretrained weights, keeps it frozen for the first
5,000 iterations (`fix_flow`) and then trains it at 0.125x the learning rate (`flow_lr_mul`). The three
train-recipe keys below express that; their defaults live here and nowhere else:

- `spynet`: `pretrained` (mmagic's `spynet_20210409-c6c1bd09.pth`, staged by `asled weights fetch --only
  spynet`, the `fetch_weights` rule) or `scratch` (random init with zero flow, the offline demo's choice);
- `flow_freeze_iterations`: SPyNet gets no update (and no optimiser state) in iterations 0 .. N-1;
- `flow_lr_mul`: SPyNet's learning rate relative to the rest of the model (same cosine schedule).

`spynet_kwargs` turns the recipe into the catalogue kwarg `spynet_weights` (via
`asled.config.model_kwargs`); `check_spynet_weights` / `check_pretrained_spynet` fail early, naming the
staging command, when the file is not there. The schedule itself is `asled.train.FlowSchedule`.
This module imports no torch (Snakemake's DAG build calls it); the model class is imported only when a
recipe asks for the pretrained flow.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

from asled import weights
from asled.errors import ConfigError, DataError

FLOW_DEFAULTS = {"spynet": "pretrained", "flow_freeze_iterations": 5000, "flow_lr_mul": 0.125}
SPYNET_WEIGHTS = "spynet"  # asled.weights.REGISTRY name of the pretrained SPyNet
SOURCE = ("BasicSR train_BasicVSR_REDS.yml: fix_flow 5000, flow_lr_mul 0.125; "
          "mmagic spynet_20210409-c6c1bd09.pth")


def spynet_file(root: Path = weights.WEIGHTS_DIR) -> Path:
    """Where `asled weights fetch --only spynet` stages the pretrained SPyNet."""
    return weights.REGISTRY[SPYNET_WEIGHTS].path(root)


@functools.cache
def takes_spynet_weights(method: str) -> bool:
    """Whether the class registered as `method` accepts the `spynet_weights` kwarg (imports the class)."""
    from asled.models.registry import entry, resolve

    return "spynet_weights" in inspect.signature(resolve(entry(method)["target"])).parameters


def spynet_kwargs(settings: dict, method: str, kwargs: dict, root: Path = weights.WEIGHTS_DIR) -> dict:
    """`kwargs` plus `spynet_weights` = the staged pretrained SPyNet when the recipe says `spynet: pretrained`
    and the model takes SPyNet weights. An explicit `spynet_weights` (model_overrides) is kept as is."""
    init = settings.get("spynet", FLOW_DEFAULTS["spynet"])
    if init == "scratch":
        if kwargs.get("spynet_weights"):
            raise ConfigError(f"{method}: the recipe says spynet: scratch but its model_overrides set "
                              f"spynet_weights={kwargs['spynet_weights']!r}; drop one of them")
        return kwargs
    if kwargs.get("spynet_weights") or not takes_spynet_weights(method):
        return kwargs
    return {**kwargs, "spynet_weights": str(spynet_file(root))}


def missing_message(reason: str, methods: list[str] | None = None, recipe: str = "<recipe>") -> str:
    methods = list(dict.fromkeys(methods or []))
    who = f" of {', '.join(methods[:4])}" + (f" and {len(methods) - 4} more" if len(methods) > 4 else "") if methods else ""
    return (f"pretrained SPyNet{who}: {reason}. Stage it with `{weights.FETCH_COMMAND} --only {SPYNET_WEIGHTS}` "
            f"(the fetch_weights rule; upstream {weights.REGISTRY[SPYNET_WEIGHTS].urls[0]}), or set "
            f"`spynet: scratch` in params.yaml recipes.{recipe}.train to train SPyNet from scratch offline")


def check_spynet_weights(kwargs: dict, methods: list[str] | None = None, recipe: str = "<recipe>",
                         root: Path = weights.WEIGHTS_DIR) -> None:
    """DataError unless `kwargs["spynet_weights"]` (if any) is a file; the staged file is also hash-checked."""
    path = kwargs.get("spynet_weights")
    if not path:
        return
    staged = spynet_file(root)
    if Path(path) == staged:
        info = weights.status(weights.REGISTRY[SPYNET_WEIGHTS], root)
        if info["status"] != "staged":
            reason = f"{path} is {info['status']}" + (f" ({info['reason'].split(';')[0]})" if info["status"] == "corrupt" else "")
            raise DataError(missing_message(reason, methods, recipe))
    elif not Path(path).is_file():
        raise DataError(missing_message(f"{path} does not exist", methods, recipe))


def check_pretrained_spynet(params: dict, methods: list[str]) -> None:
    """Before any job runs (Snakemake's DAG build, `asled train`): every SPyNet the recipe wants pretrained
    is staged. Cheap when the recipe says `spynet: scratch` (no model class is imported)."""
    from asled import config

    wanted: dict[str, list[str]] = {}
    for method in methods:
        path = config.model_kwargs(params, method).get("spynet_weights")
        if path:
            wanted.setdefault(str(path), []).append(method)
    for path, users in wanted.items():
        check_spynet_weights({"spynet_weights": path}, users, config.dataset_settings(params)["recipe"])
