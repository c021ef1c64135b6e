"""Result tables: statistics columns, paper values and deltas, and the csv / md / tex / json outputs.

The inputs are real evaluations (`asled.evaluate`) of frames on a small prepared split: the blurry
frames themselves ("Blur frame") and a partial restoration, a blend of blurry and sharp frames
that is closer to the ground truth on every clip ("AsLeD-Net"), with a different blend per seed.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from statistics import mean, stdev

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_dataset import make_split

from asled import config
from asled.errors import DataError
from asled.evaluate import evaluate
from asled.io import read_png, write_png, write_text
from asled.profiling import profile_model
from asled.tables import TABLES, Column, TableContent, TableSpec, write_formats, write_table

CLIPS = {f"{i:04d}": 3 for i in range(6)}  # six clips: the exact Wilcoxon test can reach p = 1/32


def restore_blend(split, out, weight_gt: float) -> None:
    for clip, n in CLIPS.items():
        for k in range(n):
            gt = read_png(split / "gt" / clip / f"{k:04d}.png").astype(np.float64)
            blur = read_png(split / "blur" / clip / f"{k:04d}.png").astype(np.float64)
            write_png(out / clip / f"{k:04d}.png", np.round(weight_gt * gt + (1 - weight_gt) * blur).astype(np.uint8))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results tree for Table 1 with two seeds, evaluated for real; returns (root, params)."""
    root = tmp_path_factory.mktemp("tables")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(dataset="demo", methods=["blur", "asled_net"], seeds=[0, 1])
    params["metrics"]["bootstrap"]["resamples"] = 2000
    paths = config.paths(params)
    split = make_split(root / paths.prepared("test"), CLIPS)
    for seed, weight in ((0, 0.5), (1, 0.6)):
        restore_blend(split, root / "restored" / "asled_net" / str(seed), weight)
        evaluate("asled_net", root / "restored" / "asled_net" / str(seed), split,
                 root / paths.metrics("asled_net", seed), lpips=False)
        evaluate("blur", split / "blur", split, root / paths.metrics("blur", seed), lpips=False)
    for method in ("blur", "asled_net"):
        profile = profile_model(method, size=32, frames=1, warmup=0, runs=1, device="cpu")
        write_text(root / paths.profile(method), json.dumps(profile))
    return root, params


@pytest.fixture
def table1(results, monkeypatch):
    root, params = results
    monkeypatch.chdir(root)
    df = write_table(params, TABLES["table1"])
    return root / config.paths(params).table("table1"), df.set_index("method"), params


def summaries(root, params, method):
    paths = config.paths(params)
    return [json.loads((root / paths.metrics(method, s).with_suffix(".json")).read_text()) for s in params["seeds"]]


def test_table1_values_come_from_the_evaluations(table1, results):
    _, df, params = table1
    root = results[0]
    for method in ("blur", "asled_net"):
        seeds = summaries(root, params, method)
        assert df.loc[method, "psnr"] == pytest.approx(mean(s["psnr"] for s in seeds))
        assert df.loc[method, "warp_error"] == pytest.approx(mean(s["warp_error"] for s in seeds))
        assert df.loc[method, "lpips"] == "unavailable" and "disabled" in df.loc[method, "lpips_note"]
        assert (df.loc[method, "seeds"], df.loc[method, "clips"], df.loc[method, "frames"]) == (2, 6, 18)
    asled_seeds = summaries(root, params, "asled_net")
    assert df.loc["asled_net", "psnr_std"] == pytest.approx(stdev(s["psnr"] for s in asled_seeds))
    assert df.loc["blur", "psnr_std"] == pytest.approx(0.0)  # the blurry input does not depend on the seed
    assert df.loc["blur", "delta_psnr"] == pytest.approx(df.loc["blur", "psnr"] - 18.22)
    assert df.loc["asled_net", "paper_lpips"] == pytest.approx(0.1614)
    assert math.isnan(df.loc["blur", "paper_params_m"]) and math.isnan(df.loc["blur", "time_ms"])
    assert df.loc["asled_net", "params_m"] > 8 and df.loc["asled_net", "time_device"].startswith("cpu")
    # forward GFLOP per frame from the profile; the Blur frame computes nothing (0, like its params)
    assert df.loc["blur", "gflops"] == 0 and df.loc["asled_net", "gflops"] > 1


