# Real dual-lens captures (no ground truth): ingest (timestamp sync + reference preparation) per
# capture, restore per method x seed x capture, no-reference scores per method x seed, one table.
# Logic lives in asled/real.py; each rule calls one `asled real ...` verb.

REAL = config.get("real") or {}
CAPTURES = REAL.get("captures", [])
NR_TABLE = "results/tables/table_nr_real"


wildcard_constraints:
    capture="|".join(re.escape(c) for c in CAPTURES) or "(?!)",


if REAL.get("generate"):

    rule get_real_captures:
        output:
            directory(str(PATHS.real_root)),
        params:
            captures=CAPTURES,
            demo=REAL.get("demo", {}),
        log:
            "logs/real/captures.log",
        shell:
            "asled data captures > {log} 2>&1"


rule ingest_real:
    input:
        # generated captures come from one rule writing all of data/real; user captures are placed by hand
        lambda wildcards: str(PATHS.real_root if REAL.get("generate") else PATHS.real_capture(wildcards.capture)),
    output:
        directory(str(PATHS.real_prepared("{capture}"))),
    params:
        reference=config["reference"],
        offset=lambda wildcards: REAL.get("offsets_ms", {}).get(wildcards.capture),
    log:
        "logs/real/ingest_{capture}.log",
    shell:
        "asled real ingest {wildcards.capture} > {log} 2>&1"


rule restore_real:
    input:
        checkpoint=weights_file,
        capture=str(PATHS.real_prepared("{capture}")),
    output:
        directory(str(PATHS.real_restored("{method}", "{seed}", "{capture}"))),
    params:
        test=asled_config.test_settings(config),
    threads: JOB_THREADS
    log:
        f"logs/real/{config['dataset']}/{{method}}/seed{{seed}}_{{capture}}.log",
    shell:
        "asled real restore {wildcards.method} {wildcards.capture} --seed {wildcards.seed} "
        "--threads {threads} > {log} 2>&1"


rule score_real:
    input:
        restored=expand(str(PATHS.real_restored("{{method}}", "{{seed}}", "{capture}")), capture=CAPTURES),
        weights="data/weights/MANIFEST.json",
    output:
        frames=str(PATHS.real_scores("{method}", "{seed}")),
        summary=str(PATHS.real_scores("{method}", "{seed}").with_suffix(".json")),
    params:
        nr=config["metrics"].get("nr"),
    threads: JOB_THREADS
    log:
        f"logs/real/{config['dataset']}/{{method}}/seed{{seed}}_score.log",
    shell:
        "asled real score {wildcards.method} --seed {wildcards.seed} --threads {threads} > {log} 2>&1"


rule table_nr_real:
    input:
        expand(str(PATHS.real_scores("{method}", "{seed}").with_suffix(".json")), method=METHODS, seed=SEEDS),
    output:
        csv=f"{NR_TABLE}.csv",
        md=f"{NR_TABLE}.md",
        tex=f"{NR_TABLE}.tex",
        json=f"{NR_TABLE}.json",
    params:
        methods=METHODS,
        seeds=SEEDS,
        nr=config["metrics"].get("nr"),
        captures=CAPTURES,
    log:
        "logs/tables/table_nr_real.log",
    shell:
        "asled real table > {log} 2>&1"
