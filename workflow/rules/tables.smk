# Tables (csv, md, tex, json): our numbers beside the paper's, with seeds' std, bootstrap CIs and
# paired tests. Table 1 is in the default target; Table 2 and Supplementary Table 1 train one model per
# row and join it when params.yaml's `tables` lists them (or build one by path, e.g.
# `snakemake --cores all results/tables/demo/table2_modules.csv`).

for table in asled_config.TABLE_FILES:

    rule:
        name:
            f"table_{table}"
        input:
            unpack(stage_inputs(f"table_{table}")),
        output:
            **stage_outputs(f"table_{table}"),
        params:
            # bootstrap, paired test, alpha, compare_to, the rows and seeds: a change rebuilds the table only
            values=stage_params(f"table_{table}"),
            command=PIPELINE.stage(f"table_{table}").cmd,
        log:
            PIPELINE.log(f"table_{table}"),
        shell:
            LOOP_SHELL
