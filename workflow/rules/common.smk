# Shared names for all rules. Every rule takes its inputs (data and code), outputs and params from the
# stage table (asled/stages.py), the same table `asled workflow dvc` writes dvc.yaml from, so the two
# front-ends cannot drift (tests/test_stages.py). Importing asled.config / asled.stages pulls in no torch.
from asled import config as asled_config
from asled import stages as asled_stages
from asled.errors import AsledError

# Checked here, while the DAG is built, so a bad file stops `snakemake -n` before any job runs: the schema
# shipped in the package, cross-key rules, every model name against the catalogue; and `config` must be
# params.yaml as written, since each job's `asled` verb reads that file, not Snakemake's `config`.
try:
    asled_config.check_no_overrides(config, Path("params.yaml"))
    asled_config.check_params(config, source=Path("params.yaml"))
    # the stage table reads params.yaml as written (DVC refuses keys the file lacks); `config` got defaults
    PIPELINE = asled_stages.Pipeline(asled_config.read_yaml(Path("params.yaml")))
except AsledError as exc:
    raise WorkflowError(str(exc)) from None

PATHS = asled_config.paths(config)
DATASET = asled_config.dataset_settings(config)
ALL_METHODS = asled_config.all_methods(config)
# threads of each compute job (recipe `threads_per_job`); `profile` keeps every core for its timing
JOB_THREADS = asled_config.job_threads(config, workflow.cores)

# A missing RealMCVSR folder is downloaded from the manifest's parts (stage get_data); with no parts listed
# there is nothing to run, so say at once how to get the data.
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
    split="|".join(asled_config.SPLITS),
    capture="|".join(re.escape(c) for c in PIPELINE.captures()) or "(?!)",


def stage_inputs(name):
    """Input function of a stage: each job's data and code files."""

    def inputs(wildcards):
        job = PIPELINE.job(name, dict(wildcards.items()))
        return {"data": list(job.deps), "code": list(job.code)}

    return inputs


def stage_outputs(name):
    """Output patterns of a stage (folders declared as such); outputs DVC alone keeps are left out."""
    outs = PIPELINE.output_patterns(name).items()
    return {key: directory(out.path) if out.directory else out.path for key, out in outs if not out.dvc_only}


def stage_params(name):
    """The values of the params keys each job reads: a changed value re-runs that job only."""

    def values(wildcards):
        job = PIPELINE.job(name, dict(wildcards.items()))
        return {f"{file}:{key}": PIPELINE.value(file, key) for file, key in job.params}

    return values


def stage_shell(name, options="", append=False):
    """The stage's `asled` command with Snakemake's wildcards, extra options and the job's log."""
    cmd = re.sub(r"\{(\w+)\}", r"{wildcards.\1}", PIPELINE.stage(name).cmd)
    return f"{cmd} {options}".rstrip() + (" >> {log} 2>&1" if append else " > {log} 2>&1")


# Rules made in a loop read their command through params, since Snakemake evaluates a `shell:` expression
# again when the job runs, by which time the loop variable holds its last value.
LOOP_SHELL = "{params.command} > {log} 2>&1"


def reported(name, category, caption, label):
    """A stage's one output, embedded in the HTML report."""
    (path,) = stage_outputs(name).values()
    return report(path, caption=f"../report/{caption}", category=category, labels=label)


def train_gpus(wildcards):
    """GPUs a train job asks for: the recipe's `devices` on CUDA, none on CPU."""
    settings = asled_config.train_settings(config, wildcards.method)
    return int(settings["devices"]) if str(settings["device"]).startswith("cuda") else 0
