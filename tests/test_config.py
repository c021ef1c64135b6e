"""params.yaml validation: bad configurations fail with a message that names the key."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from asled import config
from asled.errors import ConfigError
from conftest import REPO, copy_workflow, tiny_params, tool_env


def write_params(tmp_path: Path, mutate) -> Path:
    """params.yaml, changed by `mutate`, alone in a folder: the schema comes from the package."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repository_params_are_valid():
    params = config.load_params(REPO / "params.yaml")
    assert params["dataset"] in params["datasets"]
    assert config.train_settings(params, "asled_net")["charbonnier_eps"] == 1e-3


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p.update(dataset="nope"), "dataset 'nope'"),
        (lambda p: p["blur"].update(window=6), "blur.window must be odd"),
        (lambda p: p["blur"].update(space="lab"), "blur/space"),
        (lambda p: p.update(seeds=[]), "seeds"),
        (lambda p: p["recipes"]["demo"]["train"].update(lr=-1), "recipes/demo/train/lr"),
        (lambda p: p.update(unknown_key=1), "unknown_key"),
        (lambda p: p["metrics"].update(ssim="matlab"), "metrics/ssim"),
        # model names, against the catalogue (asled.config.check_model_names)
        (lambda p: p["methods"].append("nafnett"), "methods names unknown model 'nafnett'"),
        (lambda p: p["ablations"]["table2"].append("asled_net_t2_all"), "ablations.table2 names unknown model"),
        (lambda p: p["ablations"]["supp1"].append("asled_net_s1_z"), "ablations.supp1 names unknown model"),
        (lambda p: p["metrics"]["compare_to"].update(table1="asled"), "metrics.compare_to.table1 names unknown"),
        (lambda p: p.update(method_overrides={"edvr_m": {"batch_size": 2}}), "method_overrides names unknown"),
        (lambda p: p["recipes"]["demo"]["model_overrides"].update(nafnet_x={"width": 8}),
         "recipes.demo.model_overrides names unknown model 'nafnet_x'"),
        # ranges: one home, the schema, which `asled train` also checks against (train.check_settings)
        (lambda p: p["recipes"]["demo"]["train"].update(iterations=0), "recipes/demo/train/iterations"),
        (lambda p: p["recipes"]["demo"]["method_overrides"].update(nafnet={"batch_size": 0}),
         "recipes/demo/method_overrides/nafnet/batch_size"),
        (lambda p: p["recipes"]["demo"]["train"].update(precision="fp16"), "recipes/demo/train/precision"),
        (lambda p: p["datasets"]["demo"].update(cameras=["W"]), "datasets.demo.cameras lacks 'UW'"),
        (lambda p: p["reference"].update(fov_fraction=1.5), "reference/fov_fraction"),
        (lambda p: p["metrics"]["compare_to"].update(table3="asled_net"), "table3"),
    ],
)
def test_bad_params_name_the_key(tmp_path, mutate, needle):
    path = write_params(tmp_path, mutate)
    with pytest.raises(ConfigError, match=None) as info:
        config.load_params(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_known_model_names_are_listed_in_the_error(tmp_path):
    path = write_params(tmp_path, lambda p: p["methods"].append("nafnett"))
    with pytest.raises(ConfigError, match="known models: .*asled_net_t2_full.*nafnet") as info:
        config.load_params(path)
    assert "asled models" in str(info.value)


def test_training_ranges_have_one_home():
    """`asled train` (train.check_settings) refuses exactly what the schema refuses: it checks against it."""
    from asled.train import check_settings

    settings = config.train_settings(config.load_params(REPO / "params.yaml"), "asled_net")
    assert check_settings({**settings, "iterations": 1})["iterations"] == 1
    schema_train = config.schema()["$defs"]["train"]["properties"]
    for key, bad in (("iterations", 0), ("batch_size", 0), ("num_workers", -1), ("precision", "fp16"),
                     ("spynet", "imagenet"), ("flow_lr_mul", -0.5)):
        assert key in schema_train
        with pytest.raises(ConfigError, match=f"'{key}'"):
            check_settings({**settings, key: bad})
    with pytest.raises(ConfigError, match="'lr' is a required property"):
        check_settings({k: v for k, v in settings.items() if k != "lr"})


def test_schema_ships_in_the_package_and_applies_anywhere(tmp_path):
    """No schema beside params.yaml (an installed package, another folder): it is still applied."""
    assert config.SCHEMA_FILE.is_file() and config.SCHEMA_FILE.parent == Path(config.__file__).parent
    assert not (REPO / "workflow/schemas").exists()
    path = write_params(tmp_path, lambda p: p["blur"].update(space="lab"))
    assert not (tmp_path / "workflow").exists()
    with pytest.raises(ConfigError, match="blur/space"):
        config.load_params(path)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'asled = ["*.yaml"' in pyproject  # package-data: the schema travels with the wheel


def test_differing_keys_name_every_changed_leaf():
    ours = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert config.differing_keys(ours, ours) == []
    assert config.differing_keys(ours, {"a": {"b": 1, "c": [3]}, "e": 2}) == ["a.c", "d", "e"]


def test_paper_protocol_is_one_switch(tmp_path):
    params = config.load_params(write_params(tmp_path, lambda p: p.update(dataset="realmcvsr")))
    settings = config.train_settings(params, "asled_net")
    assert (settings["iterations"], settings["batch_size"], settings["crop"], settings["frames"]) == (300000, 4, 128, 7)
    assert config.paths(params).raw == Path("data/raw/realmcvsr")


def test_method_overrides_apply_to_one_method(tmp_path):
    params = config.load_params(
        write_params(tmp_path, lambda p: p.update(method_overrides={"asled_net": {"batch_size": 2}}))
    )
    assert config.train_settings(params, "asled_net")["batch_size"] == 2
    assert config.train_settings(params, "blur")["batch_size"] == 1


def test_recipe_overrides_stay_in_their_recipe(tmp_path):
    def edit(p):
        p["recipes"]["demo"]["method_overrides"] = {"asled_net": {"iterations": 3}}
        p["method_overrides"] = {"asled_net": {"crop": 32}}

    params = config.load_params(write_params(tmp_path, edit))
    demo = config.train_settings(params, "asled_net")
    assert (demo["iterations"], demo["crop"]) == (3, 32)  # the user's override applies on top
    params["dataset"] = "realmcvsr"
    paper = config.train_settings(params, "asled_net")
    assert (paper["iterations"], paper["crop"]) == (300000, 32)


def test_bad_ssim_convention_lists_the_choices(tmp_path):
    path = write_params(tmp_path, lambda p: p["metrics"].update(ssim="matlab"))
    with pytest.raises(ConfigError, match="metrics/ssim.*'matlab' is not one of.*gaussian2d.*matlab3d.*skimage_def"):
        config.load_params(path)


def test_metric_conventions_re_run_only_evaluation_and_tables():
    """Every `metrics` key that changes per-frame scores is a parameter of each evaluate job (the stage table
    both front-ends read), and of no step before it; the tables follow through their inputs."""
    from asled.stages import Pipeline

    keys = [f"metrics.{k}" for k in config.EVALUATE_METRIC_KEYS]
    assert {"metrics.ssim", "metrics.y_channel", "metrics.border"} <= set(keys)
    jobs = Pipeline(config.read_yaml(REPO / "params.yaml"), REPO).jobs()
    for job in jobs:
        metric_keys = [key for _, key in job.params if key.startswith("metrics.")]
        if job.stage == "evaluate":
            assert metric_keys == keys, job.name
        elif job.stage in ("get_data", "prepare_split", "train", "infer"):
            assert not metric_keys, job.name
    (table1,) = [job for job in jobs if job.stage == "table_table1"]
    assert any("results/metrics" in dep for dep in table1.deps)
    params = config.load_params(REPO / "params.yaml")
    assert set(config.evaluate_settings(params)) == set(config.EVALUATE_METRIC_KEYS)


# ----------------------------------------------------------------------------- at DAG build (Snakemake)


def dry_run(tmp_path: Path, params: dict, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    workdir = copy_workflow(tmp_path / "wf", params)
    start = time.monotonic()
    result = subprocess.run(["snakemake", "-n", "--cores", "1", *extra], cwd=workdir, capture_output=True,
                            text=True, timeout=120, env=tool_env())
    return result, time.monotonic() - start


def test_unknown_method_fails_the_dag_build_within_seconds(tmp_path):
    params = tiny_params()
    params["methods"].append("nafnett")
    result, elapsed = dry_run(tmp_path, params)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "methods names unknown model 'nafnett'" in output and "known models: " in output, output[-2000:]
    assert "Job stats" not in output  # nothing was scheduled
    assert elapsed < 30, elapsed


def test_snakemake_config_overrides_are_refused(tmp_path):
    """`--config` would change the DAG but not the jobs (each `asled` verb reads params.yaml)."""
    result, _ = dry_run(tmp_path, tiny_params(), "--config", "seeds=[3]")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "--config/--configfile changed seeds" in output and "edit params.yaml" in output, output[-2000:]
    assert "dvc exp run -S" in output
