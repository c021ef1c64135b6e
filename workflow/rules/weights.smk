# Weights staging: every metric's and network's weights into data/weights, SHA-256 verified
# (asled/weights.py). Hosts that cannot be reached leave that entry "missing" in the manifest with
# the reason; the metrics that need it are then reported as unavailable, never guessed.


rule fetch_weights:
    input:
        # full hashes recorded by `asled weights fetch --update-lock` (committed); this job only reads it
        "workflow/weights.lock.json",
    output:
        "data/weights/MANIFEST.json",
    log:
        "logs/weights/fetch.log",
    shell:
        "asled weights fetch > {log} 2>&1"
