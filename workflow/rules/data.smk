# Raw data (RealMCVSR layout) -> validation summary -> prepared splits.
#   demo       generated offline (`asled data get`)
#   realmcvsr  when its folder is missing: downloaded, verified and extracted from the zip parts listed
#              in params.yaml (`asled data get`, i.e. `asled data download`). A folder that is already there
#              (data/raw/<name> or datasets.<name>.root) is a plain input: no rule writes to it, so none can
#              delete it (the stage table has no get_data job then).

if PIPELINE.stage("get_data").instances(PIPELINE):

    rule get_data:
        input:
            unpack(stage_inputs("get_data")),
        output:
            **stage_outputs("get_data"),
        params:
            values=stage_params("get_data"),
        log:
            PIPELINE.log("get_data"),
        shell:
            stage_shell("get_data")


rule data_summary:
    input:
        unpack(stage_inputs("data_summary")),
    output:
        **stage_outputs("data_summary"),
    params:
        values=stage_params("data_summary"),
    log:
        PIPELINE.log("data_summary"),
    shell:
        stage_shell("data_summary")


rule prepare_split:
    input:
        unpack(stage_inputs("prepare_split")),
    output:
        **stage_outputs("prepare_split"),
    params:
        values=stage_params("prepare_split"),
    threads: workflow.cores
    log:
        PIPELINE.log("prepare_split"),
    shell:
        stage_shell("prepare_split", "--workers {threads}")
