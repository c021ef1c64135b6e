"""No-reference metrics: `asled metrics nr IMG --json`, staged weights only, unavailable with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from asled.cli import main
from asled.errors import ConfigError
from asled.io import write_png
from asled.metrics.nr import NRSuite


@pytest.fixture
def image(tmp_path, monkeypatch) -> Path:
    # an empty working folder: no data/weights, so only PIQE (no file needed) can run
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "coffee.png"
    write_png(path, np.ascontiguousarray(skimage.data.coffee()[::2, ::2]))
    return path


def test_nr_cli_scores_piqe_and_reports_unstaged_metrics(image, capsys):
    assert main(["metrics", "nr", str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = result["metrics"]
    assert list(metrics) == ["niqe", "brisque", "piqe", "topiq_nr", "musiq", "clipiqa"]
    assert isinstance(metrics["piqe"]["value"], float) and 0 <= metrics["piqe"]["value"] <= 100
    assert metrics["piqe"]["lower_better"] is True
    for name, stage in (("niqe", "niqe"), ("brisque", "brisque"), ("musiq", "musiq"), ("clipiqa", "clip_rn50")):
        assert metrics[name]["value"] == "unavailable"
        assert f"asled weights fetch --only {stage}" in metrics[name]["reason"]


def test_piqe_is_deterministic_and_sees_blur(image):
    import cv2

    from asled.io import read_png

    sharp = read_png(image)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    suite = NRSuite(["piqe"])
    first, again = suite.score(sharp)["piqe"], suite.score(sharp)["piqe"]
    assert first == again
    assert suite.score(blurred)["piqe"] != first


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown no-reference metrics"):
        NRSuite(["niqe", "not_a_metric"])
