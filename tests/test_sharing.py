"""What git shares and what DVC shares: the repository's .gitignore against dvc.yaml and the README."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import REPO


def dvc_outputs() -> dict[str, bool]:
    """Every output path of dvc.yaml (templates filled with a sample value) -> whether DVC caches it."""
    outputs = {}
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        body = stage.get("do", stage)
        for entry in body.get("outs", []) + body.get("metrics", []) + body.get("plots", []):
            path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            outputs[re.sub(r"\$\{[^}]+\}", "sample", path)] = (options or {}).get("cache", True)
    return outputs


def ignored_by_git(tmp_path: Path, paths: list[str]) -> set[str]:
    """The paths the repository's .gitignore (alone, in a fresh repository) keeps out of git."""
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=tmp_path, input="\n".join(paths),
                            capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return set(result.stdout.split())


def test_git_carries_the_small_outputs_and_dvc_the_large_ones(tmp_path):
    outputs = dvc_outputs()
    assert sum(not cached for cached in outputs.values()) >= 20  # tables, metrics, figures, logs, summary
    # a cached output may be a folder: check a file inside it as well as the path itself
    probes = {path: [path, f"{path}/sample.bin"] for path in outputs}
    snakemake_logs = ["logs/demo/train/nafnet_seed0.log", "logs/demo/table_table1/table_table1.log"]
    ignored = ignored_by_git(tmp_path, [p for ps in probes.values() for p in ps] + snakemake_logs)
    in_git_but_cached = [p for p, cached in outputs.items() if cached and not set(probes[p]) & ignored]
    ignored_but_uncached = [p for p, cached in outputs.items() if not cached and p in ignored]
    assert not in_git_but_cached, f"DVC-cached outputs git would also carry: {in_git_but_cached}"
    assert not ignored_but_uncached, f"cache: false outputs git ignores (a clone would lack them): {ignored_but_uncached}"
    assert not ignored & set(snakemake_logs), "the rules' logs go to git"


def test_readme_says_what_the_gitignore_does():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Sharing data and checkpoints with a DVC remote"):]
    section = section[:section.index("\n## ", 1)]
    for words in ("tables", "metrics", "logs", "git", "checkpoints", ".gitignore"):
        assert words in section, words
