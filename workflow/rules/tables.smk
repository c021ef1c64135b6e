# Tables: our numbers beside the paper's. Table 1 is the default target; Table 2 and Supplementary
# Table 1 train one model per row and are built on request (see params.yaml, `ablations`).

for table, out in asled_config.TABLE_OUTPUTS.items():
    timed = table == "table1"

    rule:
        name:
            f"table_{table}"
        input:
            metrics=expand(
                metrics_summary("{method}", "{seed}"),
                method=asled_config.table_methods(config, table),
                seed=SEEDS,
            ),
            profiles=expand(str(PATHS.profile("{method}")), method=METHODS) if timed else [],
        output:
            csv=f"{out}.csv",
            md=f"{out}.md",
            json=f"{out}.json",
        params:
            methods=asled_config.table_methods(config, table),
            seeds=SEEDS,
        log:
            f"logs/tables/{table}.log",
        shell:
            f"asled table {table} > {{log}} 2>&1"