def test_table1_statistics(table1):
    _, df, _ = table1
    for method in ("blur", "asled_net"):
        assert df.loc[method, "psnr_ci_low"] < df.loc[method, "psnr"] < df.loc[method, "psnr_ci_high"]
    # the blend beats the blurry input on all six clips: exact two-sided Wilcoxon p = 2 / 2^6
    assert df.loc["blur", "compared_to"] == "asled_net" and df.loc["blur", "test_n"] == 6
    assert df.loc["blur", "p_psnr"] == pytest.approx(1 / 32) and df.loc["blur", "sig_psnr"] == "†"
    assert df.loc["blur", "p_ssim"] == pytest.approx(1 / 32)
    assert pd.isna(df.loc["asled_net", "p_psnr"]) and pd.isna(df.loc["asled_net", "compared_to"])


def test_table1_markdown_latex_json(table1):
    prefix, df, _ = table1
    md = prefix.with_suffix(".md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    for name in ("PSNR", "PSNR 95% CI", "SSIM", "LPIPS", "Warp err.", "p (PSNR)", "Params (M)", "Paper PSNR",
                 "ΔPSNR", "ΔLPIPS"):
        assert f"| {name} |" in header
    assert re.search(r"\| Time \(ms per 32x32 frame, cpu: [^|]+\) \|", header)  # the size the profiles ran at
    assert "| GFLOP (per 32x32 frame) | Time (ms" in header and "2 per multiply-accumulate" in md
    blur_row = next(line for line in md.splitlines() if line.startswith("| Blur frame"))
    assert re.search(r"\| \d+\.\d\d ± 0\.00† \| \[\d+\.\d\d, \d+\.\d\d\] \|", blur_row)
    assert "| unavailable |" in blur_row and "| 18.22 |" in blur_row
    assert "LPIPS unavailable: disabled" in md and "Wilcoxon signed-rank" in md and "n = 6" in md
    assert "ground truth itself scores" in md

    tex = prefix.with_suffix(".tex").read_text()
    assert all(cmd in tex for cmd in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}"))
    assert "$^\\dagger$" in tex and "$\\pm$" in tex and "$\\Delta$PSNR" in tex
    assert tex.count("{") == tex.count("}")
    body = tex[tex.index("\\midrule") + len("\\midrule"):tex.index("\\bottomrule")].strip().splitlines()
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    assert len(body) == 2 and all(len(re.findall(r"(?<!\\)&", line)) == n_cols - 1 for line in body)
    code = "\n".join(line for line in tex.splitlines() if not line.startswith("% "))  # comments may hold anything
    # (a % ending a line is LaTeX's own line continuation)
    assert not re.search(r"(?<!\\)[_#]|(?<!\\)%(?!$)", code, flags=re.MULTILINE), "unescaped LaTeX special"

    headline = json.loads(prefix.with_suffix(".json").read_text())
    assert headline["asled_net"]["psnr"] == pytest.approx(df.loc["asled_net", "psnr"])
    assert headline["blur"]["p_psnr"] == pytest.approx(1 / 32) and "psnr_ci_low" in headline["blur"]
    assert "lpips" not in headline["blur"]  # unavailable: no number
    csv = pd.read_csv(prefix.with_suffix(".csv"))
    assert {"psnr_std", "psnr_ci_high", "warp_error", "p_psnr", "sig_psnr", "delta_psnr", "paper_time_ms"} <= set(csv)


def test_ablation_table_tests_against_the_full_model(results, monkeypatch, tmp_path):
    root, params = results
    monkeypatch.chdir(root)
    params = {**params, "seeds": [0], "ablations": {"table2": ["asled_net_t2_none", "asled_net_t2_full"], "supp1": []}}
    paths = config.paths(params)
    for name, source in (("asled_net_t2_none", "blur"), ("asled_net_t2_full", "asled_net")):
        summary = json.loads((root / paths.metrics(source, 0).with_suffix(".json")).read_text())
        write_text(root / paths.metrics(name, 0).with_suffix(".json"), json.dumps(summary))
    df = write_table(params, TABLES["table2"], tmp_path / "t2").set_index("method")
    assert df.loc["asled_net_t2_none", "paper_psnr"] == pytest.approx(25.40)
    assert df.loc["asled_net_t2_full", "delta_ssim"] == pytest.approx(df.loc["asled_net_t2_full", "ssim"] - 0.9167)
    assert df.loc["asled_net_t2_none", "compared_to"] == "asled_net_t2_full"
    assert df.loc["asled_net_t2_none", "sig_psnr"] == "†"
    assert "lpips" not in df.columns and "time_ms" not in df.columns
    for ext in (".csv", ".md", ".tex", ".json"):
        assert (tmp_path / f"t2{ext}").is_file()
    # the reference model is not a row: no test, and the notes say why
    params["ablations"]["table2"] = ["asled_net_t2_none"]
    df = write_table(params, TABLES["table2"], tmp_path / "t2b")
    assert df["compared_to"].isna().all()
    assert "'asled_net_t2_full' is not a row of this table" in (tmp_path / "t2b.md").read_text()


