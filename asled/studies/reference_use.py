"""Does AsLeD-Net use its reference? Learning curves and ALM match quality, arm by arm (issue 12, items 4-5).

Every arm trains on the same prepared split, with the same seed (same initial random stream, same
training samples), budget, crop, frames, optimiser (Adam, cosine annealing) and Charbonnier loss as
`asled.train`, and is evaluated every `--eval-every` steps:

* learning curve: mean training loss since the last evaluation, and validation / test PSNR (8-bit RGB,
  whole clips, `asled.train.validate`) beside the Blur frame's PSNR on the same frames;
* where the arm is AsLeD-Net with ALM: ALM's match quality on one validation frame,
  - synthetic shifts: the reference is the frame's sharp ground truth shifted by a known (dx, dy);
    for every blurry position, the distance (pixels) from ALM's top-1 reference position to the true
    one, the fraction within 1 px, and the normalised entropy (entropy / log K) of the top-K softmax
    weights at the arm's temperature (1.0 = uniform weights, 0 = one-hot), the share of top-1 matches
    on the crop's 2-px border and the number of distinct top-1 positions (a collapse onto a few
    zero-padding "hub" features shows as a high border share and few positions);
  - the data's own reference: the distance of the top-1 match from the same position (the lenses'
    parallax is a few pixels, so small is right);
* per-branch gradients: the gradient norm of the loss with respect to each slice of the fusion input
  [F^ALM, F^DC, F^RMC, F^Base] (how much the output can still learn from each branch), and the
  parameter-gradient norm per top-level module, on a fixed training sample.

Arms (`--arms`, comma-separated; `--define NAME=JSON` adds one):
  floor          3-layer CNN on concat(blur, ref), zeroed output conv, global residual (~12 k params)
  alm_T1         AsLeD-Net small, DC on F^ALM (dc_input=alm), ALM T = 1 fixed (the current default)
  ref_T1         same, DC on the reference encoder's F^Ref_t (dc_input=ref)
  alm_Tlearn     dc_input=alm, learnable ALM temperature starting at 1
  ref_Tlearn     dc_input=ref, learnable temperature
  alm_T1_randout alm_T1 with the default (random) output conv instead of the zeroed one
  alm_T1_window  alm_T1 with ALM searching a 15x15 window around each position (`alm_mode: window`)
  ref_T1_window  ref_T1 with the 15x15 window ALM
Every AsLeD-Net arm is `--width` channels with `--blocks` blocks in the propagation and decoder
stacks and a zeroed output conv (identity start) unless the arm says otherwise.

    python -m asled.studies.reference_use --train data/prepared/demo/train \\
        --valid data/prepared/demo/valid --test data/prepared/demo/test --steps 300 --eval-every 50 \\
        --out results/studies/reference_use.json

One process, one thread (`--threads`); prints one line per evaluation and writes the JSON at the end
(and after every arm, so a long run can be read while it goes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asled.data.dataset import TestClips, TrainClips
from asled.infer import tensor_to_u8
from asled.io import write_text
from asled.losses import charbonnier
from asled.metrics.fr import psnr
from asled.models import build_model, count_parameters
from asled.train import seed_everything, validate

BRANCHES = ("alm", "dc", "rmc", "base")

ARMS: dict[str, dict[str, Any]] = {
    "floor": {"model": "floor"},
    "alm_T1": {"model": "asled_net", "kwargs": {"dc_input": "alm", "alm_temperature": 1.0}},
    "ref_T1": {"model": "asled_net", "kwargs": {"dc_input": "ref", "alm_temperature": 1.0}},
    "alm_Tlearn": {"model": "asled_net", "kwargs": {"dc_input": "alm", "alm_learnable_temperature": True}},
    "ref_Tlearn": {"model": "asled_net", "kwargs": {"dc_input": "ref", "alm_learnable_temperature": True}},
    "alm_T1_randout": {"model": "asled_net", "kwargs": {"dc_input": "alm", "identity_start": False}},
    "alm_T1_window": {"model": "asled_net", "kwargs": {"dc_input": "alm", "alm_mode": "window", "alm_window": 15}},
    "ref_T1_window": {"model": "asled_net", "kwargs": {"dc_input": "ref", "alm_mode": "window", "alm_window": 15}},
}
DEFAULT_ARMS = "floor,alm_T1,ref_T1,alm_Tlearn,ref_Tlearn"
DEFAULT_SHIFTS = ((0, 0), (3, 0), (0, -4), (5, 5))


class RefConcatCNN(nn.Module):
    """The floor: conv(6->c)-ReLU-conv(c->c)-ReLU-conv(c->3) on concat(blur, ref), frame by frame, plus
    the blurry frame; the last conv is zeroed so the model starts as the identity."""

    uses_reference = True

    def __init__(self, channels: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 3, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = blur.shape
        x = torch.cat([blur, ref], dim=2).flatten(0, 1)
        return blur + self.body(x).view(b, t, 3, h, w)


def small_kwargs(width: int, blocks: int) -> dict[str, Any]:
    """AsLeD-Net at demo scale: `width` channels, `blocks` in each deep stack, identity start."""
    return {
        "mid_channels": width, "propagation_blocks": blocks, "decoder_blocks": blocks,
        "encoder_blocks": 1, "dc_blocks": 1, "rmc_refine_blocks": 1, "fusion_blocks": 1,
        "channels_last": False, "identity_start": True,
    }


def build_arm(spec: dict[str, Any], width: int, blocks: int, seed: int) -> nn.Module:
    """The arm's model, built right after seeding (every arm starts from the same random stream)."""
    seed_everything(seed)
    if spec["model"] == "floor":
        return RefConcatCNN(int(spec.get("channels", 32)))
    kwargs = {**small_kwargs(width, blocks), **spec.get("kwargs", {})}
    return build_model(spec["model"], **kwargs)


