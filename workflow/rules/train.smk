# Training: one checkpoint per method and seed (zero-parameter methods get a trivial checkpoint; a
# zero-shot row restores with its imported official checkpoint and has no training job).
# `asled train` writes a resume file beside the checkpoint (seed<N>.resume.pt, deliberately not an
# output, so a failed job's clean-up keeps it) and continues from it when run again. After SIGTERM or
# SIGUSR1 it saves and exits 75 ("resume me"); `retries` (train recipe) re-runs the job, which then
# resumes. With the recipe's `devices` > 1 it launches one process per device through torchrun (DDP);
# on CUDA the job asks for that many GPUs.


rule train:
    input:
        unpack(stage_inputs("train")),
    output:
        **stage_outputs("train"),
    params:
        values=stage_params("train"),
    threads: JOB_THREADS
    resources:
        gpus=train_gpus,
    retries: max(int(asled_config.train_settings(config, m)["retries"]) for m in ALL_METHODS)
    log:
        PIPELINE.log("train"),
    shell:
        # append: the log of a preempted attempt stays above the resumed one
        stage_shell("train", "--threads {threads}", append=True)
