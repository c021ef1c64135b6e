"""Compile result tables: our numbers beside the paper's, as csv, Markdown and LaTeX."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import mean, stdev

import pandas as pd

from asled import config
from asled.errors import DataError
from asled.io import write_text
from asled.models.registry import entry
from asled.paper import paper_table

UNAVAILABLE = "unavailable"


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: result file is missing; run the step that produces it (snakemake {path})")
    return json.loads(path.read_text())


def seed_stats(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std over seeds; std is None with a single seed."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return mean(values), (stdev(values) if len(values) > 1 else None)


def method_row(params: dict, method: str) -> dict:
    paths = config.paths(params)
    spec = entry(method)
    label = spec.get("label", method)
    summaries = [read_json(paths.metrics(method, seed).with_suffix(".json")) for seed in params["seeds"]]
    profile = read_json(paths.profile(method))
    row: dict = {"method": method, "label": label, "seeds": len(summaries), "frames": summaries[0]["frames"]}
    for metric in ("psnr", "ssim", "lpips"):
        row[metric], row[f"{metric}_std"] = seed_stats([s.get(metric) for s in summaries])
    reasons = {s.get("lpips_unavailable") for s in summaries if s.get("lpips") is None}
    row["lpips_note"] = "; ".join(sorted(r for r in reasons if r)) or ""
    if row["lpips"] is None:
        row["lpips"] = UNAVAILABLE
    row["params_m"] = profile["params"] / 1e6
    row["time_ms"] = profile["ms_per_frame"] if profile["params"] > 0 else None
    row["time_device"] = profile["device"]
    paper = paper_table("table1")["rows"].get(spec.get("paper_row", label), {})
    for key in ("psnr", "ssim", "lpips", "params_m", "time_ms"):
        row[f"paper_{key}"] = paper.get(key)
    for key in ("psnr", "ssim", "lpips"):
        ours, theirs = row[key], row[f"paper_{key}"]
        row[f"delta_{key}"] = ours - theirs if isinstance(ours, float) and theirs is not None else None
    return row


def build_table1(params: dict) -> pd.DataFrame:
    rows = [method_row(params, method) for method in params["methods"]]
    return pd.DataFrame(rows)


def fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def with_std(value, std, digits: int) -> str:
    text = fmt(value, digits)
    return text if std is None or (isinstance(std, float) and math.isnan(std)) else f"{text} ± {std:.{digits}f}"


def table1_markdown(df: pd.DataFrame, params: dict) -> str:
    dataset = params["dataset"]
    device = df["time_device"].dropna().iloc[0] if df["time_device"].notna().any() else "-"
    lines = [
        f"# Table 1 — ours on `{dataset}` vs. the paper on RealMCVSR",
        "",
        f"Ours: {dataset} test split, recipe `{config.dataset_settings(params)['recipe']}`, "
        f"seeds {params['seeds']} (mean ± std over seeds). Time: ms per {config.profile_settings(params)['size']}"
        f"x{config.profile_settings(params)['size']} frame on {device}. "
        f"Paper: {paper_table('table1')['source']}.",
        "",
        "| Method | Ours PSNR | Ours SSIM | Ours LPIPS | Ours Params (M) | Ours Time (ms) "
        "| Paper PSNR | Paper SSIM | Paper LPIPS | Paper Params (M) | Paper Time (ms) | ΔPSNR |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        lines.append(
            f"| {r['label']} | {with_std(r['psnr'], r['psnr_std'], 2)} | {with_std(r['ssim'], r['ssim_std'], 4)} "
            f"| {fmt(r['lpips'], 4)} | {fmt(r['params_m'] if r['params_m'] else None, 2)} | {fmt(r['time_ms'], 1)} "
            f"| {fmt(r['paper_psnr'], 2)} | {fmt(r['paper_ssim'], 4)} | {fmt(r['paper_lpips'], 4)} "
            f"| {fmt(r['paper_params_m'], 1)} | {fmt(r['paper_time_ms'], 1)} | {fmt(r['delta_psnr'], 2)} |"
        )
    notes = sorted({n for n in df["lpips_note"] if n})
    if notes:
        lines += ["", "LPIPS unavailable: " + " ".join(notes)]
    if dataset != "realmcvsr":
        lines += ["", f"Our numbers come from the `{dataset}` data and recipe; they are not comparable in "
                  "absolute terms with the paper's RealMCVSR figures."]
    return "\n".join(lines) + "\n"


def write_table1(params: dict, out_prefix: Path) -> pd.DataFrame:
    df = build_table1(params)
    with_suffix = lambda ext: out_prefix.with_name(out_prefix.name + ext)  # noqa: E731
    write_text(with_suffix(".csv"), df.to_csv(index=False))
    write_text(with_suffix(".md"), table1_markdown(df, params))
    headline = {
        r["method"]: {k: r[k] for k in ("psnr", "ssim") if r[k] is not None} for r in df.to_dict("records")
    }
    write_text(with_suffix(".json"), json.dumps(headline, indent=2) + "\n")
    return df
