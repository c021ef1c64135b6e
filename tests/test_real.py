"""Real captures: demo generation, timestamp synchronisation with an offset, frame folders, errors,
and (slow) the no-reference table produced by the tiny workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asled.data.demo import generate_real_captures
from asled.data.reference import prepare_reference
from asled.errors import DataError
from asled.io import read_png, write_png
from asled.real import ingest_capture, pair_frames, read_stream

EXPOSURE, LEAD, FRAMES = 3, 2, 3


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "data_real"
    generate_real_captures(root, ["cap"], width=64, height=48, frames=FRAMES, exposure=EXPOSURE, uw_lead=LEAD)
    return root


def expected_uw_index(k: int) -> int:
    # W frame k integrates source frames [LEAD + k*E, LEAD + (k+1)*E) of the UW file; its centre is the pair
    return LEAD + k * EXPOSURE + EXPOSURE // 2


def test_timestamp_sync_uses_the_offset(captures, tmp_path):
    info = json.loads((captures / "cap/capture.json").read_text())
    assert info["uw_offset_ms"] == pytest.approx(-1000 * LEAD / 25)
    manifest = ingest_capture(captures / "cap", tmp_path / "synced")
    assert manifest["offset_source"] == "capture.json"
    assert [p["uw_index"] for p in manifest["pairs"]] == [expected_uw_index(k) for k in range(FRAMES)]
    assert all(abs(p["diff_ms"]) < 1.0 for p in manifest["pairs"])
    # the reference is the paired UW frame prepared exactly like training data
    uw_frames, _, _ = read_stream(captures / "cap/UW.avi")
    ref = prepare_reference(uw_frames[expected_uw_index(1)], (64, 48), 0.5, "bicubic")
    assert np.array_equal(read_png(tmp_path / "synced/ref/0001.png"), ref)

    # ignoring the offset pairs each W frame with a UW frame LEAD source frames too early
    naive = ingest_capture(captures / "cap", tmp_path / "naive", offset_ms=0.0)
    assert [p["uw_index"] for p in naive["pairs"]] == [expected_uw_index(k) - LEAD for k in range(FRAMES)]


def test_frame_folders_with_fps(tmp_path):
    capture = tmp_path / "folders"
    rng = np.random.default_rng(0)
    for k in range(2):
        write_png(capture / "W" / f"{k:04d}.png", rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    for j in range(8):
        write_png(capture / "UW" / f"{j:04d}.png", np.full((32, 48, 3), j * 10, np.uint8))
    (capture / "capture.json").write_text(json.dumps({"fps": {"W": 5, "UW": 20}, "uw_offset_ms": 40}))
    manifest = ingest_capture(capture, tmp_path / "out")
    # W frames stand for 100 and 300 ms; UW frame j for 25 + 50 j ms, i.e. 65 + 50 j on W's clock
    assert [(p["w_index"], p["uw_index"]) for p in manifest["pairs"]] == [(0, 1), (1, 5)]
    assert read_png(tmp_path / "out/ref/0001.png").mean() == pytest.approx(50, abs=1)


def test_pairs_outside_the_other_stream_are_dropped():
    pairs = pair_frames(np.array([20.0, 60.0, 100.0]), np.array([55.0, 95.0]), 40.0, 0.0)
    assert [(w, u) for w, u, _ in pairs] == [(1, 0), (2, 1)]


def test_missing_stream_names_the_path_and_writes_nothing(tmp_path):
    capture = tmp_path / "only_w"
    write_png(capture / "W" / "0000.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"only_w: no UW stream"):
        ingest_capture(capture, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="frame folders carry no timestamps"):
        write_png(capture / "UW" / "0000.png", np.zeros((32, 32, 3), np.uint8))
        ingest_capture(capture, tmp_path / "out")


@pytest.mark.slow
def test_tiny_workflow_writes_the_nr_table(tiny_workflow: Path):
    from conftest import run, tiny_params

    repo = tiny_workflow
    run(["snakemake", "--cores", "2", "results/tables/demo/table_nr_real.csv"], repo)
    table = pd.read_csv(repo / "results/tables/demo/table_nr_real.csv").set_index("method")
    assert set(table.index) == set(tiny_params()["methods"])  # every method of Table 1, no other
    for method in table.index:
        assert float(table.loc[method, "piqe"]) > 0
        for name in ("brisque", "topiq_nr", "musiq", "clipiqa", "niqe"):
            value = table.loc[method, name]
            assert value == "unavailable" or np.isfinite(float(value))
    markdown = (repo / "results/tables/demo/table_nr_real.md").read_text()
    assert "PIQE" in markdown and "unavailable" in markdown
    # 128x96 captures hold one NIQE block: never a number, and the table says why and at what size
    assert (table["niqe"] == "unavailable").all()
    assert "niqe unavailable: niqe needs a frame of at least 288x288 pixels" in markdown
    assert "(full frame 128x96, pyiqa definitions)" in markdown.splitlines()[0]
    assert (repo / "results/tables/demo/table_nr_real.tex").read_text().startswith("%")
    assert (repo / "data/weights/MANIFEST.json").is_file()


def test_nr_scores_of_frames_too_small_for_niqe_say_why(tmp_path, monkeypatch):
    import skimage.data

    from asled.real_nr import score_method

    monkeypatch.chdir(tmp_path)  # no staged weights: PIQE alone runs
    folder = tmp_path / "restored" / "cap"
    for k in range(2):
        write_png(folder / f"{k:04d}.png", np.ascontiguousarray(skimage.data.astronaut()[k * 50:k * 50 + 96, :128]))
    summary = score_method("blur", {"cap": folder}, tmp_path / "scores.csv", ["niqe", "piqe"])
    assert summary["sizes"] == ["128x96"]
    assert summary["metrics"]["niqe"]["value"] is None
    assert "at least 288x288 pixels" in summary["metrics"]["niqe"]["reason"]
    assert summary["metrics"]["piqe"]["frames_scored"] == 2
