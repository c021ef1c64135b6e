# asled-bench: the whole AsLeD-Net reproduction as one DAG.
#   snakemake --cores all          build results/tables/table1_main.{csv,md} and the report's figures
#   snakemake --cores all --report results/report.html        the HTML report
#   snakemake --profile workflow/profiles/slurm               every job on SLURM (README)
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
        "results/tables/table1_main.csv",
        "results/tables/table1_main.md",
        # no-reference scores of every method on the real captures (when params.yaml lists any)
        expand("results/tables/table_nr_real.{ext}", ext=["csv", "md", "tex"]) if (config.get("real") or {}).get("captures") else [],
        # the HTML report's figures and table (snakemake --report results/report.html)
        list(asled_config.FIGURE_OUTPUTS.values()),
        asled_config.REPORT_TABLES["table1"],
        asled_config.REPORT_GALLERY,


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/real.smk"
include: "workflow/rules/report.smk"
