"""Shared fixtures: a tiny copy of the workflow (repo files + a small params.yaml) in a temp folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asled import dvcfile
from asled.errors import AsledError

REPO = Path(__file__).resolve().parents[1]
# the real .gitignore and .dvcignore: what git and DVC share in the remote round trip (test_dvc_remote.py);
# dvc.yaml is written for the copy's own params.yaml (`asled workflow dvc`), as a user would after editing it
WORKFLOW_FILES = ["Snakefile", "params.yaml", "workflow", ".dvc/config", ".dvc/.gitignore", ".gitignore", ".dvcignore"]
# the code both front-ends list as dependencies (asled/stages.py), so editing a copied model file re-runs its jobs
CODE_DIRS = ["asled", "baselines"]


def _run_slow() -> bool:
    """Slow end-to-end tests run in CI (CI=true, as `.ci/run` sets it) or on request (ASLED_SLOW=1)."""
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in ("CI", "ASLED_SLOW"))


def pytest_collection_modifyitems(config, items):
    if _run_slow():
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: runs in CI (CI=true) or with ASLED_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def tiny_params() -> dict:
    """The repository's params.yaml shrunk so the whole DAG runs in about a minute on 2 cores."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["demo"].update(width=64, height=48, frames_per_clip=21, clips={"train": 2, "valid": 1, "test": 1})
    params["recipes"]["demo"]["train"].update(iterations=2, crop=32, frames=3, val_every=2)
    # the blurry input, one (cheap) baseline and AsLeD-Net: every kind of row, a fraction of the cost
    params["methods"] = ["blur", "dbn", "asled_net"]
    params["seeds"] = [0]  # two-seed statistics are checked in test_tables.py
    params["recipes"]["demo"]["method_overrides"] = {}
    params["recipes"]["demo"]["test"]["chunk"] = 3
    params["ablations"] = {"table2": ["asled_net_t2_none"], "supp1": ["asled_net_s1_c"]}
    params["recipes"]["demo"]["profile"].update(size=64, frames=2, warmup=0, runs=1)
    # one small real capture: 2 blurry frames of 3 integrated source frames each; at 128x96 NIQE (3x3 of its
    # 96-px blocks, 288x288) is unavailable with that reason, which test_real.py checks
    params["real"].update(captures=["demo_0000"])
    params["real"]["demo"].update(frames=2, width=128, height=96, exposure=3, uw_lead=2)
    return params


def copy_workflow(dest: Path, params: dict, with_code: bool = True) -> Path:
    for name in WORKFLOW_FILES:
        src, dst = REPO / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    if with_code:
        for name in CODE_DIRS:
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dvcfile.write(params, dest / "dvc.yaml", root=dest)
    except AsledError:
        pass  # a deliberately bad configuration (the test checks how it is refused): no dvc.yaml to write
    return dest


def tool_env() -> dict[str, str]:
    """The environment with this interpreter's scripts (snakemake, dvc, asled) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=tool_env())
    if result.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").rglob("*.log")))
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}\n{logs}")
    return result


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"), tiny_params())
