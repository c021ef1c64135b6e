"""params.yaml validation: bad configurations fail with a message that names the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from asled import config
from asled.errors import ConfigError
from conftest import REPO


def write_params(tmp_path: Path, mutate) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mutate(params)
    (tmp_path / "workflow/schemas").mkdir(parents=True)
    shutil.copy(REPO / config.SCHEMA_RELATIVE, tmp_path / config.SCHEMA_RELATIVE)
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
    ],
)
def test_bad_params_name_the_key(tmp_path, mutate, needle):
    path = write_params(tmp_path, mutate)
    with pytest.raises(ConfigError, match=None) as info:
        config.load_params(path)
    assert needle in str(info.value) and str(path) in str(info.value)


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
    """Every `metrics` key that changes per-frame scores is a parameter of the evaluate step (DVC and
    Snakemake), and of no step before it; the tables follow through their inputs."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    keys = [f"metrics.{k}" for k in config.EVALUATE_METRIC_KEYS]
    assert {"metrics.ssim", "metrics.y_channel", "metrics.border"} <= set(keys)
    assert dvc["evaluate"]["params"] == keys
    for name in ("get_data", "prepare_split", "train", "infer"):
        stage = dvc.get(name, {}).get("do", dvc.get(name, {}))
        assert not [p for p in stage.get("params", []) if isinstance(p, str) and p.startswith("metrics")], name
    assert any("results/metrics" in str(d) for d in dvc["table_table1"]["deps"])
    params = config.load_params(REPO / "params.yaml")
    assert set(config.evaluate_settings(params)) == set(config.EVALUATE_METRIC_KEYS)
    assert "metrics=asled_config.evaluate_settings(config)" in (REPO / "workflow/rules/evaluate.smk").read_text()
