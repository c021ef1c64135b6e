"""The stage table: every step of the pipeline described once, for both front-ends.

A stage is one `asled` verb with, per job (per method, seed, split or capture): the data it reads, the
source files it runs (asled.codedeps: the verb's modules and the model's own), the files it writes and
the params keys it reads. The Snakemake rules (workflow/rules/*.smk) take their inputs, outputs and params
from here, and `asled workflow dvc` writes dvc.yaml from it; tests/test_stages.py fails when the committed
dvc.yaml or a rule differs. Jobs exist for the tables `tables:` lists (default Table 1), so
`snakemake --cores all` and `dvc repro` build the same targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asled import codedeps, config, weights
from asled.errors import ConfigError
from asled.models.registry import (  # the catalogue only (no torch)
    entry,
    family,
    target_module,
)

PARAMS_FILE = "params.yaml"
CATALOG_FILE = "asled/models/catalog.yaml"
DEFAULT_TABLES = ("table1",)


@dataclass(frozen=True)
class Out:
    """One output. `git`: small, committed with the results (DVC `cache: false`); else DVC-cached data."""

    path: str
    git: bool = False
    directory: bool = False
    metric: bool = False  # DVC `metrics:` (`dvc metrics show`)
    # DVC `persist: true`: files the step adds to rather than rewrites (staged weights), which DVC must not
    # delete first; Snakemake would delete a declared output before the job, so it is declared to DVC only
    dvc_only: bool = False


@dataclass(frozen=True)
class Job:
    stage: str
    wildcards: dict[str, str]
    cmd: str
    deps: tuple[str, ...]
    code: tuple[str, ...]
    outs: dict[str, Out]
    params: tuple[tuple[str, str], ...]  # (file, dotted key)

    @property
    def name(self) -> str:
        """The DVC stage name: the stage, then each wildcard value (`train-nafnet-seed0`)."""
        values = [f"seed{v}" if k == "seed" else v for k, v in self.wildcards.items()]
        return "-".join([self.stage, *values])


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str  # the verb, `{wildcard}` placeholders
    wildcards: tuple[str, ...]
    modules: tuple[str, ...]  # the verb's code (asled.codedeps closes over its imports)
    outs: Callable[[Pipeline, dict], dict[str, Out]]
    deps: Callable[[Pipeline, dict], list[str]] = lambda p, w: []
    params: Callable[[Pipeline, dict], list[str]] = lambda p, w: []
    instances: Callable[[Pipeline], list[dict]] = lambda p: [{}]
    uses_model: bool = False  # the `method` wildcard's model file and catalogue entry are dependencies
    files: tuple[str, ...] = ()  # data files of the verb's code (e.g. the paper's numbers)
    shared: bool = False  # independent of `dataset` (weights, real-capture ingest): one output for all


def lookup(tree: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False, None
        tree = tree[part]
    return True, tree


@dataclass
class Pipeline:
    """The jobs of one params.yaml (as written: DVC refuses a key the file lacks) in one project folder."""

    params: dict
    root: Path = Path(".")
    _stages: dict[str, Stage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = config.paths(self.params)
        self.recipe_key = f"recipes.{config.dataset_settings(self.params)['recipe']}"
        self.tables = list(self.params.get("tables", DEFAULT_TABLES))
        self.real = self.params.get("real") or {}
        self._stages = {stage.name: stage for stage in STAGES}

    # -- what exists
    def stages(self) -> list[Stage]:
        return list(self._stages.values())

    def stage(self, name: str) -> Stage:
        if name not in self._stages:
            raise ConfigError(f"no stage {name!r}; stages: {', '.join(self._stages)}")
        return self._stages[name]

    def jobs(self) -> list[Job]:
        return [self.job(stage.name, wc) for stage in STAGES for wc in stage.instances(self)]

    def job(self, name: str, wildcards: dict) -> Job:
        stage = self.stage(name)
        wc = {key: str(wildcards[key]) for key in stage.wildcards}
        method = wc.get("method") if stage.uses_model else None
        params = [(PARAMS_FILE, key) for key in stage.params(self, wc) if lookup(self.params, key)[0]]
        return Job(
            stage=name,
            wildcards=wc,
            cmd=stage.cmd.format(**wc),
            deps=tuple(stage.deps(self, wc)),
            code=tuple(self.code(stage, method)),
            outs=stage.outs(self, wc),
            params=tuple(params + self.catalog_params(method)),
        )

    def output_patterns(self, name: str) -> dict[str, Out]:
        """A stage's outputs with `{wildcard}` placeholders (Snakemake's output patterns)."""
        stage = self.stage(name)
        return stage.outs(self, {key: f"{{{key}}}" for key in stage.wildcards})

    def log(self, name: str) -> str:
        """Snakemake's log file of a stage's jobs, per dataset unless the stage is shared."""
        stage = self.stage(name)
        where = "shared" if stage.shared else self.params["dataset"]
        tail = "_".join(f"seed{{{k}}}" if k == "seed" else f"{{{k}}}" for k in stage.wildcards) or name
        return f"logs/{where}/{name}/{tail}.log"

    def value(self, file: str, key: str) -> Any:
        if file == PARAMS_FILE:
            return lookup(self.params, key)[1]
        return entry(key)

    # -- code
    def holds_code(self) -> bool:
        """Code files are dependencies only where the project folder is the checkout that holds them (an
        installed package does not change under the user's feet, and DVC refuses paths outside the repo)."""
        return (self.root / "asled" / "__init__.py").is_file()

    def code(self, stage: Stage, method: str | None) -> list[str]:
        if not self.holds_code():
            return []
        modules = list(stage.modules)
        if method is not None:
            modules.append(target_module(method))
        return [*codedeps.source_files(modules), *stage.files]

    def catalog_params(self, method: str | None) -> list[tuple[str, str]]:
        if method is None or not self.holds_code():
            return []
        return [(CATALOG_FILE, name) for name in dict.fromkeys([method, family(method)])]

    # -- names the stages share
    def methods(self, table: str) -> list[str]:
        return config.table_methods(self.params, table)

    def all_methods(self) -> list[str]:
        return list(dict.fromkeys(m for table in self.tables for m in self.methods(table)))

    def seeded(self, methods: list[str]) -> list[dict]:
        return [{"method": m, "seed": s} for m in methods for s in self.params["seeds"]]

    def weights(self, method: str, seed: str) -> str:
        """A trained checkpoint, or a zero-shot row's imported official file (no stage writes it)."""
        return str(config.weights_file(self.params, method, int(seed)))

    def override_keys(self, section: str, method: str) -> list[str]:
        return [f"{self.recipe_key}.{section}.{name}" for name in dict.fromkeys([method, family(method)])]

    def captures(self) -> list[str]:
        return list(self.real.get("captures") or [])


def json_of(path: Path) -> str:
    return str(path.with_suffix(".json"))


def table_outs(prefix: Path, *, metric: bool = True) -> dict[str, Out]:
    outs = {ext: Out(f"{prefix}.{ext}", git=True) for ext in ("csv", "md", "tex")}
    outs["json"] = Out(f"{prefix}.json", git=True, metric=metric)
    return outs

# ----------------------------------------------------------------------------- the table


def _raw(p: Pipeline) -> list[str]:
    """The raw dataset folder as a dependency, when it is inside the project (DVC tracks nothing outside)."""
    raw = p.paths.raw
    return [] if raw.is_absolute() else [str(raw)]


def _get_data_instances(p: Pipeline) -> list[dict]:
    # generated (demo), or downloaded when missing; a RealMCVSR folder already there is a plain input
    settings = config.dataset_settings(p.params)
    return [{}] if settings["generate"] or not (p.root / p.paths.raw).is_dir() else []


def _dataset(p: Pipeline) -> str:
    return f"datasets.{p.params['dataset']}"


def _train_params(p: Pipeline, w: dict) -> list[str]:
    m = w["method"]
    return [f"{_dataset(p)}.recipe", f"{p.recipe_key}.train", *p.override_keys("method_overrides", m),
            *p.override_keys("model_overrides", m), f"method_overrides.{m}"]


def _table_stage(table: str) -> Stage:
    def deps(p: Pipeline, w: dict) -> list[str]:
        metrics = [json_of(p.paths.metrics(j["method"], j["seed"])) for j in p.seeded(p.methods(table))]
        timed = [str(p.paths.profile(m)) for m in p.methods(table)] if table == "table1" else []
        return metrics + timed

    rows = "methods" if table == "table1" else f"ablations.{table}"
    return Stage(
        name=f"table_{table}", cmd=f"asled table {table}", wildcards=(), modules=("asled.tables",),
        files=("asled/paper_tables.yaml",), deps=deps,
        outs=lambda p, w: table_outs(p.paths.table(table)),
        params=lambda p, w: [rows, "seeds", *(f"metrics.{k}" for k in config.TABLE_METRIC_KEYS)],
        instances=lambda p: [{}] if table in p.tables else [],
    )


def _figure_stage(kind: str, deps: Callable[[Pipeline], list[str]], params: tuple[str, ...] = ()) -> Stage:
    return Stage(
        name=f"figure_{kind.replace('-', '_')}", cmd=f"asled figures {kind}", wildcards=(),
        modules=("asled.figures",), deps=lambda p, w: deps(p), params=lambda p, w: list(params),
        outs=lambda p, w: {"figure": Out(str(p.paths.figure(kind)), git=True)},
    )


def _report_table_stage(table: str) -> Stage:
    return Stage(
        name=f"report_table_{table}", cmd=f"asled figures table {table}", wildcards=(), modules=("asled.figures",),
        deps=lambda p, w: [str(p.paths.table(table).with_suffix(".csv"))],
        outs=lambda p, w: {"table": Out(str(p.paths.report_table(table)), git=True)},
        instances=lambda p: [{}] if table in p.tables else [],
    )


def _real(present: Callable[[Pipeline], list[dict]]) -> Callable[[Pipeline], list[dict]]:
    """Real-capture jobs exist only when params.yaml lists captures."""
    return lambda p: present(p) if p.captures() else []


WEIGHTS_MANIFEST = str(weights.WEIGHTS_DIR / weights.MANIFEST_NAME)
WEIGHTS_LOCK = "workflow/weights.lock.json"

STAGES: list[Stage] = [
    Stage(
        name="fetch_weights", cmd="asled weights fetch", wildcards=(), shared=True,
        modules=("asled.weights", *weights.CONVERTER_MODULES),
        # full hashes recorded by `asled weights fetch --update-lock` (committed); this step only reads it
        deps=lambda p, w: [WEIGHTS_LOCK] if (p.root / WEIGHTS_LOCK).is_file() else [],
        outs=lambda p, w: {
            "manifest": Out(WEIGHTS_MANIFEST, git=True),
            "torch": Out("data/weights/torch", directory=True, dvc_only=True),
        },
    ),
    Stage(
        name="get_data", cmd="asled data get", wildcards=(), modules=("asled.data.demo", "asled.data.download"),
        params=lambda p, w: [_dataset(p), "blur"] if config.dataset_settings(p.params)["generate"] else [_dataset(p)],
        outs=lambda p, w: {"raw": Out(str(p.paths.raw), directory=True)},
        instances=_get_data_instances,
    ),
    Stage(
        name="data_summary", cmd="asled data validate --summary", wildcards=(), modules=("asled.data.layout",),
        deps=lambda p, w: _raw(p), params=lambda p, w: [_dataset(p)],
        outs=lambda p, w: {"json": Out(json_of(p.paths.data_summary), git=True),
                           "md": Out(str(p.paths.data_summary.with_suffix(".md")), git=True)},
    ),
    Stage(
        name="prepare_split", cmd="asled data prepare --split {split}", wildcards=("split",),
        modules=("asled.data.prepare",), params=lambda p, w: ["blur", "reference"],
        # validated and counted first: a layout problem is reported once, before any split is built
        deps=lambda p, w: [*_raw(p), json_of(p.paths.data_summary)],
        outs=lambda p, w: {"split": Out(str(p.paths.prepared(w["split"])), directory=True)},
        instances=lambda p: [{"split": s} for s in config.SPLITS],
    ),
    Stage(
        name="train", cmd="asled train {method} --seed {seed}", wildcards=("method", "seed"),
        modules=("asled.train",), uses_model=True, params=_train_params,
        deps=lambda p, w: [str(p.paths.prepared("train")), str(p.paths.prepared("valid"))],
        outs=lambda p, w: {"checkpoint": Out(str(p.paths.checkpoint(w["method"], w["seed"]))),
                           "log_csv": Out(str(p.paths.train_log(w["method"], w["seed"])), git=True)},
        instances=lambda p: p.seeded(config.trained_methods(p.params, p.all_methods())),
    ),
    Stage(
        name="infer", cmd="asled infer {method} --seed {seed}", wildcards=("method", "seed"),
        modules=("asled.infer",), uses_model=True, params=lambda p, w: [f"{p.recipe_key}.test"],
        deps=lambda p, w: [p.weights(w["method"], w["seed"]), str(p.paths.prepared("test"))],
        outs=lambda p, w: {"restored": Out(str(p.paths.restored(w["method"], w["seed"])), directory=True)},
        instances=lambda p: p.seeded(p.all_methods()),
    ),
    Stage(
        name="evaluate", cmd="asled evaluate {method} --seed {seed}", wildcards=("method", "seed"),
        modules=("asled.evaluate",),
        params=lambda p, w: [f"metrics.{key}" for key in config.EVALUATE_METRIC_KEYS],
        # LPIPS's trunk is staged by fetch_weights: evaluating before it would report LPIPS unavailable
        deps=lambda p, w: [str(p.paths.restored(w["method"], w["seed"])), str(p.paths.prepared("test")),
                           WEIGHTS_MANIFEST],
        outs=lambda p, w: {"frames": Out(str(p.paths.metrics(w["method"], w["seed"])), git=True),
                           "summary": Out(json_of(p.paths.metrics(w["method"], w["seed"])), git=True)},
        instances=lambda p: p.seeded(p.all_methods()),
    ),
    Stage(
        name="profile", cmd="asled profile {method} --write", wildcards=("method",),
        modules=("asled.profiling",), uses_model=True,
        params=lambda p, w: [f"{p.recipe_key}.profile", *p.override_keys("model_overrides", w["method"])],
        # a zero-shot row's imported file: profile loads it to check that it fits
        deps=lambda p, w: [str(f)] if (f := config.zero_shot_file(w["method"])) else [],
        outs=lambda p, w: {"profile": Out(str(p.paths.profile(w["method"])), git=True)},
        instances=lambda p: [{"method": m} for m in p.methods("table1")],
    ),
    *(_table_stage(table) for table in config.TABLE_FILES),
    _figure_stage("qualitative", lambda p: [str(p.paths.prepared("test"))] + [
        str(p.paths.restored(m, p.params["seeds"][0])) for m in p.methods("table1")], ("methods", "seeds")),
    _figure_stage("psnr-bar", lambda p: [str(p.paths.table("table1").with_suffix(".csv"))]),
    _figure_stage("psnr-time", lambda p: [str(p.paths.table("table1").with_suffix(".csv"))]),
    _figure_stage("loss", lambda p: [str(p.paths.train_log(j["method"], j["seed"]))
                                     for j in p.seeded(config.trained_methods(p.params, p.methods("table1")))],
                  ("methods", "seeds")),
    _figure_stage("flow", lambda p: [str(p.paths.prepared("test"))]),
    *(_report_table_stage(table) for table in config.TABLE_FILES),
    Stage(
        name="report_gallery", cmd="asled figures gallery", wildcards=(), modules=("asled.figures",),
        deps=lambda p, w: [str(p.paths.figure(kind)) for kind in config.FIGURE_FILES],
        outs=lambda p, w: {"gallery": Out(str(p.paths.report_gallery), git=True)},
    ),
    # real dual-lens captures (no ground truth): generated demo ones or user-placed, ingested once for every
    # dataset, restored and scored per method and seed, one no-reference table
    Stage(
        name="get_real_captures", cmd="asled data captures", wildcards=(), shared=True,
        modules=("asled.real", "asled.data.demo"), params=lambda p, w: ["real.generate", "real.captures", "real.demo"],
        outs=lambda p, w: {"captures": Out(str(p.paths.real_root), directory=True)},
        instances=_real(lambda p: [{}] if p.real.get("generate") else []),
    ),
    Stage(
        name="ingest_real", cmd="asled real ingest {capture}", wildcards=("capture",), shared=True,
        modules=("asled.real",), params=lambda p, w: ["reference", f"real.offsets_ms.{w['capture']}"],
        # generated captures come from one step writing all of data/real; user captures are placed by hand
        deps=lambda p, w: [str(p.paths.real_root if p.real.get("generate") else p.paths.real_capture(w["capture"]))],
        outs=lambda p, w: {"prepared": Out(str(p.paths.real_prepared(w["capture"])), directory=True)},
        instances=_real(lambda p: [{"capture": c} for c in p.captures()]),
    ),
    Stage(
        name="restore_real", cmd="asled real restore {method} {capture} --seed {seed}",
        wildcards=("method", "seed", "capture"), modules=("asled.real",), uses_model=True,
        params=lambda p, w: [f"{p.recipe_key}.test"],
        deps=lambda p, w: [p.weights(w["method"], w["seed"]), str(p.paths.real_prepared(w["capture"]))],
        outs=lambda p, w: {"restored": Out(str(p.paths.real_restored(w["method"], w["seed"], w["capture"])),
                                           directory=True)},
        instances=_real(lambda p: [{**j, "capture": c} for j in p.seeded(p.methods("table1")) for c in p.captures()]),
    ),
    Stage(
        name="score_real", cmd="asled real score {method} --seed {seed}", wildcards=("method", "seed"),
        modules=("asled.real_nr",), params=lambda p, w: ["metrics.nr", "real.captures"],
        deps=lambda p, w: [str(p.paths.real_restored(w["method"], w["seed"], c)) for c in p.captures()]
        + [WEIGHTS_MANIFEST],
        outs=lambda p, w: {"frames": Out(str(p.paths.real_scores(w["method"], w["seed"])), git=True),
                           "summary": Out(json_of(p.paths.real_scores(w["method"], w["seed"])), git=True)},
        instances=_real(lambda p: p.seeded(p.methods("table1"))),
    ),
    Stage(
        name="table_nr_real", cmd="asled real table", wildcards=(), modules=("asled.real_nr",),
        params=lambda p, w: ["methods", "seeds", "metrics.nr", "real.captures"],
        deps=lambda p, w: [json_of(p.paths.real_scores(j["method"], j["seed"])) for j in p.seeded(p.methods("table1"))],
        outs=lambda p, w: table_outs(p.paths.table("nr_real")),
        instances=_real(lambda p: [{}]),
    ),
]
