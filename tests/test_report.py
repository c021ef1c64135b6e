"""The HTML report: figures drawn from real results, and the report opened in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run
from skimage import data as skdata

from asled import config, figures
from asled.io import read_png

# --- fast checks of the drawing code on real images --------------------------------------------------


def test_dis_flow_recovers_a_known_shift_of_a_real_photo():
    image = skdata.astronaut()[100:292, 100:356]
    shifted = np.roll(image, shift=(2, 3), axis=(0, 1))  # content moves 3 px right, 2 px down
    flow = figures.dis_flow(image, shifted)
    inner = flow[20:-20, 20:-20]
    assert np.median(inner[..., 0]) == pytest.approx(3, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(2, abs=0.25)


def test_flow_colours_code_direction_as_hue_and_magnitude_as_brightness():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:2, :, 0] = 2.0  # right, strongest
    flow[2:, :, 1] = 1.0  # down, half as strong
    rgb, top = figures.flow_to_rgb(flow)
    assert top == pytest.approx(2.0)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    assert hsv[0, 0, 2] == 255 and abs(int(hsv[3, 0, 2]) - 127) <= 2
    assert hsv[0, 0, 0] != hsv[3, 0, 0]


def test_bar_chart_and_report_table_without_confidence_intervals(tmp_path: Path):
    table = tmp_path / "t.csv"
    pd.DataFrame({"label": ["Blur frame", "AsLeD-Net"], "psnr": [20.5, 23.25], "ssim": [0.7, 0.8],
                  "params_m": [0.0, 8.8], "paper_psnr": [18.22, 26.34], "paper_ssim": [0.8009, 0.9167]}).to_csv(table)
    out = figures.psnr_bar_chart(table, tmp_path / "bar.png")
    assert read_png(out).std() > 0
    compact = pd.read_csv(figures.report_table(table, tmp_path / "r.csv"), dtype=str)
    assert list(compact["PSNR (dB) [CI]"]) == ["20.50", "23.25"]
    assert list(compact["Paper PSNR"]) == ["18.22", "26.34"]


def test_worst_blur_window_finds_the_blurred_patch():
    gt = (skdata.astronaut()[:96, :128]).copy()
    blur = gt.copy()
    blur[40:72, 80:112] = cv2.GaussianBlur(gt, (9, 9), 3)[40:72, 80:112]
    assert figures.worst_blur_window(blur, gt, 32) == (40, 80)


# --- the report of the tiny workflow, rendered by a browser ---------------------------------------------


@pytest.fixture(scope="module")
def report(tiny_workflow: Path) -> Path:
    run(["snakemake", "--cores", "2"], tiny_workflow)
    run(["snakemake", "--cores", "2", "--report", "results/report.html"], tiny_workflow)
    return tiny_workflow / "results/report.html"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = subprocess.run(["bash", str(REPO / ".ci/chromium.sh")], capture_output=True, text=True, timeout=900, check=False)
    if found.returncode == 77:
        pytest.skip(f"no headless Chromium: {found.stderr.strip()}")
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().splitlines()[-1]


def browser(chromium: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--virtual-time-budget=15000", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_demo_target_builds_every_figure(report: Path):
    workflow = report.parents[1]
    paths = config.Paths("demo")
    figure_files = [paths.figure(kind) for kind in config.FIGURE_FILES]
    for path in [*figure_files, paths.report_table("table1"), paths.report_gallery]:
        assert (workflow / path).is_file(), path
    for path in figure_files:
        image = read_png(workflow / path)
        assert image.shape[0] > 100 and image.std() > 10, path


@pytest.mark.slow
def test_browser_renders_tables_and_figures(report: Path, chromium: str, tmp_path: Path):
    dom = browser(chromium, "--dump-dom", report.as_uri()).stdout
    tables = re.findall(r"<table.*?</table>", dom, flags=re.DOTALL)
    assert any("AsLeD-Net" in t and "Blur frame" in t and "Paper PSNR" in t for t in tables), dom[:2000]
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert len(images) >= len(config.FIGURE_FILES), f"{len(images)} inline images"
    for title in figures.GALLERY.values():
        assert title in dom, title
    shot = tmp_path / "report.png"
    browser(chromium, f"--screenshot={shot}", "--window-size=1400,2400", report.as_uri())
    pixels = read_png(shot)
    assert pixels.std() > 10, "the screenshot is blank"


