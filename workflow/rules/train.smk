# Training: one checkpoint per method and seed (zero-parameter methods get a trivial checkpoint).


rule train:
    input:
        train=prepared("train"),
        valid=prepared("valid"),
    output:
        checkpoint=str(PATHS.checkpoint("{method}", "{seed}")),
        log_csv=str(PATHS.train_log("{method}", "{seed}")),
    params:
        settings=lambda wildcards: asled_config.train_settings(config, wildcards.method),
    threads: workflow.cores
    resources:
        gpus=0,
    log:
        f"logs/train/{config['dataset']}/{{method}}/seed{{seed}}.log",
    shell:
        "asled train {wildcards.method} --seed {wildcards.seed} --threads {threads} > {log} 2>&1"
