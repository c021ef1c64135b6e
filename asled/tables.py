"""Compile result tables: our numbers beside the paper's, as csv, Markdown, LaTeX and JSON.

Table 1 (methods), Table 2 (module ablation) and Supplementary Table 1 (variants) share one
builder; a table is a list of model names, the paper table its rows are matched against (through
each catalogue entry's `paper_row`), and whether it carries LPIPS and the timing column.

Every figure is computed from the evaluation summaries (`asled evaluate`) and profiles (`asled
profile`), or copied from the paper into columns named `paper_*`; `delta_*` = ours - paper where
the paper has a value. Statistics (`asled.stats`): mean ± std over seeds, a percentile-bootstrap
95% interval over test clips, and a paired per-clip test of the table's `metrics.compare_to` model
against every other row, marked with † when p < `metrics.alpha`.

Any other table (e.g. the no-reference table of real captures) goes through the same writer:
`write_formats(out_prefix, df, columns, title=...)`, or a `TableSpec` with a `build` function
passed to `write_table`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asled import config, flow_recipe
from asled.errors import DataError
from asled.io import write_text
from asled.metrics.conventions import DEFAULT_SSIM, protocol_tag, protocol_text
from asled.models.registry import describe, entry
from asled.paper import paper_table
from asled.stats import (
    bootstrap_ci,
    clip_values,
    paired_test,
    seed_stats,
    significance_mark,
)

__all__ = [
    "TABLES", "UNAVAILABLE", "Column", "TableContent", "TableSpec", "read_json", "render_latex",
    "render_markdown", "seed_stats", "write_formats", "write_table",
]

UNAVAILABLE = "unavailable"
# model_overrides keys that set up training rather than the model's scale (named separately in the notes)
SETUP_KWARGS = ("identity_start", "global_residual", "dc_input", "spynet_weights", "output_sigmoid", "is_low_res_input")
# metric -> the per-clip count its clip means are weighted by (frames; pairs of consecutive frames)
WEIGHT_KEYS = {"psnr": "frames", "ssim": "frames", "lpips": "frames", "warp_error": "warp_pairs"}
TEST_NAMES = {"wilcoxon": "two-sided Wilcoxon signed-rank test", "ttest": "two-sided paired t-test"}


@dataclass(frozen=True)
class Column:
    """How one displayed column is drawn from the table's data frame.

    kind: "number" (`digits` decimals; `std` names a column shown as ± and `mark` one appended, e.g. †),
    "text", "p" (a p-value) or "ci" (`ci` names the low and high columns, shown as [low, high]).
    """

    key: str
    header: str
    digits: int = 2
    kind: str = "number"
    std: str | None = None
    mark: str | None = None
    ci: tuple[str, str] | None = None


@dataclass
class TableContent:
    """What `write_formats` needs: the data (csv), its display columns, title, intro and notes."""

    df: pd.DataFrame
    columns: list[Column]
    title: str
    intro: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline: dict | None = None  # the JSON (for `dvc metrics show`); default: every numeric cell per row


@dataclass(frozen=True)
class TableSpec:
    key: str  # paper table key in paper_tables.yaml
    title: str
    timed: bool = False  # Table 1 carries LPIPS, params and time; the ablation tables PSNR/SSIM/params
    build: Callable[[dict], TableContent] | None = None  # another table's builder (default: the FR builder)


@dataclass(frozen=True)
class TableInputs:
    """What a full-reference table reads from params.yaml, resolved once at the module's edge
    (`from_params`): the builder below sees these values, not the whole parameter file."""

    dataset: str
    recipe: str
    paths: config.Paths
    methods: list[str]  # the rows
    seeds: list[int]
    bootstrap: dict
    test: str
    alpha: float
    compare_to: str | None
    temporal_flow: str
    profile_size: int
    training: list[str]  # the "Training" note: how every row was trained (`training_notes`)

    @classmethod
    def from_params(cls, params: dict, spec: TableSpec) -> TableInputs:
        metrics = params["metrics"]
        methods = config.table_methods(params, spec.key)
        return cls(
            dataset=params["dataset"], recipe=config.dataset_settings(params)["recipe"],
            paths=config.paths(params), methods=methods, seeds=list(params["seeds"]),
            bootstrap=metrics["bootstrap"], test=metrics["test"], alpha=metrics["alpha"],
            compare_to=metrics["compare_to"].get(spec.key), temporal_flow=metrics["temporal_flow"],
            profile_size=config.profile_settings(params)["size"], training=training_notes(params, methods),
        )


TABLES = {
    "table1": TableSpec("table1", "Table 1", True),
    "table2": TableSpec("table2", "Table 2 (module ablation)", False),
    "supp1": TableSpec("supp1", "Supplementary Table 1 (variants)", False),
}


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: result file is missing; run the step that produces it (snakemake {path})")
    return json.loads(path.read_text())


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _metric_value(value):
    return math.inf if value == "inf" else value


# --- the full-reference tables -------------------------------------------------------------------


def table_metrics(spec: TableSpec) -> list[str]:
    return ["psnr", "ssim", "lpips", "warp_error"] if spec.timed else ["psnr", "ssim", "warp_error"]


def method_row(inputs: TableInputs, method: str, spec: TableSpec) -> tuple[dict, dict[str, dict]]:
    """(the row, {metric: {clip: (seed-averaged value, weight)}}) of one model."""
    paths = inputs.paths
    catalogue = entry(method)
    label = catalogue.get("label", method)
    summaries = [read_json(paths.metrics(method, seed).with_suffix(".json")) for seed in inputs.seeds]
    boot = inputs.bootstrap
    row: dict = {"method": method, "label": label, "seeds": len(summaries), "frames": summaries[0]["frames"],
                 "clips": len(summaries[0].get("clips", {}))}
    per_clip: dict[str, dict] = {}
    for metric in table_metrics(spec):
        row[metric], row[f"{metric}_std"] = seed_stats([_metric_value(s.get(metric)) for s in summaries])
        per_clip[metric] = clip_values(summaries, metric, WEIGHT_KEYS[metric])
        values = list(per_clip[metric].values())
        ci = bootstrap_ci([v for v, _ in values], [w for _, w in values], resamples=boot["resamples"],
                          confidence=boot["confidence"], seed=boot["seed"])
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = ci["low"], ci["high"]
    row["border"], row["y_channel"], row["ssim_convention"] = _one_convention(
        {_scoring(s) for s in summaries}, f"the seeds of {method}")
    reasons = {s.get("lpips_unavailable") for s in summaries if s.get("lpips") is None}
    row["lpips_note"] = "; ".join(sorted(r for r in reasons if r)) if "lpips" in row else ""
    if "lpips" in row and row["lpips"] is None:
        row["lpips"] = UNAVAILABLE
    reasons = {s.get("temporal_unavailable") or "not computed by this evaluation (re-run `asled evaluate`)"
               for s in summaries if s.get("warp_error") is None}
    row["warp_error_note"] = "; ".join(sorted(reasons))
    if row["warp_error"] is None:
        row["warp_error"] = UNAVAILABLE
    row["warp_error_gt"] = seed_stats([s.get("warp_error_gt") for s in summaries])[0]
    if spec.timed:
        profile = read_json(paths.profile(method))
        row["params_m"] = profile["params"] / 1e6
        row["time_ms"] = profile["ms_per_frame"] if profile["params"] > 0 else None
        # forward GFLOP per frame (asled.flops); 0 for the Blur frame like its params, None for a profile
        # written before FLOPs were counted or a model the counter could not run (re-run `asled profile`)
        row["gflops"] = profile.get("gflops_per_frame")
        row["time_device"] = profile.get("device")
        row["time_size"] = profile.get("size")
    else:
        row["params_m"] = describe(method)["params"] / 1e6
    paper = paper_table(spec.key)["rows"].get(catalogue.get("paper_row", label), {})
    for key in ("psnr", "ssim", "lpips", "params_m", "time_ms"):
        if key in paper or spec.timed:
            row[f"paper_{key}"] = paper.get(key)
    for key in ("psnr", "ssim", "lpips", "params_m"):
        if f"paper_{key}" in row:
            ours, theirs = row.get(key), row[f"paper_{key}"]
            ok = _number(ours) and _number(theirs) and math.isfinite(ours)
            row[f"delta_{key}"] = ours - theirs if ok else None
    return row, per_clip


def _scoring(summary: dict) -> tuple[int, bool, str]:
    """(border, y_channel, SSIM convention) an evaluation used; summaries from before `metrics.ssim`
    existed were all scored with the default convention."""
    return int(summary["border"]), bool(summary["y_channel"]), summary.get("ssim_convention", DEFAULT_SSIM)


def _protocol(df: pd.DataFrame) -> tuple[int, bool, str]:
    """The one scoring convention of every row; rows scored differently cannot share a table."""
    found = {(int(b), bool(y), str(s)) for b, y, s in zip(df["border"], df["y_channel"], df["ssim_convention"])}
    return _one_convention(found, "the rows of this table")


def _one_convention(found: set[tuple[int, bool, str]], what: str) -> tuple[int, bool, str]:
    if len(found) > 1:
        raise DataError(f"{what} were evaluated under different conventions {sorted(found)} (border, y_channel, "
                        "ssim); re-run their evaluate steps (snakemake / dvc repro, or `asled evaluate`)")
    return next(iter(found))


def _add_tests(rows: list[dict], clips: dict[str, dict], inputs: TableInputs, spec: TableSpec) -> dict:
    """Paired tests of the reference model vs every other row; returns what the notes need to say."""
    reference = inputs.compare_to
    info = {"reference": reference, "test": inputs.test, "alpha": inputs.alpha, "n": set(),
            "min_p": set(), "reasons": set(), "unavailable": None}
    if reference is None or reference not in clips:
        info["unavailable"] = (f"no paired test: metrics.compare_to.{spec.key} "
                               + (f"'{reference}' is not a row of this table" if reference else "is not set"))
    for row in rows:
        row["compared_to"] = None if info["unavailable"] or row["method"] == reference else reference
        for metric in table_metrics(spec):
            row[f"p_{metric}"], row[f"sig_{metric}"] = None, ""
        row["test_n"] = None
        if row["compared_to"] is None:
            continue
        for metric in table_metrics(spec):
            ours = {c: v for c, (v, _) in clips[reference][metric].items()}
            theirs = {c: v for c, (v, _) in clips[row["method"]][metric].items()}
            result = paired_test(ours, theirs, inputs.test)
            row[f"p_{metric}"] = result["p"]
            row[f"sig_{metric}"] = significance_mark(result["p"], inputs.alpha)
            if metric == "psnr":
                row["test_n"] = result["n"]
                info["n"].add(result["n"])
                if result["unavailable"]:
                    info["reasons"].add(result["unavailable"])
                if result["min_p"] is not None:
                    info["min_p"].add((result["n"], result["min_p"]))
    return info


def _build(inputs: TableInputs, spec: TableSpec) -> tuple[pd.DataFrame, dict]:
    rows, clips = [], {}
    for method in inputs.methods:
        row, per_clip = method_row(inputs, method, spec)
        rows.append(row)
        clips[method] = per_clip
    info = _add_tests(rows, clips, inputs, spec)
    blur = next((r for r in rows if r["method"] == config.BLUR_METHOD), None)
    for row in rows:
        # the line to beat: every trained row is read against the blurry input
        ok = blur is not None and _number(row.get("psnr")) and _number(blur.get("psnr"))
        row["vs_blur_psnr"] = row["psnr"] - blur["psnr"] if ok else None
    return pd.DataFrame(rows), info


def _timing_size(df: pd.DataFrame, inputs: TableInputs) -> str:
    """The frame size the profiles were timed at (from the profiles themselves; params if they do not say)."""
    sizes = sorted({int(v) for v in df.get("time_size", pd.Series(dtype=float)).dropna()})
    sizes = sizes or [inputs.profile_size]
    return "/".join(f"{v}x{v}" for v in sizes)


def _fr_columns(df: pd.DataFrame, spec: TableSpec, size: str) -> list[Column]:
    cols = [Column("label", "Method", kind="text"),
            Column("psnr", "PSNR", 2, std="psnr_std", mark="sig_psnr"),
            Column("psnr_ci", "PSNR 95% CI", 2, kind="ci", ci=("psnr_ci_low", "psnr_ci_high")),
            Column("ssim", "SSIM", 4, std="ssim_std", mark="sig_ssim"),
            Column("ssim_ci", "SSIM 95% CI", 4, kind="ci", ci=("ssim_ci_low", "ssim_ci_high"))]
    if df["vs_blur_psnr"].notna().any():
        cols.insert(3, Column("vs_blur_psnr", "PSNR vs Blur frame", 2))
    if spec.timed:
        cols.append(Column("lpips", "LPIPS", 4, std="lpips_std", mark="sig_lpips"))
    cols += [Column("warp_error", "Warp err.", 4, std="warp_error_std", mark="sig_warp_error"),
             Column("p_psnr", "p (PSNR)", kind="p"),
             Column("params_m", "Params (M)", 2)]
    if spec.timed:
        devices = sorted({d for d in df.get("time_device", pd.Series(dtype=object)).dropna()})
        where = f", {devices[0]}" if len(devices) == 1 else ""
        cols.append(Column("gflops", f"GFLOP (per {size} frame)", 1))
        cols.append(Column("time_ms", f"Time (ms per {size} frame{where})", 1))
        if len(devices) > 1:
            cols.append(Column("time_device", "Time device", kind="text"))
    cols += [Column("paper_psnr", "Paper PSNR", 2), Column("paper_ssim", "Paper SSIM", 4)]
    if spec.timed:
        cols += [Column("paper_lpips", "Paper LPIPS", 4), Column("paper_params_m", "Paper Params (M)", 1),
                 Column("paper_time_ms", "Paper Time (ms, GTX 1080 Ti)", 1)]
    cols += [Column("delta_psnr", "ΔPSNR", 2), Column("delta_ssim", "ΔSSIM", 4)]
    if spec.timed:
        cols.append(Column("delta_lpips", "ΔLPIPS", 4))
    return cols


def _fr_notes(df: pd.DataFrame, inputs: TableInputs, spec: TableSpec, info: dict) -> tuple[list[str], list[str]]:
    dataset, seeds, boot = inputs.dataset, inputs.seeds, inputs.bootstrap
    protocol = protocol_text(*_protocol(df))
    intro = [(
        f"Ours: `{dataset}` test split ({int(df['clips'].max())} clips, {int(df['frames'].max())} frames), recipe "
        f"`{inputs.recipe}`, seeds {seeds}; metrics on {protocol}. "
        f"Paper: {paper_table(spec.key)['source']}."
    )]
    notes = []
    if len(seeds) > 1:
        notes.append(f"Values are means over {len(seeds)} seeds ± their sample standard deviation.")
    else:
        notes.append("One training seed: no ± over seeds (list more under `seeds:` in params.yaml).")
    n_clips = int(df["clips"].max())
    notes.append(
        f"95% CI: percentile bootstrap over the {n_clips} test clips ({boot['resamples']} resamples, seed "
        f"{boot['seed']}), each resample's mean weighted by the clips' frame counts"
        + (f"; {n_clips} clips give a coarse interval." if n_clips < 10 else ".")
    )
    notes.append(_significance_note(df, info))
    lpips_notes = sorted({n for n in df.get("lpips_note", []) if isinstance(n, str) and n})
    if lpips_notes:
        notes.append("LPIPS unavailable: " + " ".join(lpips_notes))
    notes.append(_warp_note(df, inputs.temporal_flow))
    notes += inputs.training
    for method in df["method"]:
        # a model whose official configuration cannot match the paper's printed size says why
        model = entry(method)
        if model.get("paper_params_note"):
            notes.append(f"Params of {model.get('label', method)}: {model['paper_params_note']}")
    if spec.timed:
        notes += _timing_notes(df, inputs)
    if dataset != "realmcvsr":
        notes.append(f"Our numbers come from the `{dataset}` data and recipe; they are not comparable in "
                     "absolute terms with the paper's RealMCVSR figures.")
    return intro, notes


def _significance_note(df: pd.DataFrame, info: dict) -> str:
    """What † means (the test, its n and alpha), or why there is no significance test."""
    if info["unavailable"]:
        return f"Significance: {info['unavailable']}."
    ref_label = df.loc[df["method"] == info["reference"], "label"].iloc[0]
    ns = ", ".join(str(n) for n in sorted(info["n"])) or "0"
    text = (f"† : {ref_label} differs from that row with p < {info['alpha']} ({TEST_NAMES[info['test']]} "
            f"over the per-clip values averaged over seeds, n = {ns} paired clips); p (PSNR) is that "
            "test's p-value for PSNR.")
    floor = min(info["min_p"], key=lambda item: item[1], default=None)
    if info["test"] == "wilcoxon" and floor is not None and floor[1] >= info["alpha"]:
        text += (f" With n = {floor[0]} the exact test's smallest attainable p is {floor[1]:.3g}, so no row "
                 "can be marked at this n.")
    if info["reasons"]:
        text += " No p-value where: " + "; ".join(sorted(info["reasons"])) + "."
    return text


def _warp_note(df: pd.DataFrame, temporal_flow: str) -> str:
    """What the warping error measures, the ground truth's own score, and the rows without one."""
    gt = df["warp_error_gt"].dropna() if "warp_error_gt" in df else pd.Series(dtype=float)
    warp = (f"Warp err.: flow-warping error between consecutive restored frames (mean |frame t - frame t+1 "
            f"warped back|, [0, 1] scale, non-occluded pixels; DIS optical flow on the "
            f"{'ground-truth' if temporal_flow == 'gt' else 'restored'} frames; lower is more "
            "consistent; see asled/metrics/temporal.py).")
    if len(gt):
        warp += f" The ground truth itself scores {gt.iloc[0]:.4f}."
    warp_notes = sorted({n for n in df.get("warp_error_note", []) if isinstance(n, str) and n})
    if warp_notes:
        warp += " Unavailable: " + " ".join(warp_notes)
    return warp