def blur_psnr(split_dir: Path) -> float:
    """Mean PSNR of the blurry frames against the ground truth (the Blur frame row) over the split."""
    values = []
    for _, _, data in TestClips(split_dir):
        values.extend(psnr(g, b) for g, b in zip(tensor_to_u8(data["gt"]), tensor_to_u8(data["blur"])))
    return float(np.mean(values))


def ref_psnr(split_dir: Path) -> float:
    """Mean PSNR of the (upsampled, unaligned) reference frames against the ground truth."""
    values = []
    for _, _, data in TestClips(split_dir):
        values.extend(psnr(g, r) for g, r in zip(tensor_to_u8(data["gt"]), tensor_to_u8(data["ref"])))
    return float(np.mean(values))


def probe_frame(split_dir: Path, size: int, margin: int) -> dict[str, torch.Tensor]:
    """The first frame of the split's first clip, as full frames `[3, H, W]`, plus the centred crop box."""
    _, _, data = next(iter(TestClips(split_dir)))
    h, w = data["gt"].shape[-2:]
    size = min(size, h - 2 * margin, w - 2 * margin)
    if size < 8:
        raise ValueError(f"{split_dir}: frames {w}x{h} are too small for a match probe with margin {margin}")
    y0, x0 = (h - size) // 2, (w - size) // 2
    return {"blur": data["blur"][0], "gt": data["gt"][0], "ref": data["ref"][0], "box": (y0, x0, size)}


def _topk_matches(model: nn.Module, query_img: torch.Tensor, key_img: torch.Tensor, k: int):
    """ALM's own features and search: top-k reference indices and similarities per blurry position
    (in ALM's window mode only the reference positions inside the window around the query count)."""
    fb = model.encoder_blur(query_img[None])[0].flatten(1)  # [C, N]
    fr = model.encoder_ref(key_img[None])[0].flatten(1)
    sim = F.normalize(fb, dim=0).T @ F.normalize(fr, dim=0)  # [N, N]
    alm = model.alm
    if getattr(alm, "mode", "global") == "window":
        h, w = query_img.shape[-2:]
        yx = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).view(-1, 2)
        far = (yx[:, None, :] - yx[None, :, :]).abs().amax(-1) > alm.window // 2
        sim = sim.masked_fill(far, float("-inf"))
    top = sim.topk(k, dim=1)
    return top.indices, top.values


def _hubness(idx: torch.Tensor, size: int, border: int = 2) -> dict[str, float]:
    """Where the top-1 matches go: the share on the crop's outer `border` pixels (zero-padding
    artefacts; the share of the area is given beside it) and how many distinct positions are used."""
    top1 = idx[:, 0]
    y, x = top1 // size, top1 % size
    on_border = (y < border) | (y >= size - border) | (x < border) | (x >= size - border)
    return {"top1_on_border": float(on_border.float().mean()),
            "border_area_share": 1.0 - max(size - 2 * border, 0) ** 2 / size**2,
            "distinct_top1": int(top1.unique().numel()), "positions": size * size}


