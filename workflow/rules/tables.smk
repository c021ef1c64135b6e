# Tables (csv, md, tex, json): our numbers beside the paper's, with seeds' std, bootstrap CIs and
# paired tests. Table 1 is the default target; Table 2 and Supplementary Table 1 train one model per
# row and are built on request (see params.yaml, `ablations`).

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
            tex=f"{out}.tex",
        params:
            # the loop variable is read through params: a shell string is formatted when the job
            # runs, by which time `table` holds the last loop value
            table=table,
            methods=asled_config.table_methods(config, table),
            seeds=SEEDS,
            # bootstrap, paired test, alpha, compare_to: a change rebuilds the tables only
            statistics={k: config["metrics"][k] for k in asled_config.TABLE_METRIC_KEYS},
        log:
            f"logs/tables/{table}.log",
        shell:
            "asled table {params.table} > {log} 2>&1"
