# Tables: our numbers beside the paper's.


rule table1:
    input:
        metrics=expand(metrics_summary("{method}", "{seed}"), method=METHODS, seed=SEEDS),
        profiles=expand(str(PATHS.profile("{method}")), method=METHODS),
    output:
        csv="results/tables/table1_main.csv",
        md="results/tables/table1_main.md",
        json="results/tables/table1_main.json",
    params:
        methods=METHODS,
        seeds=SEEDS,
    log:
        "logs/tables/table1_main.log",
    shell:
        "asled table1 --out results/tables/table1_main > {log} 2>&1"