def _timing_notes(df: pd.DataFrame, inputs: TableInputs) -> list[str]:
    """How the Time and GFLOP columns were measured (timed tables)."""
    devices = sorted({d for d in df["time_device"].dropna()}) if "time_device" in df else []
    timing = (f"Our time: ms per {_timing_size(df, inputs)} frame on {', '.join(devices) or 'unknown device'}; "
              "the paper's on a GTX 1080 Ti. Different hardware: compare ratios, not values.")
    flops = ("GFLOP: one forward pass per frame at the profile size, FLOP = 2 per multiply-accumulate "
             "(matmuls, convolutions, deformable convolutions; pointwise ops not counted), counted with "
             "torch.utils.flop_counter on the meta device (asled/flops.py).")
    return [timing, flops]


def training_notes(params: dict, methods: list[str]) -> list[str]:
    """One note on how every trained row was trained: model scale, initialisation and budget, whenever the
    recipe departs from the paper's full-size, officially initialised models (a model never changes
    silently under the same name)."""
    rows = []
    for method in methods:
        if method == config.BLUR_METHOD or not describe(method)["trainable"]:
            continue
        kwargs = config.model_kwargs(params, method)
        train = config.train_settings(params, method)
        scale = {k: v for k, v in kwargs.items() if k not in SETUP_KWARGS}
        parts = [f"scale {_kwargs_text(scale)}" if scale else "paper scale"]
        if kwargs.get("identity_start"):
            parts.append("identity start (output layer zeroed)")
        for key, text in (("global_residual", "global residual added"), ("dc_input", "DC input {}")):
            if key in kwargs:
                parts.append(text.format(kwargs[key]) if "{}" in text else text)
        if "output_sigmoid" in kwargs:  # DBN: the official output is sigmoid(centre + F15)
            parts.append("output sigmoid" if kwargs["output_sigmoid"] else "no output sigmoid (output_sigmoid=false)")
        if kwargs.get("is_low_res_input") is False:  # BasicVSR++: not the paper's SR layout
            parts.append("1/4-scale deblurring layout (is_low_res_input=false)")
        if "spynet" in train and flow_recipe.takes_spynet_weights(method):  # EDVR, DBN, ...: no SPyNet
            parts.append(f"SPyNet {train['spynet']}")
        parts.append(f"{train['iterations']} it x batch {train['batch_size']} x {train['frames']} frames x "
                     f"{train['crop']}² crops, lr {train['lr']:g}")
        rows.append(f"{entry(method).get('label', method)}: " + ", ".join(parts))
    if not rows:
        return []
    recipe_name = config.dataset_settings(params)["recipe"]
    return [f"Training (recipe `{recipe_name}`; Params and Time are of these models): " + "; ".join(rows) + "."]


