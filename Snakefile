# asled-bench: the whole AsLeD-Net reproduction as one DAG.
#   snakemake --cores all          build results/tables/<dataset>/table1_main.{csv,md} and the report's figures
#   snakemake --cores all --report results/report.html        the HTML report
#   snakemake --profile workflow/profiles/slurm               every job on SLURM (docs/workflow.md)
# params.yaml is the one configuration (also read by dvc.yaml and the asled CLI).

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"


# landing page of `snakemake --report results/report.html`
report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        # every job of the stage table: the tables `tables` lists (default Table 1), the no-reference table
        # of the real captures (when params.yaml lists any), the report's figures; the same targets as
        # `dvc repro` (asled/stages.py)
        [out.path for job in PIPELINE.jobs() for out in job.outs.values() if not out.dvc_only],


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/real.smk"
include: "workflow/rules/report.smk"
