# Raw data (demo generated offline, or RealMCVSR placed by the user) -> prepared splits.

if DATASET["generate"]:

    rule get_data:
        output:
            directory(str(PATHS.raw)),
        params:
            dataset=DATASET,
        log:
            f"logs/data/get_{config['dataset']}.log",
        shell:
            "asled data get > {log} 2>&1"


rule prepare_split:
    input:
        str(PATHS.raw),
    output:
        directory(prepared("{split}")),
    params:
        blur=config["blur"],
        reference=config["reference"],
    log:
        f"logs/data/prepare_{config['dataset']}_{{split}}.log",
    shell:
        "asled data prepare --split {wildcards.split} > {log} 2>&1"
