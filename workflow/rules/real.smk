# Real dual-lens captures (no ground truth): ingest (timestamp sync + reference preparation) per
# capture, restore per method x seed x capture, no-reference scores per method x seed, one table.
# Logic lives in asled/real.py; each rule calls one `asled real ...` verb. Jobs exist when params.yaml
# lists captures (`real.captures`).

if (config.get("real") or {}).get("generate"):

    rule get_real_captures:
        input:
            unpack(stage_inputs("get_real_captures")),
        output:
            **stage_outputs("get_real_captures"),
        params:
            values=stage_params("get_real_captures"),
        log:
            PIPELINE.log("get_real_captures"),
        shell:
            stage_shell("get_real_captures")


rule ingest_real:
    input:
        unpack(stage_inputs("ingest_real")),
    output:
        **stage_outputs("ingest_real"),
    params:
        values=stage_params("ingest_real"),
    log:
        PIPELINE.log("ingest_real"),
    shell:
        stage_shell("ingest_real")


rule restore_real:
    input:
        unpack(stage_inputs("restore_real")),
    output:
        **stage_outputs("restore_real"),
    params:
        values=stage_params("restore_real"),
    threads: JOB_THREADS
    log:
        PIPELINE.log("restore_real"),
    shell:
        stage_shell("restore_real", "--threads {threads}")


rule score_real:
    input:
        unpack(stage_inputs("score_real")),
    output:
        **stage_outputs("score_real"),
    params:
        values=stage_params("score_real"),
    threads: JOB_THREADS
    log:
        PIPELINE.log("score_real"),
    shell:
        stage_shell("score_real", "--threads {threads}")


rule table_nr_real:
    input:
        unpack(stage_inputs("table_nr_real")),
    output:
        **stage_outputs("table_nr_real"),
    params:
        values=stage_params("table_nr_real"),
    log:
        PIPELINE.log("table_nr_real"),
    shell:
        stage_shell("table_nr_real")
