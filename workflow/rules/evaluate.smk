# Inference on the test split, full-reference and temporal metrics, and the timing protocol.


rule infer:
    input:
        unpack(stage_inputs("infer")),
    output:
        **stage_outputs("infer"),
    params:
        values=stage_params("infer"),
    threads: JOB_THREADS
    log:
        PIPELINE.log("infer"),
    shell:
        stage_shell("infer", "--threads {threads}")


rule evaluate:
    input:
        unpack(stage_inputs("evaluate")),
    output:
        **stage_outputs("evaluate"),
    params:
        # only the keys that change per-frame scores: editing the tables' statistics re-runs no evaluation
        values=stage_params("evaluate"),
    threads: JOB_THREADS
    log:
        PIPELINE.log("evaluate"),
    shell:
        stage_shell("evaluate", "--threads {threads}")


rule profile:
    input:
        unpack(stage_inputs("profile")),
    output:
        **stage_outputs("profile"),
    params:
        values=stage_params("profile"),
    # the timing protocol keeps every core, alone
    threads: workflow.cores
    log:
        PIPELINE.log("profile"),
    shell:
        stage_shell("profile", "--threads {threads}")
