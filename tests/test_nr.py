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
    write_png(path, np.ascontiguousarray(skimage.data.coffee()[:288, :384]))  # large enough for NIQE (288x288)
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


def test_niqe_on_a_128x96_frame_is_unavailable_with_the_block_reason(tmp_path, monkeypatch, capsys):
    # 128x96 holds one 96x96 NIQE block (3x3 needed): no number, whatever weights are staged (none here)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "small.png"
    write_png(path, np.ascontiguousarray(skimage.data.astronaut()[100:196, 100:228]))
    assert main(["metrics", "nr", str(path), "--json", "--metric", "niqe", "--metric", "piqe"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["niqe"]["value"] == "unavailable"
    reason = metrics["niqe"]["reason"]
    assert "96x96-pixel blocks" in reason and "288x288" in reason and "128x96 frame holds 1x1" in reason
    assert isinstance(metrics["piqe"]["value"], float)  # 8x6 of PIQE's 16-px blocks: scored


def test_size_rule_is_checked_before_the_metric_runs(monkeypatch):
    from asled.metrics import nr

    calls = []

    class FakeNIQE:
        lower_better = True

        def __call__(self, x):
            import torch

            calls.append(tuple(x.shape[-2:]))
            return torch.tensor([4.0])

    monkeypatch.setattr(nr, "create", lambda name, device, root: (nr.NRMetric(name, True, FakeNIQE()), ""))
    suite = NRSuite(["niqe", "piqe", "brisque"])
    values, reasons = suite.score_with_reasons(np.zeros((96, 128, 3), np.uint8))
    assert values["niqe"] is None and "niqe" in reasons and calls.count((96, 128)) == 2  # piqe, brisque ran
    values, reasons = suite.score_with_reasons(np.zeros((288, 288, 3), np.uint8))
    assert values == {"niqe": 4.0, "piqe": 4.0, "brisque": 4.0} and reasons == {}
    values, reasons = suite.score_with_reasons(np.zeros((12, 15, 3), np.uint8))
    assert all(v is None for v in values.values())
    assert "14x14" in reasons["brisque"] and "16x16" in reasons["piqe"]


def test_min_sizes_follow_the_block_sizes_of_pyiqa():
    import inspect

    from pyiqa.archs import niqe_arch, piqe_arch

    from asled.metrics.nr import MIN_SIZE, size_reason

    # pyiqa 0.1.16: NIQE's blocks are 96x96 (niqe(block_size_h=96, block_size_w=96)), PIQE's 16x16

    assert inspect.signature(niqe_arch.niqe).parameters["block_size_h"].default == MIN_SIZE["niqe"].block
    assert inspect.signature(piqe_arch.piqe).parameters["block_size"].default == MIN_SIZE["piqe"].block
    assert size_reason("niqe", 288, 288) == "" and size_reason("niqe", 287, 600) and size_reason("niqe", 192, 192)
    assert size_reason("musiq", 8, 8) == ""  # resizes its input: no minimum


def test_the_metric_names_have_one_home():
    """asled.metrics.nr.NR_LABELS names the no-reference metrics; the schema, params.yaml and the weights each
    needs follow it."""
    import yaml

    from asled.config import schema
    from asled.metrics.nr import DEFAULT_NR, NR_LABELS
    from asled.weights import METRIC_WEIGHTS

    repo = Path(__file__).resolve().parents[1]
    enum = schema()["properties"]["metrics"]["properties"]["nr"]["items"]["enum"]
    assert list(NR_LABELS) == list(DEFAULT_NR) == enum == list(METRIC_WEIGHTS)
    assert yaml.safe_load((repo / "params.yaml").read_text())["metrics"]["nr"] == list(NR_LABELS)