def test_captions_state_the_conventions_the_evaluations_used(table1, results, monkeypatch, tmp_path):
    prefix, _, params = table1
    text = prefix.with_suffix(".md").read_text()
    assert text.startswith("# Table 1: ours on `demo` vs. the paper (RGB, full frame, SSIM 2-D Gaussian)")
    assert "metrics on RGB, full frame; SSIM 2-D Gaussian 11x11 (sigma 1.5) per channel" in text
    tex = prefix.with_suffix(".tex").read_text()
    assert "\\caption{Table 1: ours on demo vs. the paper (RGB, full frame, SSIM 2-D Gaussian)}" in tex
    # the caption follows the evaluation summaries (what was computed), not params.yaml
    root = tmp_path / "results"
    shutil.copytree(results[0], root)
    monkeypatch.chdir(root)
    for method in ("blur", "asled_net"):
        for seed in params["seeds"]:
            path = config.paths(params).metrics(method, seed).with_suffix(".json")
            summary = json.loads(path.read_text())
            summary.update(border=2, y_channel=True, ssim_convention="matlab3d")
            write_text(path, json.dumps(summary))
    write_table(params, TABLES["table1"], tmp_path / "t1")
    text = (tmp_path / "t1.md").read_text()
    assert "(Y, border 2, SSIM 3-D Gaussian (MATLAB))" in text.splitlines()[0]
    assert "metrics on Y channel (BT.601 studio range, MATLAB rgb2ycbcr), 2-pixel border cropped; SSIM 3-D" in text
    # rows scored under different conventions cannot share a table
    summary.update(ssim_convention="skimage_default")
    write_text(path, json.dumps(summary))
    with pytest.raises(DataError, match="evaluated under different conventions"):
        write_table(params, TABLES["table1"], tmp_path / "t1c")


def test_missing_result_is_a_clear_error(results, monkeypatch, tmp_path):
    root, params = results
    monkeypatch.chdir(root)
    params = {**params, "seeds": [0, 7]}
    with pytest.raises(DataError, match=r"blur/seed7\.json: result file is missing"):
        write_table(params, TABLES["table1"], tmp_path / "t1")
    assert not list(tmp_path.glob("t1*"))


def test_other_tables_use_the_same_writer(tmp_path):
    # the API a table not built from FR summaries (e.g. no-reference scores of real captures) calls
    df = pd.DataFrame([{"method": "blur", "label": "Blur frame", "niqe": 5.123, "piqe": None},
                       {"method": "asled_net", "label": "AsLeD-Net", "niqe": 4.5, "piqe": 30.25}])
    columns = [Column("label", "Method", kind="text"), Column("niqe", "NIQE", 3), Column("piqe", "PIQE", 2)]
    content = TableContent(df, columns, "Real captures", notes=["PIQE: unavailable for blur_frame (50% test)"])
    spec = TableSpec("nr_real", "Real captures", build=lambda params: content)
    assert write_table({}, spec, tmp_path / "nr") is df
    md = (tmp_path / "nr.md").read_text()
    assert "| Blur frame | 5.123 | - |" in md and "| AsLeD-Net | 4.500 | 30.25 |" in md
    tex = (tmp_path / "nr.tex").read_text()
    assert "blur\\_frame (50\\% test)" in tex and "\\label{tab:nr}" in tex
    assert json.loads((tmp_path / "nr.json").read_text()) == {"blur": {"niqe": 5.123}, "asled_net": {"niqe": 4.5, "piqe": 30.25}}
    write_formats(tmp_path / "again", content)
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "nr.csv").read_text()
