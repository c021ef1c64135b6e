"""Compile result tables: our numbers beside the paper's, as csv, Markdown and JSON.

Table 1 (methods), Table 2 (module ablation) and Supplementary Table 1 (variants) share one
builder; a table is a list of model names, the paper table its rows are matched against (through
each catalogue entry's `paper_row`), and whether it carries the timing column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

import pandas as pd

from asled import config
from asled.errors import DataError
from asled.io import write_text
from asled.models.registry import describe, entry
from asled.paper import paper_table

UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class TableSpec:
    key: str  # paper table key in paper_tables.yaml
    title: str
    out: str  # output path without extension
    timed: bool  # Table 1 carries LPIPS, params and time; the ablation tables PSNR/SSIM/params

    def methods(self, params: dict) -> list[str]:
        return config.table_methods(params, self.key)


TABLES = {
    "table1": TableSpec("table1", "Table 1", config.TABLE_OUTPUTS["table1"], True),
    "table2": TableSpec("table2", "Table 2 (module ablation)", config.TABLE_OUTPUTS["table2"], False),
    "supp1": TableSpec("supp1", "Supplementary Table 1 (variants)", config.TABLE_OUTPUTS["supp1"], False),
}


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


def method_row(params: dict, method: str, spec: TableSpec) -> dict:
    paths = config.paths(params)
    catalogue = entry(method)
    label = catalogue.get("label", method)
    summaries = [read_json(paths.metrics(method, seed).with_suffix(".json")) for seed in params["seeds"]]
    row: dict = {"method": method, "label": label, "seeds": len(summaries), "frames": summaries[0]["frames"]}
    for metric in ("psnr", "ssim", "lpips"):
        row[metric], row[f"{metric}_std"] = seed_stats([s.get(metric) for s in summaries])
    if spec.timed:
        reasons = {s.get("lpips_unavailable") for s in summaries if s.get("lpips") is None}
        row["lpips_note"] = "; ".join(sorted(r for r in reasons if r)) or ""
        if row["lpips"] is None:
            row["lpips"] = UNAVAILABLE
        profile = read_json(paths.profile(method))
        row["params_m"] = profile["params"] / 1e6
        row["time_ms"] = profile["ms_per_frame"] if profile["params"] > 0 else None
        row["time_device"] = profile["device"]
    else:
        row["params_m"] = describe(method)["params"] / 1e6
    paper = paper_table(spec.key)["rows"].get(catalogue.get("paper_row", label), {})
    for key in ("psnr", "ssim", "lpips", "params_m", "time_ms"):
        if key in paper or spec.timed:
            row[f"paper_{key}"] = paper.get(key)
    for key in ("psnr", "ssim", "lpips"):
        ours, theirs = row.get(key), row.get(f"paper_{key}")
        if f"paper_{key}" in row:
            row[f"delta_{key}"] = ours - theirs if isinstance(ours, float) and theirs is not None else None
    return row


def build_table(params: dict, spec: TableSpec) -> pd.DataFrame:
    return pd.DataFrame([method_row(params, method, spec) for method in spec.methods(params)])


def fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def with_std(value, std, digits: int) -> str:
    text = fmt(value, digits)
    return text if std is None or (isinstance(std, float) and math.isnan(std)) else f"{text} ± {std:.{digits}f}"


def markdown(df: pd.DataFrame, params: dict, spec: TableSpec) -> str:
    dataset = params["dataset"]
    header = ["Method", "Ours PSNR", "Ours SSIM"]
    header += ["Ours LPIPS", "Ours Params (M)", "Ours Time (ms)"] if spec.timed else ["Ours Params (M)"]
    header += ["Paper PSNR", "Paper SSIM"]
    header += ["Paper LPIPS", "Paper Params (M)", "Paper Time (ms)"] if spec.timed else []
    header += ["ΔPSNR", "ΔSSIM"]
    intro = (
        f"Ours: {dataset} test split, recipe `{config.dataset_settings(params)['recipe']}`, seeds "
        f"{params['seeds']} (mean ± std over seeds). Paper: {paper_table(spec.key)['source']}."
    )
    if spec.timed and df["time_device"].notna().any():
        size = config.profile_settings(params)["size"]
        intro += f" Our time: ms per {size}x{size} frame on {df['time_device'].dropna().iloc[0]}."
    lines = [f"# {spec.title}: ours on `{dataset}` vs. the paper", "", intro, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in df.to_dict("records"):
        cells = [r["label"], with_std(r["psnr"], r["psnr_std"], 2), with_std(r["ssim"], r["ssim_std"], 4)]
        params_m = fmt(r["params_m"] or None, 2)
        cells += [fmt(r["lpips"], 4), params_m, fmt(r["time_ms"], 1)] if spec.timed else [params_m]
        cells += [fmt(r.get("paper_psnr"), 2), fmt(r.get("paper_ssim"), 4)]
        if spec.timed:
            cells += [fmt(r["paper_lpips"], 4), fmt(r["paper_params_m"], 1), fmt(r["paper_time_ms"], 1)]
        cells += [fmt(r.get("delta_psnr"), 2), fmt(r.get("delta_ssim"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({n for n in df.get("lpips_note", []) if n})
    if notes:
        lines += ["", "LPIPS unavailable: " + " ".join(notes)]
    if dataset != "realmcvsr":
        lines += ["", f"Our numbers come from the `{dataset}` data and recipe; they are not comparable in "
                  "absolute terms with the paper's RealMCVSR figures."]
    return "\n".join(lines) + "\n"


def write_table(params: dict, spec: TableSpec, out_prefix: Path | None = None) -> pd.DataFrame:
    """Write `<out>.csv`, `<out>.md` and `<out>.json` (headline PSNR/SSIM, for `dvc metrics show`)."""
    out_prefix = Path(out_prefix or spec.out)
    df = build_table(params, spec)
    with_suffix = lambda ext: out_prefix.with_name(out_prefix.name + ext)  # noqa: E731
    write_text(with_suffix(".csv"), df.to_csv(index=False))
    write_text(with_suffix(".md"), markdown(df, params, spec))
    headline = {
        r["method"]: {k: r[k] for k in ("psnr", "ssim") if r[k] is not None} for r in df.to_dict("records")
    }
    write_text(with_suffix(".json"), json.dumps(headline, indent=2) + "\n")
    return df
