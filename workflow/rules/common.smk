# Shared names for all rules. Paths come from asled.config.Paths so that Snakemake, DVC and the
# CLI agree on every file; importing asled.config pulls in no torch (fast DAG start-up).
from asled import config as asled_config
from asled.errors import AsledError

# Checked here, while the DAG is built, so a bad file stops `snakemake -n` before any job runs: the schema
# shipped in the package, cross-key rules, every model name against the catalogue; and `config` must be
# params.yaml as written, since each job's `asled` verb reads that file, not Snakemake's `config`.
try:
    asled_config.check_no_overrides(config, Path("params.yaml"))
    asled_config.check_params(config, source=Path("params.yaml"))
except AsledError as exc:
    raise WorkflowError(str(exc)) from None

PATHS = asled_config.paths(config)
DATASET = asled_config.dataset_settings(config)
METHODS = config["methods"]
ALL_METHODS = asled_config.all_methods(config)
SEEDS = config["seeds"]
# methods with a training run (a zero-shot row restores with its imported official checkpoint instead)
TRAINED_METHODS = asled_config.trained_methods(config, METHODS)
SPLITS = list(asled_config.SPLITS)
# threads of each compute job (recipe `threads_per_job`); `profile` keeps every core for its timing
JOB_THREADS = asled_config.job_threads(config, workflow.cores)

# A missing RealMCVSR folder is downloaded from the manifest's parts (workflow/rules/data.smk); with
# no parts listed there is nothing to run, so say at once how to get the data.
if not DATASET["generate"] and not PATHS.raw.is_dir() and not (DATASET.get("download") or {}).get("parts"):
    from asled.data.download import manual_download_help

    raise WorkflowError(
        manual_download_help(config["dataset"], PATHS.raw) + "; or set `dataset: demo` in params.yaml"
    )

# The paper recipe starts every SPyNet from the staged pretrained file (asled/flow_recipe.py): without it,
# stop here, naming the staging command, rather than after hours of data preparation. Free when the
# recipe says `spynet: scratch` (the demo).
from asled import flow_recipe as asled_flow

try:
    asled_flow.check_pretrained_spynet(config, ALL_METHODS)
except AsledError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    method="|".join(re.escape(m) for m in ALL_METHODS),
    seed=r"\d+",
    split="|".join(SPLITS),


def weights_file(wildcards):
    """The trained checkpoint, or a zero-shot row's imported official one (a plain input: no rule makes it)."""
    return str(asled_config.weights_file(config, wildcards.method, int(wildcards.seed)))


def zero_shot_weights(wildcards):
    """A zero-shot row's imported file (profile loads it to check it fits); nothing for trained methods."""
    path = asled_config.zero_shot_file(wildcards.method)
    return [str(path)] if path else []


def prepared(split):
    return str(PATHS.prepared(split))


def metrics_summary(method, seed):
    return str(PATHS.metrics(method, seed).with_suffix(".json"))
