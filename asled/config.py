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
# Figures of the HTML report (asled.figures draws them) and the compact table copies it shows.
FIGURE_OUTPUTS = {
    "qualitative": "results/figures/qualitative.png",
    "psnr-bar": "results/figures/psnr_bar.png",
    "psnr-time": "results/figures/psnr_vs_time.png",
    "loss": "results/figures/loss_curves.png",
    "flow": "results/figures/flow.png",
}
REPORT_TABLES = {table: f"results/figures/{Path(out).name}_report.csv" for table, out in TABLE_OUTPUTS.items()}
REPORT_GALLERY = "results/figures/gallery.html"
CAMERAS = ("UW", "W")
BLUR_METHOD = "blur"  # the blurry input itself (catalogue name): the row every trained model is read against
# Every camera folder RealMCVSR ships; a dataset's `cameras` may add T (telephoto) to UW and W.
KNOWN_CAMERAS = ("UW", "W", "T")


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
    params["metrics"].setdefault("lpips_net", "alex")
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
    for name, ds in params["datasets"].items():
        for key, known, required in (("splits", SPLITS, SPLITS), ("cameras", KNOWN_CAMERAS, CAMERAS)):
            values = ds.get(key, list(required))
            unknown = [v for v in values if v not in known]
            if unknown:
                raise ConfigError(
                    f"{source}: datasets.{name}.{key} lists {unknown[0]!r}, which is not a RealMCVSR "
                    f"{key[:-1]} ({', '.join(known)}); fix the name or remove it"
                )
            missing = [v for v in required if v not in values]
            if missing:
                raise ConfigError(
                    f"{source}: datasets.{name}.{key} lacks {missing[0]!r}; the pipeline needs "
                    f"{', '.join(required)} (train, validate and test on W with the UW reference)"
                )


@dataclass(frozen=True)
class Paths:
    """Where each step reads and writes; identical for Snakemake and DVC."""

    dataset: str
    # `datasets.<name>.root`: an existing RealMCVSR-layout folder used in place of data/raw/<name>
    raw_root: str | None = None

    @property
    def raw(self) -> Path:
        return Path(self.raw_root) if self.raw_root else Path("data/raw") / self.dataset

    @property
    def downloads(self) -> Path:
        """Where downloaded (or hand-placed) archive parts live, under their manifest file names."""
        return Path("data/raw")

    @property
    def download_lock(self) -> Path:
        """SHA-256 and size of every part as first downloaded; later downloads must match."""
        return Path("data/raw") / f"{self.dataset}.lock.json"

    @property
    def data_summary(self) -> Path:
        """Counted clips and frames per split (`.json` and `.md` beside each other)."""
        return Path("results/data_summary")

    def prepared(self, split: str) -> Path:
        return Path("data/prepared") / self.dataset / split

    def checkpoint(self, method: str, seed: int) -> Path:
        return Path("checkpoints") / self.dataset / method / f"seed{seed}.pt"

    def train_log(self, method: str, seed: int) -> Path:
        return Path("results/train_logs") / self.dataset / method / f"seed{seed}.csv"

    def tensorboard(self, method: str, seed: int) -> Path:
        """TensorBoard event files of a training run (a side product, not a declared output)."""
        return Path("results/tensorboard") / self.dataset / method / f"seed{seed}"

    def restored(self, method: str, seed: int) -> Path:
        return Path("results/restored") / self.dataset / method / f"seed{seed}"

    def metrics(self, method: str, seed: int) -> Path:
        return Path("results/metrics") / self.dataset / method / f"seed{seed}.csv"

    def profile(self, method: str) -> Path:
        return Path("results/profile") / f"{method}.json"

    # Real dual-lens captures (no ground truth): raw videos or frame folders, ingested pairs,
    # restorations and no-reference scores (asled/real.py).
    @property
    def real_root(self) -> Path:
        return Path("data/real")

    def real_capture(self, capture: str) -> Path:
        return self.real_root / capture

    def real_prepared(self, capture: str) -> Path:
        return Path("data/prepared_real") / capture

    def real_restored(self, method: str, seed: int, capture: str) -> Path:
        return Path("results/real/restored") / self.dataset / method / f"seed{seed}" / capture

    def real_scores(self, method: str, seed: int) -> Path:
        return Path("results/real/metrics") / self.dataset / method / f"seed{seed}.csv"


def paths(params: dict) -> Paths:
    return Paths(params["dataset"], dataset_settings(params).get("root"))


