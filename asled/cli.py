"""The `asled` command line: one verb per pipeline step.

Snakemake rules and DVC stages call these verbs; every path is derived from params.yaml by
`asled.config.Paths`, so both front-ends read and write the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from asled import config
from asled.errors import AsledError

WEIGHTS_DIR = "data/weights"


def _params(args) -> dict:
    return config.load_params(args.params)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_data_get(args) -> None:
    """Materialise the selected dataset's raw folder: generate the demo, or validate what the user placed."""
    params = _params(args)
    settings = config.dataset_settings(params)
    root = config.paths(params).raw
    if settings["generate"]:
        from asled.data.demo import generate_demo

        summary = generate_demo(
            root,
            seed=settings.get("seed", 0),
            width=settings["width"],
            height=settings["height"],
            frames_per_clip=settings["frames_per_clip"],
            clips=settings["clips"],
        )
    else:
        from asled.data.layout import validate_raw

        if not root.is_dir():
            raise AsledError(
                f"{root}: dataset folder is missing; download RealMCVSR (see README, 'Switching to RealMCVSR') "
                f"and place its train/valid/test folders there"
            )
        # headers only: decoding every RealMCVSR frame (~40 GB) belongs to `asled data validate --pixels`
        summary = validate_raw(root, check_pixels=False)
    print(json.dumps(summary, indent=2, default=str))


def cmd_data_demo(args) -> None:
    from asled.data.demo import generate_demo

    summary = generate_demo(Path(args.out), seed=args.seed)
    print(json.dumps(summary, indent=2, default=str))


def cmd_data_validate(args) -> None:
    from asled.data.layout import validate_raw

    root = Path(args.root) if args.root else config.paths(_params(args)).raw
    print(json.dumps(validate_raw(root, check_pixels=args.pixels), indent=2, default=str))


def cmd_data_prepare(args) -> None:
    from asled.data.prepare import prepare_split

    params = _params(args)
    paths = config.paths(params)
    summary = prepare_split(
        paths.raw,
        args.split,
        paths.prepared(args.split),
        window=params["blur"]["window"],
        stride=params["blur"]["stride"],
        space=params["blur"]["space"],
        fov_fraction=params["reference"]["fov_fraction"],
        interpolation=params["reference"]["interpolation"],
    )
    print(json.dumps(summary, indent=2, default=str))


def cmd_models(args) -> None:
    from asled.models.registry import describe, model_names

    info = {name: describe(name) for name in model_names()}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for name, item in info.items():
        print(f"{name:24s} {item['params'] / 1e6:8.3f} M  {item['target']}")


def cmd_train(args) -> None:
    from asled.train import train

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    summary = train(
        args.method,
        paths.prepared("train"),
        paths.prepared("valid"),
        paths.checkpoint(args.method, args.seed),
        config.train_settings(params, args.method),
        seed=args.seed,
        log_csv=paths.train_log(args.method, args.seed),
        device=args.device,
    )
    print(json.dumps(summary, indent=2, default=str))


def cmd_infer(args) -> None:
    from asled.infer import infer

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    test = config.test_settings(params)
    summary = infer(
        args.method,
        paths.checkpoint(args.method, args.seed),
        paths.prepared("test"),
        paths.restored(args.method, args.seed),
        chunk=test.get("chunk"),
        device=args.device,
        tile=test.get("tile"),
        tile_overlap=test.get("tile_overlap", 32),
    )
    print(json.dumps(summary, indent=2, default=str))


def cmd_evaluate(args) -> None:
    from asled.evaluate import evaluate

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    metrics = params["metrics"]
    summary = evaluate(
        args.method,
        paths.restored(args.method, args.seed),
        paths.prepared("test"),
        paths.metrics(args.method, args.seed),
        border=metrics["border"],
        y_channel=metrics["y_channel"],
        lpips=metrics["lpips"],
    )
    print(json.dumps(summary, indent=2, default=str))


def cmd_profile(args) -> None:
    from asled.io import write_text
    from asled.profiling import profile_model

    _set_threads(args.threads)
    params = _params(args)
    settings = config.profile_settings(params)
    result = profile_model(
        args.method,
        size=settings["size"],
        frames=settings["frames"],
        warmup=settings["warmup"],
        runs=settings["runs"],
        device=args.device,
    )
    text = json.dumps(result, indent=2) + "\n"
    if args.write:
        write_text(config.paths(params).profile(args.method), text)
    if args.json:
        print(text, end="")
    else:
        print(f"{result['method']}: {result['params'] / 1e6:.3f} M params, "
              f"{result['ms_per_frame']:.1f} ms/frame on {result['device']}")


