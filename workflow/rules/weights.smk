# Weights staging: every metric's and network's weights into data/weights, SHA-256 verified
# (asled/weights.py). Hosts that cannot be reached leave that entry "missing" in the manifest with
# the reason; the metrics that need it are then reported as unavailable, never guessed. Only the manifest
# is declared: Snakemake would delete a declared folder of staged weights before the job (DVC keeps it
# with `persist`).


rule fetch_weights:
    input:
        # workflow/weights.lock.json: full hashes recorded by `asled weights fetch --update-lock` (committed)
        unpack(stage_inputs("fetch_weights")),
    output:
        **stage_outputs("fetch_weights"),
    log:
        PIPELINE.log("fetch_weights"),
    shell:
        stage_shell("fetch_weights")