def dataset_splits(params: dict) -> tuple[str, ...]:
    return tuple(dataset_settings(params).get("splits", SPLITS))


def dataset_cameras(params: dict) -> tuple[str, ...]:
    return tuple(dataset_settings(params).get("cameras", CAMERAS))


def table_methods(params: dict, table: str) -> list[str]:
    """Model names that make the rows of `table` (Table 1: `methods`; ablations: `ablations.<table>`)."""
    return params["methods"] if table == "table1" else params["ablations"][table]


def all_methods(params: dict) -> list[str]:
    """Every model any table may ask for, in first-seen order."""
    names = [m for table in TABLE_OUTPUTS for m in table_methods(params, table)]
    return list(dict.fromkeys(names))


def trained_methods(params: dict, methods: list[str]) -> list[str]:
    """`methods` less the zero-shot rows (imported official checkpoints: no training, no training log)."""
    return [m for m in methods if zero_shot_file(m) is None]


def dataset_settings(params: dict) -> dict:
    return params["datasets"][params["dataset"]]


def recipe(params: dict) -> dict:
    return params["recipes"][dataset_settings(params)["recipe"]]


def train_settings(params: dict, method: str) -> dict:
    """The dataset's training recipe with the method's overrides applied: first the recipe's own
    (`recipes.<r>.method_overrides`, part of the protocol), then the user's (`method_overrides`)."""
    settings = copy.deepcopy(recipe(params)["train"])
    settings.update(recipe_override(params, "method_overrides", method))
    settings.update(params.get("method_overrides", {}).get(method, {}))
    return settings


def recipe_override(params: dict, section: str, method: str) -> dict:
    """`recipes.<r>.<section>.<method>`, or, when the recipe does not name the method, that of the model it
    is a variant of (catalogue `variant_of`: every ablation row takes AsLeD-Net's scale and budget)."""
    from asled.models.registry import family  # reads the catalogue only (no torch)

    overrides = recipe(params).get(section, {})
    return copy.deepcopy(overrides.get(method, overrides.get(family(method), {})))


def zero_shot_file(method: str) -> Path | None:
    """A zero-shot catalogue row's imported official checkpoint, else None (reads the catalogue only)."""
    from asled.models.registry import zero_shot_checkpoint

    return zero_shot_checkpoint(method)


def weights_file(params: dict, method: str, seed: int) -> Path:
    """The weights `method` restores with: a zero-shot catalogue entry's imported official checkpoint
    (`checkpoint:` with `zero_shot: true`, written by `asled weights import`), else the trained checkpoint."""
    return zero_shot_file(method) or paths(params).checkpoint(method, seed)


def model_kwargs(params: dict, method: str) -> dict:
    """Catalogue kwargs the dataset's recipe sets for `method` (`recipes.<r>.model_overrides`), e.g. the
    demo's reduced scale; empty for the paper recipe's full-size models. Recorded in the checkpoint.
    With the recipe's `spynet: pretrained` (asled.flow_recipe), a model that takes `spynet_weights` also
    gets the staged pretrained SPyNet's path."""
    # torch-free; imports the model class only when the recipe says pretrained
    from asled.flow_recipe import spynet_kwargs

    return spynet_kwargs(train_settings(params, method), method, model_overrides(params, method))


def model_overrides(params: dict, method: str) -> dict:
    """The recipe's own catalogue kwargs for `method` (its scale and init; no weight files): what Params and
    Time are measured on."""
    return recipe_override(params, "model_overrides", method)


def job_threads(params: dict, cores: int) -> int:
    """Threads of one compute job: the recipe's `threads_per_job`, at most `cores` (null: all cores).

    The timing protocol (`profile`) always takes every core, so it never shares the CPU with a job."""
    wanted = recipe(params).get("threads_per_job")
    return max(1, min(int(wanted), cores)) if wanted else cores


def test_settings(params: dict) -> dict:
    return dict(recipe(params).get("test", {}))


def profile_settings(params: dict) -> dict:
    return dict(recipe(params)["profile"])


# The `metrics` keys that change per-frame scores; the rest (bootstrap, test, ...) only change how
# tables summarise them, so editing those must not re-run evaluation (Snakemake params, DVC params).
EVALUATE_METRIC_KEYS = ("border", "y_channel", "ssim", "lpips", "lpips_net", "temporal", "temporal_flow")
TABLE_METRIC_KEYS = ("bootstrap", "test", "alpha", "compare_to")


def evaluate_settings(params: dict) -> dict:
    return {key: params["metrics"][key] for key in EVALUATE_METRIC_KEYS}
