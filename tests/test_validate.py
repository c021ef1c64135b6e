"""Raw-layout validation through the CLI (`asled data validate --summary`), the data summary, bad input
in the data and in the config, and the whole DAG on a RealMCVSR-layout folder outside the repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, run, tiny_params
from damage import DAMAGES

from asled import cli, config
from asled.data.demo import generate_demo
from asled.data.prepare import prepare_split
from asled.errors import ConfigError

SMALL = {"width": 64, "height": 48, "frames_per_clip": 14, "clips": {"train": 2, "valid": 1, "test": 2}}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "RealMCVSR"
    generate_demo(root, seed=5, **SMALL)
    return root


@pytest.fixture()
def workdir(demo_root, tmp_path, monkeypatch) -> Path:
    """A working folder whose params.yaml selects `realmcvsr` with `root` at a private copy of the demo."""
    root = tmp_path / "elsewhere" / "RealMCVSR"
    shutil.copytree(demo_root, root)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"] = "realmcvsr"
    params["datasets"]["realmcvsr"]["root"] = str(root)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def validate_cli(workdir: Path) -> int:
    return cli.main(["--params", str(workdir / "params.yaml"), "data", "validate", "--summary"])


def test_summary_counts_what_is_on_disk(workdir):
    assert validate_cli(workdir) == 0
    root = workdir / "elsewhere/RealMCVSR"
    summary = json.loads((workdir / "results/data_summary/realmcvsr.json").read_text())
    for split in ("train", "valid", "test"):
        # counted independently: clip folders and PNG files under each camera
        for camera in ("UW", "W"):
            clips = sorted(p.name for p in (root / split / "HR" / camera).iterdir())
            frames = len(list((root / split / "HR" / camera).rglob("*.png")))
            assert summary["splits"][split] == {"clips": len(clips), "frames": frames}
            assert sorted(summary["clip_frames"][split]) == clips
    assert summary["dataset"] == "realmcvsr" and summary["root"] == str(root)
    assert summary["frame_size"] == {"UW": [64, 48], "W": [64, 48]}
    markdown = (workdir / "results/data_summary/realmcvsr.md").read_text()
    assert "| train | 2 | 28 | 14 / 14 |" in markdown and "W 64x48" in markdown


# ------------------------------------------------------------------------------------ bad data


@pytest.mark.parametrize("damage, message", DAMAGES, ids=[d.__name__ for d, _ in DAMAGES])
def test_bad_data_is_named_and_writes_no_summary(workdir, capsys, damage, message):
    bad = damage(workdir / "elsewhere/RealMCVSR/test/HR")
    assert validate_cli(workdir) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"asled: error: {bad}:"), error
    assert message in error
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("damage, message", DAMAGES, ids=[d.__name__ for d, _ in DAMAGES])
def test_bad_data_stops_prepare_with_no_output(workdir, damage, message):
    root = workdir / "elsewhere/RealMCVSR"
    bad = damage(root / "test" / "HR")
    out = workdir / "data/prepared/realmcvsr/test"
    with pytest.raises(Exception) as error:
        prepare_split(root, "test", out)
    assert str(error.value).startswith(f"{bad}:") and message in str(error.value)
    assert not (workdir / "data").exists()


# ---------------------------------------------------------------------------------- bad config


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("cameras", ["UW", "W", "X"], "datasets.realmcvsr.cameras lists 'X', which is not a RealMCVSR camera"),
        ("splits", ["train", "valid", "tset"], "datasets.realmcvsr.splits lists 'tset', which is not a RealMCVSR split"),
        ("cameras", ["UW"], "datasets.realmcvsr.cameras lacks 'W'"),
        ("splits", ["train", "test"], "datasets.realmcvsr.splits lacks 'valid'"),
    ],
)
def test_unknown_split_or_camera_in_the_config(workdir, capsys, key, value, message):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["realmcvsr"][key] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ConfigError, match=message):
        config.load_params(workdir / "params.yaml")
    assert validate_cli(workdir) == 2
    assert f"{workdir / 'params.yaml'}: {message}" in capsys.readouterr().err
    assert not (workdir / "results").exists()


def test_telephoto_can_be_added_and_is_then_required(workdir, capsys):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["realmcvsr"]["cameras"] = ["UW", "W", "T"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert validate_cli(workdir) == 2
    assert "elsewhere/RealMCVSR/train/HR/T: camera folder is missing" in capsys.readouterr().err


# ------------------------------------------------------------------------- the DAG on that folder


@pytest.mark.slow
def test_the_whole_dag_runs_on_a_realmcvsr_folder_elsewhere(tmp_path):
    """Acceptance: `datasets.realmcvsr.root` at a RealMCVSR-layout folder; the DAG runs unchanged."""
    params = tiny_params()
    demo = params["datasets"]["demo"]
    root = tmp_path / "elsewhere" / "RealMCVSR"
    generate_demo(root, seed=0, width=demo["width"], height=demo["height"],
                  frames_per_clip=demo["frames_per_clip"], clips=demo["clips"])
    before = {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}
    params["dataset"] = "realmcvsr"
    # the tiny recipe, and no real captures (their rules do not read the dataset): the data path is the point
    params["datasets"]["realmcvsr"].update(root=str(root), recipe="demo")
    params["real"]["captures"] = []
    workflow = copy_workflow(tmp_path / "workflow", params)
    run(["snakemake", "--cores", "2"], workflow)
    # the user's folder is a plain input: nothing is out of date afterwards
    again = run(["snakemake", "--cores", "2"], workflow)
    assert "Nothing to be done" in again.stdout + again.stderr
    table = (workflow / "results/tables/realmcvsr/table1_main.csv").read_text()
    assert "Blur frame" in table and "AsLeD-Net" in table
    summary = json.loads((workflow / "results/data_summary/realmcvsr.json").read_text())
    assert summary["root"] == str(root)
    assert {s: summary["splits"][s]["clips"] for s in ("train", "valid", "test")} == demo["clips"]
    manifest = json.loads((workflow / "data/prepared/realmcvsr/train/manifest.json").read_text())
    assert manifest["raw_root"] == str(root) and (workflow / "data/prepared/realmcvsr/train/store").is_dir()
    assert not (workflow / "data/raw").exists()  # nothing was downloaded or copied
    assert {str(p): p.stat().st_mtime_ns for p in root.rglob("*")} == before  # the user's folder is untouched