def _entropy(values: torch.Tensor, temperature: float) -> float:
    k = values.shape[1]
    if k < 2:
        return 0.0
    w = torch.softmax(values / temperature, dim=1)
    ent = -(w * w.clamp_min(1e-12).log()).sum(1) / math.log(k)
    return float(ent.mean())


@torch.no_grad()
def match_quality(model: nn.Module, probe: dict[str, Any], shifts=DEFAULT_SHIFTS) -> dict[str, Any] | None:
    """ALM's match quality on synthetic shifts of the sharp frame and on the data's own reference."""
    alm = getattr(model, "alm", None)
    if alm is None or not hasattr(alm, "top_k"):
        return None
    was_training = model.training
    model.eval()
    temperature = float(torch.as_tensor(alm.temperature).detach())
    k = int(alm.top_k)
    y0, x0, s = probe["box"]
    blur = probe["blur"][:, y0 : y0 + s, x0 : x0 + s]
    grid = torch.stack(torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij"), -1).view(-1, 2).float()
    out: dict[str, Any] = {"temperature": temperature, "top_k": k, "synthetic": []}
    for dx, dy in shifts:
        ref = probe["gt"][:, y0 + dy : y0 + dy + s, x0 + dx : x0 + dx + s]
        idx, values = _topk_matches(model, blur, ref, k)
        found = torch.stack([idx[:, 0] // s, idx[:, 0] % s], -1).float()
        true = grid - torch.tensor([dy, dx], dtype=torch.float32)  # ref[q] = gt[q + shift]
        inside = ((true >= 0) & (true < s)).all(1)
        err = (found - true).norm(dim=1)[inside]
        out["synthetic"].append({
            "dx": dx, "dy": dy, "top1_err_px_mean": float(err.mean()), "top1_err_px_median": float(err.median()),
            "within_1px": float((err <= 1.0).float().mean()), "entropy_norm": _entropy(values[inside], temperature),
            "top1_minus_topk_similarity": float((values[:, 0] - values[:, -1]).mean()), **_hubness(idx, s),
        })
    ref = probe["ref"][:, y0 : y0 + s, x0 : x0 + s]
    idx, values = _topk_matches(model, blur, ref, k)
    found = torch.stack([idx[:, 0] // s, idx[:, 0] % s], -1).float()
    err = (found - grid).norm(dim=1)
    out["data_ref"] = {
        "top1_dist_px_median": float(err.median()), "top1_dist_px_mean": float(err.mean()),
        "within_4px": float((err <= 4.0).float().mean()), "entropy_norm": _entropy(values, temperature),
        **_hubness(idx, s),
    }
    syn = out["synthetic"]
    out["summary"] = {
        "synthetic_top1_err_px_mean": float(np.mean([r["top1_err_px_mean"] for r in syn])),
        "synthetic_within_1px": float(np.mean([r["within_1px"] for r in syn])),
        "entropy_norm": float(np.mean([r["entropy_norm"] for r in syn])),
        "top1_on_border": float(np.mean([r["top1_on_border"] for r in syn])),
        "distinct_top1": float(np.mean([r["distinct_top1"] for r in syn])),
    }
    model.train(was_training)
    return out


def gradient_report(model: nn.Module, batch: dict[str, torch.Tensor], eps: float) -> dict[str, Any]:
    """Gradient norms on one sample: per fusion-input slice (AsLeD-Net) and per top-level module."""
    model.train()
    captured: dict[str, torch.Tensor] = {}
    handle = None
    fusion = getattr(model, "fusion", None)
    if fusion is not None:
        def hook(_module, args):
            captured["x"] = args[0]
            args[0].retain_grad()
        handle = fusion.register_forward_pre_hook(hook)
    model.zero_grad(set_to_none=True)
    try:
        loss = charbonnier(model(batch["blur"], batch["ref"]), batch["gt"], eps=eps)
        loss.backward()
    finally:
        if handle is not None:
            handle.remove()
    report: dict[str, Any] = {"modules": {}}
    for name, module in model.named_children():
        grads = [p.grad.detach().norm() ** 2 for p in module.parameters() if p.grad is not None]
        if grads:
            report["modules"][name] = float(torch.stack(grads).sum().sqrt())
    x = captured.get("x")
    if x is not None and x.grad is not None:
        c = x.shape[1] // len(BRANCHES)
        report["fusion_input"] = {
            b: {"grad_norm": float(x.grad[:, i * c : (i + 1) * c].norm()),
                "feature_rms": float(x[:, i * c : (i + 1) * c].detach().pow(2).mean().sqrt())}
            for i, b in enumerate(BRANCHES)
        }
    alm = getattr(model, "alm", None)
    if alm is not None and getattr(alm, "learnable_temperature", False):
        report["log_temperature_grad"] = float(alm.log_temperature.grad)
    model.zero_grad(set_to_none=True)
    return report


def evaluate(model: nn.Module, splits: dict[str, Path], chunk: int) -> dict[str, float]:
    out = {f"{name}_psnr": validate(model, TestClips(path), chunk, torch.device("cpu")) for name, path in splits.items()}
    model.train()
    return out


def train_arm(
    name: str, spec: dict[str, Any], train_dir: Path, eval_splits: dict[str, Path], *,
    steps: int, eval_every: int, lr: float, eta_min: float, crop: int, frames: int, seed: int,
    width: int, blocks: int, eps: float = 1e-3, probe: dict[str, Any] | None = None, log=print,
) -> dict[str, Any]:
    """Train one arm for `steps` Adam steps (batch 1) and return its curve and diagnostics."""
    model = build_arm(spec, width, blocks, seed)
    lr = float(spec.get("lr", lr))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=eta_min)
    data = TrainClips(train_dir, frames=frames, crop=crop, length=steps, seed=seed)
    fixed = {k: v.unsqueeze(0) for k, v in data[0].items()}  # the gradient probe's sample
    curve: list[dict[str, Any]] = []

    def point(step: int, losses: list[float], seconds: float) -> None:
        row: dict[str, Any] = {"step": step, "train_loss": float(np.mean(losses)) if losses else None}
        row.update(evaluate(model, eval_splits, frames))
        row["grad"] = gradient_report(model, fixed, eps)
        if probe is not None:
            row["match"] = match_quality(model, probe)
        alm = getattr(model, "alm", None)
        if alm is not None and getattr(alm, "learnable_temperature", False):
            row["alm_temperature"] = float(alm.temperature.detach())
        row["train_seconds"] = round(seconds, 1)
        curve.append(row)
        psnrs = " ".join(f"{k}={v:.2f}" for k, v in row.items() if k.endswith("_psnr"))
        m = (row.get("match") or {}).get("summary", {})
        extra = f" top1err={m['synthetic_top1_err_px_mean']:.1f}px H={m['entropy_norm']:.3f}" if m else ""
        loss = "-" if row["train_loss"] is None else f"{row['train_loss']:.4f}"
        log(f"[{name}] step {step:5d} loss {loss} {psnrs}{extra} ({seconds:.0f}s)")

    point(0, [], 0.0)
    losses: list[float] = []
    seconds = 0.0
    model.train()
    for step in range(1, steps + 1):
        batch = {k: v.unsqueeze(0) for k, v in data[step - 1].items()}
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = charbonnier(model(batch["blur"], batch["ref"]), batch["gt"], eps=eps)
        loss.backward()
        optimizer.step()
        scheduler.step()
        seconds += time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if step % eval_every == 0 or step == steps:
            point(step, losses, seconds)
            losses = []
    return {
        "arm": name, "spec": spec, "params": count_parameters(model), "lr": lr,
        "seconds_per_step": seconds / max(steps, 1), "curve": curve,
    }


def summarize(result: dict[str, Any]) -> str:
    """Markdown: one row per arm and evaluation step (PSNR gain over the Blur frame, loss, ALM probe)."""
    blur = result["blur_psnr"]
    splits = list(blur)
    head = ["arm", "step", "train loss"] + [f"{s} PSNR (gain)" for s in splits]
    head += ["ALM top-1 err (px)", "within 1 px", "top-1 on border", "top-K entropy", "T",
             "|dL/dF| alm / dc / rmc / base"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in result["arms"]:
        for row in arm["curve"]:
            m = (row.get("match") or {}).get("summary")
            fi = row["grad"].get("fusion_input")
            t = row.get("alm_temperature", (row.get("match") or {}).get("temperature"))
            cells = [arm["arm"], str(row["step"]), "-" if row["train_loss"] is None else f"{row['train_loss']:.4f}"]
            cells += [f"{row[f'{s}_psnr']:.2f} ({row[f'{s}_psnr'] - blur[s]:+.2f})" for s in splits]
            border = f"{m['top1_on_border']:.2f}" if m and "top1_on_border" in m else "-"
            cells += [f"{m['synthetic_top1_err_px_mean']:.1f}", f"{m['synthetic_within_1px']:.3f}", border,
                      f"{m['entropy_norm']:.4f}"] if m else ["-", "-", "-", "-"]
            cells.append("-" if t is None else f"{t:.3f}")
            cells.append(" / ".join(f"{fi[b]['grad_norm']:.1e}" for b in BRANCHES) if fi else "-")
            lines.append("| " + " | ".join(cells) + " |")
    blur_line = ", ".join(f"{s} {v:.2f} dB" for s, v in blur.items())
    ref_line = ", ".join(f"{s} {v:.2f} dB" for s, v in result.get("ref_psnr", {}).items())
    return f"Blur frame: {blur_line}; reference vs ground truth: {ref_line}.\n\n" + "\n".join(lines) + "\n"


def parse_arms(names: str, defines: list[str]) -> dict[str, dict[str, Any]]:
    arms = dict(ARMS)
    for d in defines:
        key, _, text = d.partition("=")
        if not key or not text:
            raise SystemExit(f"--define expects NAME=JSON, got {d!r}")
        arms[key] = json.loads(text)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in arms]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; known: {sorted(arms)}")
    return {n: arms[n] for n in chosen}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m asled.studies.reference_use",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arms: " + ", ".join(sorted(ARMS)) + " (see the module docstring).",
    )
    p.add_argument("--train", required=True, type=Path, help="prepared train split folder")
    p.add_argument("--valid", required=True, type=Path, help="prepared split for the learning curves")
    p.add_argument("--test", type=Path, help="a second evaluation split (e.g. the held-out test split)")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated (default {DEFAULT_ARMS})")
    p.add_argument("--define", action="append", default=[], metavar="NAME=JSON",
                   help='add an arm, e.g. \'ref_T01={"model": "asled_net", "kwargs": {"dc_input": "ref", "alm_temperature": 0.1}}\'')
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eta-min", type=float, default=1e-6)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=16, help="AsLeD-Net mid_channels")
    p.add_argument("--blocks", type=int, default=3, help="AsLeD-Net propagation and decoder blocks")
    p.add_argument("--probe-size", type=int, default=48, help="match-probe crop (pixels)")
    p.add_argument("--no-match", action="store_true", help="skip ALM match probes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="JSON output (default: print to stdout)")
    p.add_argument("--summary", type=Path, metavar="JSON",
                   help="only print the markdown table of an earlier run's JSON (no training)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if "--summary" in argv:  # summary mode needs none of the training arguments
        path = Path(argv[argv.index("--summary") + 1])
        result = json.loads(path.read_text())
        print(summarize(result), end="")
        return result
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    arms = parse_arms(args.arms, args.define)
    splits = {"valid": args.valid, **({"test": args.test} if args.test else {})}
    margin = max(max(abs(dx), abs(dy)) for dx, dy in DEFAULT_SHIFTS)
    probe = None if args.no_match else probe_frame(args.valid, args.probe_size, margin)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("out", "define")},
        "blur_psnr": {name: blur_psnr(path) for name, path in splits.items()},
        "ref_psnr": {name: ref_psnr(path) for name, path in splits.items()},
        "arms": [],
    }
    log(f"Blur frame PSNR {result['blur_psnr']}, reference PSNR {result['ref_psnr']}")
    for name, spec in arms.items():
        result["arms"].append(train_arm(
            name, spec, args.train, splits, steps=args.steps, eval_every=args.eval_every, lr=args.lr,
            eta_min=args.eta_min, crop=args.crop, frames=args.frames, seed=args.seed, width=args.width,
            blocks=args.blocks, probe=probe, log=log,
        ))
        if args.out:
            write_text(args.out, json.dumps(result, indent=1))
    if not args.out:
        print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
