"""params.yaml: loading, schema validation and the settings each step derives from it.

The same file drives Snakemake, DVC and the CLI; this module is the one place that interprets it,
so the three never disagree about what a key means.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from asled.errors import ConfigError

# Shipped inside the package, so every params.yaml is validated wherever it lives (Snakemake, DVC, CLI).
SCHEMA_FILE = Path(__file__).with_name("params.schema.yaml")
SPLITS = ("train", "valid", "test")
# File names (without extension) of the compiled tables: Table 1, Table 2, Supplementary Table 1, and the
# no-reference table of the real captures; each lives under results/tables/<dataset>/ (Paths.table).
TABLE_FILES = {"table1": "table1_main", "table2": "table2_modules", "supp1": "tableS1_variants"}
NR_TABLE_FILE = "table_nr_real"
# Figures of the HTML report (asled.figures draws them), under results/figures/<dataset>/ (Paths.figure).
FIGURE_FILES = {
    "qualitative": "qualitative.png",
    "psnr-bar": "psnr_bar.png",
    "psnr-time": "psnr_vs_time.png",
    "loss": "loss_curves.png",
    "flow": "flow.png",
}
CAMERAS = ("UW", "W")
BLUR_METHOD = "blur"  # the blurry input itself (catalogue name): the row every trained model is read against
# Every camera folder RealMCVSR ships; a dataset's `cameras` may add T (telephoto) to UW and W.
KNOWN_CAMERAS = ("UW", "W", "T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml and check it (`check_params`): what every `asled` verb starts from."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file is missing; run from the repository root or pass --params")
    return check_params(read_yaml(path), source=path)


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def check_params(params: Any, *, source: Path) -> dict[str, Any]:
    """Every check of a parameter dict, in the order that gives the clearest message, then its defaults.

    The one entry point for the CLI (`load_params`) and Snakemake's DAG build (workflow/rules/common.smk),
    so a bad file fails the same way, and before any job runs, whichever front-end reads it."""
    validate(params, schema(), source=source)
    check_consistency(params, source=source)
    check_model_names(params, source=source)
    params.setdefault("method_overrides", {})
    params["metrics"].setdefault("lpips_net", "alex")
    return params


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def validate(params: Any, schema: dict, *, source: Path | str) -> None:
    try:
        jsonschema.validate(params, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: invalid value at '{where}': {exc.message}") from None


def check_train_settings(settings: dict, required: tuple[str, ...], *, source: str = "training settings") -> None:
    """A merged training settings dict against the schema's `train` definition (its one home: the ranges of
    params.yaml's `recipes.<r>.train` and of `method_overrides` are the ranges `asled train` enforces)."""
    definition = {"$defs": schema()["$defs"], "$ref": "#/$defs/train", "required": list(required)}
    validate(settings, definition, source=source)


def check_model_names(params: dict, *, source: Path | str) -> None:
    """Every model name params.yaml uses (table rows, `compare_to`, per-method overrides) is in the catalogue,
    so a typo stops the DAG build, naming the key and the known names, instead of the first train job."""
    from asled.models.registry import model_names  # reads the catalogue only (no torch)

    known = set(model_names())
    for key, names in named_models(params):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(
                f"{source}: {key} names unknown model {unknown[0]!r}; known models: {', '.join(model_names())} "
                "(`asled models` lists them; add a new one to asled/models/catalog.yaml)"
            )


def named_models(params: dict) -> list[tuple[str, list[str]]]:
    """(key, model names) for every place params.yaml names a model."""
    found = [("methods", params["methods"])]
    found += [(f"ablations.{table}", names) for table, names in params["ablations"].items()]
    found += [(f"metrics.compare_to.{table}", [name]) for table, name in params["metrics"]["compare_to"].items()]
    found.append(("method_overrides", list(params.get("method_overrides") or {})))
    for name, rec in params["recipes"].items():
        for section in ("method_overrides", "model_overrides"):
            found.append((f"recipes.{name}.{section}", list(rec.get(section) or {})))
    return found


def check_no_overrides(config: dict, path: Path) -> None:
    """Snakemake's `config` must be params.yaml as written: the `asled` verbs each read that file, so a
    `--config`/`--configfile` override would change the DAG but not what its jobs compute."""
    changed = differing_keys(read_yaml(path), config)
    if changed:
        raise ConfigError(
            f"snakemake --config/--configfile changed {', '.join(changed[:5])}, but every job reads {path} "
            f"itself, so the override would not reach it; edit {path} instead (with DVC: "
            "`dvc exp run -S key=value`)"
        )


def differing_keys(ours: Any, theirs: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two parameter trees."""
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return [] if ours == theirs else [prefix or "(top level)"]
    keys = list(dict.fromkeys([*ours, *theirs]))
    return [d for k in keys for d in differing_keys(ours.get(k), theirs.get(k), f"{prefix}.{k}" if prefix else str(k))]


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
        return Path("results/data_summary") / self.dataset

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
        return Path("results/profile") / self.dataset / f"{method}.json"

    def table(self, table: str) -> Path:
        """A compiled table without extension (`.csv`, `.md`, `.tex`, `.json` beside each other)."""
        return Path("results/tables") / self.dataset / (NR_TABLE_FILE if table == "nr_real" else TABLE_FILES[table])

    def figure(self, kind: str) -> Path:
        return Path("results/figures") / self.dataset / FIGURE_FILES[kind]

    def report_table(self, table: str) -> Path:
        """The compact display copy of a compiled table that the HTML report shows."""
        return Path("results/figures") / self.dataset / f"{TABLE_FILES[table]}_report.csv"

    @property
    def report_gallery(self) -> Path:
        """Every figure inlined in one page (the report's landing page embeds it)."""
        return Path("results/figures") / self.dataset / "gallery.html"

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
    names = [m for table in TABLE_FILES for m in table_methods(params, table)]
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


# The recipe of the paper's full-size models (Table 1's paper protocol); `asled profile` counts them too.
PAPER_RECIPE = "paper"


def profile_settings(params: dict) -> dict:
    return dict(recipe(params)["profile"])


# The `metrics` keys that change per-frame scores; the rest (bootstrap, test, ...) only change how
# tables summarise them, so editing those must not re-run evaluation (Snakemake params, DVC params).
EVALUATE_METRIC_KEYS = ("border", "y_channel", "ssim", "lpips", "lpips_net", "temporal", "temporal_flow")
TABLE_METRIC_KEYS = ("bootstrap", "test", "alpha", "compare_to")


def evaluate_settings(params: dict) -> dict:
    return {key: params["metrics"][key] for key in EVALUATE_METRIC_KEYS}
