"""A real single-node SLURM cluster (with accounting) runs the tiny DAG through workflow/profiles/slurm.

.ci/slurm-up.sh installs the Debian packages when they are missing, starts munged, MariaDB,
slurmdbd, slurmctld and slurmd in a temporary folder, and .ci/slurm-down.sh stops them again; the
test skips only when the packages cannot be installed (or nothing may run as root).
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_workflow, tiny_params, tool_env

pytestmark = pytest.mark.slow

UP, DOWN = REPO / ".ci/slurm-up.sh", REPO / ".ci/slurm-down.sh"
SKIP = 77


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cluster_env(folder: Path) -> dict[str, str]:
    """This interpreter's environment plus what slurm-up.sh exported (SLURM_CONF, partition, account)."""
    dump = subprocess.run(["bash", "-c", f'source "{folder}/env" && env -0'], env=tool_env(),
                          capture_output=True, text=True, check=True)
    return dict(item.split("=", 1) for item in dump.stdout.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(UP), str(folder)], capture_output=True, text=True, timeout=900, check=False)
    if up.returncode == SKIP:
        pytest.skip(f"no single-node SLURM on this machine: {up.stderr.strip()[-400:]}")
    pids = [int(line.split()[1]) for line in (folder / "pids").read_text().split("\n") if line.strip()]
    try:
        assert up.returncode == 0, f"slurm-up.sh failed ({up.returncode}):\n{up.stdout[-2000:]}\n{up.stderr[-4000:]}"
        yield folder, cluster_env(folder)
    finally:
        down = subprocess.run(["bash", str(DOWN), str(folder)], capture_output=True, text=True, timeout=300, check=False)
        left = [pid for pid in pids if pid_alive(pid)]
        assert down.returncode == 0 and not left, f"daemons left running: {left}\n{down.stderr}"


def run_env(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(cwd.glob("logs/**/*.log")))
        slurm_logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(cwd.glob(".snakemake/slurm_logs/**/*.log")))
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-6000:]}\n{logs}\n{slurm_logs}")
    return result


def test_tiny_dag_runs_as_slurm_jobs_with_the_profile_resources(slurm, tmp_path: Path):
    _, env = slurm
    workflow = copy_workflow(tmp_path / "wf", tiny_params())
    env = dict(env, OMP_NUM_THREADS="1")
    # The profile as written (GPU counts, memory, runtime, partition and account from the
    # environment, --requeue); only the thread counts shrink to this 2-core machine.
    run_env(["snakemake", "--profile", "workflow/profiles/slurm", "--cores", "2",
             "--set-threads", "train=1", "infer=1", "--slurm-init-seconds-before-status-checks", "2",
             "--slurm-keep-successful-logs"], workflow, env)

    table = pd.read_csv(workflow / "results/tables/demo/table1_main.csv").set_index("label")
    for label in ("Blur frame", "AsLeD-Net"):
        assert math.isfinite(table.loc[label, "psnr"]) and math.isfinite(table.loc[label, "ssim"])
    assert table.loc["AsLeD-Net", "paper_psnr"] == pytest.approx(26.34)

    # every job went through SLURM accounting, on the configured partition and account
    acct = run_env(["sacct", "-X", "--parsable2", "--noheader", "--starttime", "now-1day",
                    "--format=JobIDRaw,State,Partition,Account,AllocTRES%200,Comment%200"], workflow, env).stdout
    jobs = [line.split("|") for line in acct.strip().split("\n") if line]
    mine = [j for j in jobs if "rule_" in j[5]]
    assert mine, acct
    assert {j[1] for j in mine} == {"COMPLETED"}, acct
    assert {j[2] for j in mine} == {env["ASLED_SLURM_PARTITION"]}
    assert {j[3] for j in mine} == {env["ASLED_SLURM_ACCOUNT"]}
    train = [j for j in mine if "rule_train" in j[5]]
    assert train and all("gres/gpu=1" in j[4] for j in train), train
    # requeue on preemption: the jobs were submitted with --requeue
    job_id = train[0][0]
    shown = run_env(["scontrol", "show", "job", job_id], workflow, env).stdout
    assert "Requeue=1" in shown, shown

    nothing = run_env(["snakemake", "--profile", "workflow/profiles/slurm", "--cores", "2", "--dry-run"], workflow, env)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
