"""No-reference scores of restored real captures, and their table (`asled real score`, `asled real table`).

Apart from ingesting and restoring (asled.real) so that editing a no-reference metric or the table re-runs
scoring and the table only (asled.stages lists each step's code).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from asled import config
from asled.errors import DataError
from asled.io import atomic_path, read_png, write_text
from asled.real import real_settings


def nr_metrics(params: dict) -> list[str]:
    from asled.metrics.nr import DEFAULT_NR

    return list(params["metrics"].get("nr", DEFAULT_NR))



# ----------------------------------------------------------------------------- scoring


def score_method(
    method: str,
    restored: dict[str, Path],
    out_csv: Path,
    metric_names: list[str],
    device: str = "cpu",
) -> dict:
    """NR metrics of every restored frame of every capture: `<out>.csv` per frame, `<out>.json` summary."""
    from asled.metrics.nr import NRSuite

    suite = NRSuite(metric_names, device)
    rows = []
    reasons: dict[str, set[str]] = {name: set() for name in metric_names}  # why a frame got no value
    sizes = set()
    for capture, folder in restored.items():
        frames = sorted(Path(folder).glob("[0-9][0-9][0-9][0-9].png"))  # beside them: _info.json
        if not frames:
            raise DataError(f"{folder}: no restored frames; run `asled real restore {method} {capture}` first")
        for path in frames:
            image = read_png(path)
            sizes.add(f"{image.shape[1]}x{image.shape[0]}")
            values, why = suite.score_with_reasons(image)
            rows.append({"capture": capture, "frame": path.name, **values})
            for name, reason in why.items():
                reasons[name].add(reason)
    if not rows:
        raise DataError(f"no restored frames for {method}; run `asled real restore` first")
    df = pd.DataFrame(rows, columns=["capture", "frame", *metric_names])
    described = suite.describe()
    summary: dict = {"method": method, "frames": len(df), "captures": sorted(restored), "sizes": sorted(sizes),
                     "metrics": {}}
    for name in metric_names:
        item = described[name]
        column = pd.to_numeric(df[name], errors="coerce")
        if column.isna().all():
            # per frame: too small for the metric (checked first), weights not staged, or a non-finite score
            why = "; ".join(sorted(reasons[name])) or f"{name} gave no finite score on these frames"
            summary["metrics"][name] = {"value": None, "reason": why}
        else:
            summary["metrics"][name] = {
                "value": float(column.mean()), "lower_better": item["lower_better"],
                "frames_scored": int(column.notna().sum()),
                "per_capture": {c: float(g.mean()) for c, g in column.groupby(df["capture"]) if g.notna().any()},
            }
    with atomic_path(out_csv) as tmp:
        tmp.write_text(df.to_csv(index=False))
    write_text(Path(out_csv).with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------- the table


def nr_content(params: dict):
    """The real-capture table: one row per method, mean (± std over seeds) of each NR metric."""
    from asled.metrics.nr import NR_LABELS
    from asled.models.registry import entry
    from asled.tables import Column, TableContent, read_json, seed_stats

    paths = config.paths(params)
    names = nr_metrics(params)
    captures = real_settings(params)["captures"]
    rows, reasons, sizes = [], {}, set()
    for method in params["methods"]:
        summaries = [read_json(paths.real_scores(method, seed).with_suffix(".json")) for seed in params["seeds"]]
        sizes.update(size for s in summaries for size in s.get("sizes", []))
        row: dict = {"method": method, "label": entry(method).get("label", method), "seeds": len(summaries),
                     "frames": summaries[0]["frames"]}
        for name in names:
            values = [s["metrics"][name]["value"] for s in summaries]
            if all(v is None for v in values):
                row[name], row[f"{name}_std"] = "unavailable", None
                reasons.setdefault(name, summaries[0]["metrics"][name]["reason"])
            else:
                row[name], row[f"{name}_std"] = seed_stats([v for v in values if v is not None])
        rows.append(row)
    df = pd.DataFrame(rows)
    lower = {}
    for s in (read_json(paths.real_scores(m, params["seeds"][0]).with_suffix(".json")) for m in params["methods"]):
        for name, item in s["metrics"].items():
            if "lower_better" in item:
                lower[name] = item["lower_better"]
    columns = [Column("label", "Method", kind="text")]
    for name in names:
        arrow = {True: " ↓", False: " ↑"}.get(lower.get(name), "")
        columns.append(Column(name, NR_LABELS.get(name, name) + arrow, digits=3, std=f"{name}_std"))
    intro = [
        (f"No-reference scores of every method on the real captures {', '.join(captures)} (no ground truth; "
        f"{int(df['frames'].iloc[0]) if len(df) else 0} frames per method), mean over frames, ± std over seeds "
        f"{params['seeds']} when there are several. ↓: lower is better; ↑: higher is better (pyiqa's definitions). "
        "The paper shows real captures only as pictures; these numbers have no paper counterpart."),
        nr_protocol_text(sorted(sizes)),
    ]
    notes = [f"{name} unavailable: {reason}" for name, reason in reasons.items()]
    if real_settings(params)["generate"]:
        exposure = real_settings(params)["demo"].get("exposure", 7)
        notes.append(f"The captures are the demo's, made from real video (each W frame integrates {exposure} source "
                     "frames of motion, UW is sharp); they show the chain works, not how a phone capture scores.")
    headline = {r["method"]: {n: r[n] for n in names if isinstance(r[n], float) and math.isfinite(r[n])} for r in rows}
    frame = f"full frame {'/'.join(sorted(sizes))}" if sizes else "full frame"
    title = f"No-reference metrics on real dual-lens captures ({frame}, pyiqa definitions)"
    return TableContent(df, columns, title, intro, notes, headline)


def nr_protocol_text(sizes: list[str]) -> str:
    """The scoring conventions of the no-reference table, for its intro."""
    from asled.metrics.nr import MIN_SIZE

    limits = ", ".join(f"{name.upper()} {rule.side}x{rule.side}" for name, rule in MIN_SIZE.items())
    where = f" ({', '.join(sizes)} pixels)" if sizes else ""
    return (f"Conventions: every metric scores the full restored W frame{where}, given as RGB in [0, 1] and "
            "computed as pyiqa 0.1.16 defines it (NIQE, BRISQUE and PIQE on the grey level 0.299 R + 0.587 G + "
            "0.114 B, as MATLAB's rgb2gray); a metric is "
            f"'unavailable' on frames smaller than its minimum ({limits}), never a number.")


def write_nr_table(params: dict, out_prefix: Path | None = None) -> pd.DataFrame:
    from asled.tables import TableSpec, write_table

    spec = TableSpec("nr_real", "No-reference metrics on real captures", build=nr_content)
    return write_table(params, spec, out_prefix)
