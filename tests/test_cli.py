"""The asled command line: model listing and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def asled(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asled", *args], cwd=cwd, capture_output=True, text=True)


def test_models_json_lists_every_model_with_params():
    from asled.models.registry import model_names

    result = asled("models", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert set(listing) == set(model_names())
    assert listing["blur"]["params"] == 0
    assert abs(listing["asled_net"]["params"] - 8.8e6) / 8.8e6 < 0.05


def test_missing_params_file_is_a_clear_error(tmp_path):
    result = asled("data", "prepare", "--split", "test", cwd=tmp_path)
    assert result.returncode == 2
    assert "params.yaml: parameter file is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    result = asled("--params", str(REPO / "params.yaml"), "profile", "no_such_model", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown model 'no_such_model'" in result.stderr