def cmd_bench_alm(args) -> None:
    from asled.bench import bench_alm

    _set_threads(args.threads)
    result = bench_alm(
        sizes=tuple(args.sizes),
        channels=args.channels,
        chunk_size=args.chunk_size,
        device=args.device,
        k=args.top_k,
        window=args.window,
        memory_limit_gib=args.memory_limit_gib,
        repeats=args.repeats,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"ALM matching on {result['device']} ({result['memory']})")
    for case in result["cases"]:
        for name in ("naive", "chunked", "window"):
            item = case[name]
            if "skipped" in item:
                print(f"{case['size']:5d}^2 {name:8s} skipped: {item['skipped']}")
            else:
                mib = "n/a" if item["peak_extra_mib"] is None else f"{item['peak_extra_mib']:.1f} MiB"
                print(f"{case['size']:5d}^2 {name:8s} {item['seconds_median']:9.3f} s  {mib}")
        if case["max_abs_diff_chunked_vs_naive"] is not None:
            print(f"{case['size']:5d}^2 max |chunked - naive| = {case['max_abs_diff_chunked_vs_naive']:.3g}")


def cmd_table(args) -> None:
    from asled.tables import TABLES, write_table

    params = _params(args)
    df = write_table(params, TABLES[args.table], Path(args.out) if args.out else None)
    print(df[["label", "psnr", "ssim", "params_m", "paper_psnr"]].to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asled", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    data = verbs.add_parser("data", help="data steps").add_subparsers(dest="data_verb", required=True)
    data.add_parser("get", help="generate (demo) or validate (RealMCVSR) the selected dataset").set_defaults(
        func=cmd_data_get
    )
    demo = data.add_parser("demo", help="generate the embedded demo dataset into a folder")
    demo.add_argument("--out", default="data/raw/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_data_demo)
    validate = data.add_parser("validate", help="check a RealMCVSR-layout folder")
    validate.add_argument("--root", help="dataset folder (default: the selected dataset's)")
    validate.add_argument("--pixels", action="store_true", help="decode every frame, not only PNG headers")
    validate.set_defaults(func=cmd_data_validate)
    prepare = data.add_parser("prepare", help="synthesise blur and prepare the reference for one split")
    prepare.add_argument("--split", required=True, choices=config.SPLITS)
    prepare.set_defaults(func=cmd_data_prepare)

    models = verbs.add_parser("models", help="list registered models and their parameter counts")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    def model_verb(name: str, func, help_text: str, seeded: bool = True) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text)
        sub.add_argument("method", help="a name from `asled models`")
        if seeded:
            sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
        sub.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
        sub.set_defaults(func=func)
        return sub

    model_verb("train", cmd_train, "train a method on the prepared train split")
    model_verb("infer", cmd_infer, "restore the prepared test split with a trained method")
    model_verb("evaluate", cmd_evaluate, "full-reference metrics of restored frames against ground truth")
    profile = model_verb("profile", cmd_profile, "parameters and ms per frame (Table 1 timing protocol)", False)
    profile.add_argument("--json", action="store_true")
    profile.add_argument("--write", action="store_true", help="also write results/profile/<method>.json")

    bench = verbs.add_parser("bench", help="micro-benchmarks").add_subparsers(dest="bench_verb", required=True)
    bench_alm = bench.add_parser("alm", help="memory and time of ALM matching: naive vs chunked global vs windowed")
    bench_alm.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="feature-map sides")
    bench_alm.add_argument("--channels", type=int, default=64)
    bench_alm.add_argument("--chunk-size", type=int, default=4096, help="query positions per chunk")
    bench_alm.add_argument("--top-k", type=int, default=3)
    bench_alm.add_argument("--window", type=int, default=15, help="side of the windowed mode's square (odd)")
    bench_alm.add_argument(
        "--memory-limit-gib", type=float, default=None,
        help="skip the naive all-pairs case when its similarity matrix would exceed this "
        "(default: 80%% of the memory available now)",
    )
    bench_alm.add_argument("--repeats", type=int, default=None, help="runs per case (default: 5 / 3 / 1 by size)")
    bench_alm.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    bench_alm.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    bench_alm.add_argument("--json", action="store_true")
    bench_alm.set_defaults(func=cmd_bench_alm)

    table = verbs.add_parser("table", help="compile a table (csv, md, json) from the results")
    table.add_argument("table", choices=["table1", "table2", "supp1"])
    table.add_argument("--out", help="output path without extension (default: results/tables/<name>)")
    table.set_defaults(func=cmd_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Weights live under data/weights (placed there by hand until a staging rule exists), never in a per-user cache, so
    # runs are offline and the same on every machine.
    os.environ.setdefault("TORCH_HOME", str(Path(WEIGHTS_DIR, "torch").resolve()))
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AsledError as exc:
        print(f"asled: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
