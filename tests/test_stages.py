"""One stage table, two front-ends (asled/stages.py): the committed dvc.yaml is what `asled workflow dvc` writes,
every Snakemake job agrees with its DVC stage on command, inputs, outputs and params, code edits reach only the
jobs that run that code, and no result of one dataset lands on another's path."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml

from asled import config, dvcfile
from asled.stages import CATALOG_FILE, PARAMS_FILE, Pipeline
from conftest import REPO, copy_workflow, tiny_params


def repo_params() -> dict:
    return config.read_yaml(REPO / "params.yaml")


def test_committed_dvc_yaml_is_what_the_stage_table_writes():
    expected = dvcfile.render(repo_params(), REPO)
    assert (REPO / "dvc.yaml").read_text() == expected, "dvc.yaml is stale: run `asled workflow dvc` and commit it"


def test_check_refuses_a_stale_dvc_yaml_naming_the_command(tmp_path: Path):
    params = repo_params()
    dvc = tmp_path / "dvc.yaml"
    dvcfile.write(params, dvc, root=REPO)
    params["seeds"] = [0, 1, 2]
    with pytest.raises(config.ConfigError, match="asled workflow dvc"):
        dvcfile.check(params, dvc, root=REPO)


# ----------------------------------------------------------------------------- Snakemake against dvc.yaml


def snakemake_jobs(project: Path) -> list:
    """Every job of the project's default target, as Snakemake builds the DAG (nothing runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    cwd = os.getcwd()
    os.chdir(project)
    try:
        with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=2), snakefile=Path("Snakefile"))
            workflow = workflow_api.dag(DAGSettings(forceall=True)).workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            return [job for job in workflow.dag.jobs if job.rule.name != "all"]
    finally:
        os.chdir(cwd)


def verb_of(shellcmd: str) -> str:
    """A rule's shell command less what only Snakemake adds: threads, workers and the log redirection."""
    command = re.sub(r"\s*>>?\s*\S+\s+2>&1\s*$", "", shellcmd.strip())
    return re.sub(r"\s+--(threads|workers) \d+", "", command)


def dvc_params(stage: dict) -> set[str]:
    keys = set()
    for entry in stage.get("params", []):
        if isinstance(entry, str):
            keys.add(f"{PARAMS_FILE}:{entry}")
        else:
            keys |= {f"{file}:{key}" for file, names in entry.items() for key in names}
    return keys


def dvc_paths(entries: list) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for e in entries}


def persisted(stage: dict) -> set[str]:
    return {next(iter(e)) for e in stage.get("outs", []) if isinstance(e, dict) and next(iter(e.values())).get("persist")}


def assert_front_ends_agree(project: Path) -> int:
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    pipeline = Pipeline(config.read_yaml(project / "params.yaml"), project)
    jobs = snakemake_jobs(project)
    names = {pipeline.job(job.rule.name, dict(job.wildcards.items())).name: job for job in jobs}
    assert set(names) == set(stages) - {dvcfile.CHECK_STAGE}
    for name, job in names.items():
        stage = stages[name]
        assert verb_of(job.shellcmd) == stage["cmd"], name
        assert set(job.input) == set(stage.get("deps", [])) - {dvcfile.CHECK_OUTPUT}, name
        dvc_outs = dvc_paths(stage.get("outs", []) + stage.get("metrics", [])) - persisted(stage)
        assert {str(out).rstrip("/") for out in job.output} == dvc_outs, name
        assert set(dict(job.params.items()).get("values", {})) == dvc_params(stage), name
    return len(names)


def test_every_snakemake_job_is_its_dvc_stage_in_the_repository():
    assert assert_front_ends_agree(REPO) > 100


def test_front_ends_agree_with_every_table_and_real_captures(tmp_path: Path):
    params = tiny_params()
    params["tables"] = ["table1", "table2", "supp1"]
    project = copy_workflow(tmp_path / "project", params)
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert {"table_table2", "table_supp1", "train-asled_net_t2_none-seed0", "restore_real-dbn-seed0-demo_0000"} <= set(stages)
    assert assert_front_ends_agree(project) == len(stages) - 1


# ----------------------------------------------------------------------------- what an edit re-runs


def jobs_running(pipeline: Pipeline, source: str) -> set[str]:
    return {job.name for job in pipeline.jobs() if source in job.code}


def test_a_model_file_reaches_that_models_jobs_only():
    pipeline = Pipeline(repo_params(), REPO)
    reached = jobs_running(pipeline, "baselines/nafnet.py")
    seeds = repo_params()["seeds"]
    expected = {f"{stage}-nafnet-seed{s}" for stage in ("train", "infer") for s in seeds} | {"profile-nafnet"}
    expected |= {f"restore_real-nafnet-seed{s}-{c}" for s in seeds for c in pipeline.captures()}
    assert reached == expected
    # and its catalogue entry is a parameter of the same jobs
    with_entry = {job.name for job in pipeline.jobs() if (CATALOG_FILE, "nafnet") in job.params}
    assert with_entry == expected


@pytest.mark.parametrize("metric", ["asled/metrics/perceptual.py", "asled/metrics/conventions.py",
                                    "asled/metrics/temporal.py", "asled/metrics/nr.py", "asled/metrics/fr.py",
                                    "asled/metrics/lpips_trunk.py", "asled/metrics/brisque_svm.py"])
def test_a_metric_reaches_evaluation_and_tables_not_training(metric: str):
    """(PSNR itself, asled/metrics/pixels.py, is training's validation metric: it re-runs training too.)"""
    reached = {name.split("-")[0] for name in jobs_running(Pipeline(repo_params(), REPO), metric)}
    # the tables name the SSIM convention in their captions; staging the metrics' weights converts them
    scoring = {"evaluate", "score_real", "table_nr_real", "table_table1", "fetch_weights"}
    assert reached and reached <= scoring, reached


def test_editing_the_tables_reruns_tables_only():
    reached = {name.split("-")[0] for name in jobs_running(Pipeline(repo_params(), REPO), "asled/stats.py")}
    assert reached <= {"table_table1", "table_nr_real", "score_real"}, reached
    assert "train" not in reached and "evaluate" not in reached


# ----------------------------------------------------------------------------- results per dataset


def test_no_output_of_realmcvsr_lands_on_a_demo_path(tmp_path: Path):
    demo = Pipeline(repo_params(), REPO)
    params = copy.deepcopy(repo_params())
    params["dataset"] = "realmcvsr"
    realmcvsr = Pipeline(params, REPO)

    def outputs(pipeline: Pipeline, shared: bool) -> dict[str, str]:
        return {out.path: job.name for job in pipeline.jobs() for out in job.outs.values()
                if pipeline.stage(job.stage).shared == shared}

    clash = set(outputs(demo, False)) & set(outputs(realmcvsr, False))
    assert not clash, sorted(clash)[:5]
    # the shared steps (weights staging, real-capture ingest) read no dataset key and write the same files
    assert outputs(demo, True) == outputs(realmcvsr, True)
    for job in demo.jobs():
        if demo.stage(job.stage).shared:
            assert not any(key.startswith(("dataset", "datasets", "recipes")) for _, key in job.params), job.name
    logs = {demo.log(s.name) for s in demo.stages() if not s.shared}
    assert not logs & {realmcvsr.log(s.name) for s in realmcvsr.stages()}
