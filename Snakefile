# asled-bench: the whole AsLeD-Net reproduction as one DAG.
#   snakemake --cores all          build results/tables/table1_main.{csv,md}
# params.yaml is the one configuration (also read by dvc.yaml and the asled CLI).

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        "results/tables/table1_main.csv",
        "results/tables/table1_main.md",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
