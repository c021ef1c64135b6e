# Inference on the test split, full-reference and temporal metrics, and the timing protocol.


rule infer:
    input:
        checkpoint=weights_file,
        test=prepared("test"),
    output:
        directory(str(PATHS.restored("{method}", "{seed}"))),
    params:
        test=asled_config.test_settings(config),
    threads: JOB_THREADS
    log:
        f"logs/infer/{config['dataset']}/{{method}}/seed{{seed}}.log",
    shell:
        "asled infer {wildcards.method} --seed {wildcards.seed} --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        restored=str(PATHS.restored("{method}", "{seed}")),
        test=prepared("test"),
        # LPIPS's trunk is staged by fetch_weights: evaluating before it would report LPIPS unavailable
        weights="data/weights/MANIFEST.json",
    output:
        frames=str(PATHS.metrics("{method}", "{seed}")),
        summary=metrics_summary("{method}", "{seed}"),
    params:
        # only the keys that change per-frame scores: editing the tables' statistics re-runs no evaluation
        metrics=asled_config.evaluate_settings(config),
    threads: JOB_THREADS
    log:
        f"logs/evaluate/{config['dataset']}/{{method}}/seed{{seed}}.log",
    shell:
        "asled evaluate {wildcards.method} --seed {wildcards.seed} --threads {threads} > {log} 2>&1"


rule profile:
    input:
        zero_shot_weights,
    output:
        str(PATHS.profile("{method}")),
    params:
        profile=asled_config.profile_settings(config),
        model=lambda wildcards: asled_config.model_overrides(config, wildcards.method),
    threads: workflow.cores
    log:
        "logs/profile/{method}.log",
    shell:
        "asled profile {wildcards.method} --write --threads {threads} > {log} 2>&1"