def _kwargs_text(kwargs: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def fr_content(inputs: TableInputs, spec: TableSpec) -> TableContent:
    df, info = _build(inputs, spec)
    intro, notes = _fr_notes(df, inputs, spec, info)
    headline = {}
    for r in df.to_dict("records"):
        keys = ["psnr", "ssim", "lpips", "warp_error", "psnr_ci_low", "psnr_ci_high", "ssim_ci_low",
                "ssim_ci_high", "p_psnr", "p_ssim"]
        headline[r["method"]] = {k: r[k] for k in keys if k in r and _number(r[k]) and math.isfinite(r[k])}
    columns = _fr_columns(df, spec, _timing_size(df, inputs))
    title = f"{spec.title}: ours on `{inputs.dataset}` vs. the paper ({protocol_tag(*_protocol(df))})"
    return TableContent(df, columns, title, intro, notes, headline)


# --- rendering -----------------------------------------------------------------------------------


def fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def with_std(value, std, digits: int) -> str:
    text = fmt(value, digits)
    return text if not _number(std) or not _number(value) else f"{text} ± {std:.{digits}f}"


def fmt_p(p) -> str:
    if not _number(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cell(row: dict, col: Column) -> str:
    """The display text of one cell (Unicode; `render_latex` translates ±, †, Δ)."""
    if col.kind == "text":
        return fmt(row.get(col.key), col.digits)
    if col.kind == "p":
        return fmt_p(row.get(col.key))
    if col.kind == "ci":
        low, high = (row.get(k) for k in col.ci)
        return f"[{low:.{col.digits}f}, {high:.{col.digits}f}]" if _number(low) and _number(high) else "-"
    text = with_std(row.get(col.key), row.get(col.std) if col.std else None, col.digits)
    mark = row.get(col.mark) if col.mark else None
    return text + mark if isinstance(mark, str) and text != "-" else text


def render_markdown(content: TableContent) -> str:
    headers = [c.header for c in content.columns]
    lines = [f"# {content.title}", ""]
    for paragraph in content.intro:
        lines += [paragraph, ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in content.df.to_dict("records"):
        lines.append("| " + " | ".join(cell(row, c).replace("|", "\\|") for c in content.columns) + " |")
    for note in content.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "†": r"$^\dagger$", "Δ": r"$\Delta$", "<": r"$<$", ">": r"$>$", "×": r"$\times$",
                  "—": "---", "–": "--"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    out = "".join(_LATEX_UNICODE.get(ch, ch) for ch in out)
    return out.replace("`", "")  # Markdown code quotes


def render_latex(content: TableContent, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs,graphicx}); notes go below it as a footnote block."""
    align = "".join("l" if c.kind == "text" else "r" for c in content.columns)
    lines = [
        "% Generated by `asled table`; needs \\usepackage{booktabs} and \\usepackage{graphicx}.",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(content.title)}}}",
        f"\\label{{tab:{label}}}",
        "\\resizebox{\\linewidth}{!}{%",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(latex_escape(c.header) for c in content.columns) + " \\\\",
        "\\midrule",
    ]
    for row in content.df.to_dict("records"):
        lines.append(" & ".join(latex_escape(cell(row, c)) for c in content.columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    if content.intro or content.notes:
        lines.append("\\par\\smallskip\\footnotesize")
        lines += [latex_escape(p) + "\\par" for p in [*content.intro, *content.notes]]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _default_headline(df: pd.DataFrame) -> dict:
    key = "method" if "method" in df else df.columns[0]
    return {str(r[key]): {k: v for k, v in r.items() if k != key and _number(v) and math.isfinite(v)}
            for r in df.to_dict("records")}


def write_formats(out_prefix: str | Path, content: TableContent) -> None:
    """Write `<out>.csv` (every column), `<out>.md`, `<out>.tex` and `<out>.json` (numbers per row).

    All four are rendered first and each is written atomically, so a failure leaves no new file.
    """
    out_prefix = Path(out_prefix)
    headline = content.headline if content.headline is not None else _default_headline(content.df)
    texts = {
        ".csv": content.df.to_csv(index=False),
        ".md": render_markdown(content),
        ".tex": render_latex(content, out_prefix.name.replace("_", "-")),
        ".json": json.dumps(headline, indent=2) + "\n",
    }
    for ext, text in texts.items():
        write_text(out_prefix.with_name(out_prefix.name + ext), text)


def write_table(params: dict, spec: TableSpec, out_prefix: Path | None = None) -> pd.DataFrame:
    """Build `spec` (the FR builder, or `spec.build`) and write csv, md, tex and json; returns the data."""
    content = spec.build(params) if spec.build is not None else fr_content(TableInputs.from_params(params, spec), spec)
    write_formats(Path(out_prefix or config.paths(params).table(spec.key)), content)
    return content.df

