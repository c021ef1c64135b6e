# Raw data (RealMCVSR layout) -> validation summary -> prepared splits.
#   demo       generated offline (`asled data get`)
#   realmcvsr  when its folder is missing: downloaded, verified and extracted from the zip parts listed
#              in params.yaml (`asled data download`). A folder that is already there (data/raw/<name>
#              or datasets.<name>.root) is a plain input: no rule writes to it, so none can delete it.

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

elif not PATHS.raw.is_dir():

    rule download_data:
        output:
            directory(str(PATHS.raw)),
        params:
            dataset=config["dataset"],
            download=DATASET.get("download"),
        log:
            f"logs/data/download_{config['dataset']}.log",
        shell:
            "asled data download {params.dataset} > {log} 2>&1"


rule data_summary:
    input:
        str(PATHS.raw),
    output:
        json=str(PATHS.data_summary.with_suffix(".json")),
        md=str(PATHS.data_summary.with_suffix(".md")),
    params:
        splits=asled_config.dataset_splits(config),
        cameras=asled_config.dataset_cameras(config),
    log:
        f"logs/data/summary_{config['dataset']}.log",
    shell:
        "asled data validate --summary > {log} 2>&1"


rule prepare_split:
    input:
        raw=str(PATHS.raw),
        # validated and counted first: a layout problem is reported once, before any split is built
        summary=rules.data_summary.output.json,
    output:
        directory(prepared("{split}")),
    params:
        blur=config["blur"],
        reference=config["reference"],
    threads: workflow.cores
    log:
        f"logs/data/prepare_{config['dataset']}_{{split}}.log",
    shell:
        "asled data prepare --split {wildcards.split} --workers {threads} > {log} 2>&1"
