"""params.yaml: loading, schema validation and the settings each step derives from it.

The same file drives Snakemake, DVC and the CLI; this module is the one place that interprets it,
so the three never disagree about what a key means.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from asled.errors import ConfigError

SCHEMA_RELATIVE = Path("workflow/schemas/params.schema.yaml")
SPLITS = ("train", "valid", "test")
# Compiled tables (path without extension): Table 1, Table 2, Supplementary Table 1.
TABLE_OUTPUTS = {
    "table1": "results/tables/table1_main",
    "table2": "results/tables/table2_modules",
    "supp1": "results/tables/tableS1_variants",
}
CAMERAS = ("UW", "W")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml; the schema is looked up beside it (the repository root)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file is missing; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    schema_path = path.resolve().parent / SCHEMA_RELATIVE
    if schema_path.is_file():
        validate(params, yaml.safe_load(schema_path.read_text()), source=path)
    check_consistency(params, source=path)
    params.setdefault("method_overrides", {})
    return params


def validate(params: Any, schema: dict, *, source: Path) -> None:
    try:
        jsonschema.validate(params, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: invalid value at '{where}': {exc.message}") from None


def check_consistency(params: dict, *, source: Path) -> None:
    """Cross-key rules a JSON schema cannot express."""
    if params["dataset"] not in params["datasets"]:
        raise ConfigError(
            f"{source}: dataset '{params['dataset']}' is not a key of 'datasets' "
            f"({', '.join(params['datasets'])})"
        )
    for name, ds in params["datasets"].items():
        if ds["recipe"] not in params["recipes"]:
            raise ConfigError(f"{source}: datasets.{name}.recipe '{ds['recipe']}' is not a key of 'recipes'")
    if params["blur"]["window"] % 2 == 0:
        raise ConfigError(f"{source}: blur.window must be odd so that a centre frame is the ground truth")


@dataclass(frozen=True)
class Paths:
    """Where each step reads and writes; identical for Snakemake and DVC."""

    dataset: str

    @property
    def raw(self) -> Path:
        return Path("data/raw") / self.dataset

    def prepared(self, split: str) -> Path:
        return Path("data/prepared") / self.dataset / split

    def checkpoint(self, method: str, seed: int) -> Path:
        return Path("checkpoints") / self.dataset / method / f"seed{seed}.pt"

    def train_log(self, method: str, seed: int) -> Path:
        return Path("results/train_logs") / self.dataset / method / f"seed{seed}.csv"

    def restored(self, method: str, seed: int) -> Path:
        return Path("results/restored") / self.dataset / method / f"seed{seed}"

    def metrics(self, method: str, seed: int) -> Path:
        return Path("results/metrics") / self.dataset / method / f"seed{seed}.csv"

    def profile(self, method: str) -> Path:
        return Path("results/profile") / f"{method}.json"


def paths(params: dict) -> Paths:
    return Paths(params["dataset"])


def table_methods(params: dict, table: str) -> list[str]:
    """Model names that make the rows of `table` (Table 1: `methods`; ablations: `ablations.<table>`)."""
    return params["methods"] if table == "table1" else params["ablations"][table]


def all_methods(params: dict) -> list[str]:
    """Every model any table may ask for, in first-seen order."""
    names = [m for table in TABLE_OUTPUTS for m in table_methods(params, table)]
    return list(dict.fromkeys(names))


def dataset_settings(params: dict) -> dict:
    return params["datasets"][params["dataset"]]


def recipe(params: dict) -> dict:
    return params["recipes"][dataset_settings(params)["recipe"]]


def train_settings(params: dict, method: str) -> dict:
    """The dataset's training recipe with the method's overrides applied: first the recipe's own
    (`recipes.<r>.method_overrides`, part of the protocol), then the user's (`method_overrides`)."""
    settings = copy.deepcopy(recipe(params)["train"])
    settings.update(recipe(params).get("method_overrides", {}).get(method, {}))
    settings.update(params.get("method_overrides", {}).get(method, {}))
    return settings


def test_settings(params: dict) -> dict:
    return dict(recipe(params).get("test", {}))


def profile_settings(params: dict) -> dict:
    return dict(recipe(params)["profile"])


# The `metrics` keys that change per-frame scores; the rest (bootstrap, test, ...) only change how
# tables summarise them, so editing those must not re-run evaluation (Snakemake params, DVC params).
EVALUATE_METRIC_KEYS = ("border", "y_channel", "lpips", "temporal", "temporal_flow")


def evaluate_settings(params: dict) -> dict:
    return {key: params["metrics"][key] for key in EVALUATE_METRIC_KEYS}
