# Training: one checkpoint per method and seed (zero-parameter methods get a trivial checkpoint).
# `asled train` writes a resume file beside the checkpoint (seed<N>.resume.pt, deliberately not an
# output, so a failed job's clean-up keeps it) and continues from it when run again. After SIGTERM or
# SIGUSR1 it saves and exits 75 ("resume me"); `retries` (train recipe) re-runs the job, which then
# resumes. With the recipe's `devices` > 1 it launches one process per device through torchrun (DDP);
# on CUDA the job asks for that many GPUs.


rule train:
    input:
        train=prepared("train"),
        valid=prepared("valid"),
    output:
        checkpoint=str(PATHS.checkpoint("{method}", "{seed}")),
        log_csv=str(PATHS.train_log("{method}", "{seed}")),
    params:
        settings=lambda wildcards: asled_config.train_settings(config, wildcards.method),
        model=lambda wildcards: asled_config.model_kwargs(config, wildcards.method),
    threads: JOB_THREADS
    resources:
        gpus=lambda wildcards: (
            int(s["devices"])
            if str((s := asled_config.train_settings(config, wildcards.method))["device"]).startswith("cuda")
            else 0
        ),
    retries: max(int(asled_config.train_settings(config, m)["retries"]) for m in ALL_METHODS)
    log:
        f"logs/train/{config['dataset']}/{{method}}/seed{{seed}}.log",
    shell:
        # append: the log of a preempted attempt stays above the resumed one
        "asled train {wildcards.method} --seed {wildcards.seed} --threads {threads} >> {log} 2>&1"
