"""No-reference image quality metrics through pyiqa, from staged weights only.

Each configured metric (`metrics.nr` in params.yaml) is created with
`pyiqa.create_metric(name, pretrained_model_path=<file under data/weights>)` when its weights are
staged (`asled.weights`); otherwise it is reported as unavailable, with the reason and the command
that stages it. Nothing is downloaded: pyiqa would fetch missing files from its hub, so a metric is
never created before its file is known to be present and verified.

Scores follow pyiqa's definitions (inputs RGB in [0, 1]); `lower_better` says which way is better.

A metric whose estimate needs a minimum frame size (`MIN_SIZE`: NIQE's 96x96 blocks, PIQE's 16x16
blocks, BRISQUE's window at half scale) is reported as unavailable on a smaller frame, with the reason,
never as a number; it is not even run there. The deep metrics (TOPIQ-NR, MUSIQ, CLIP-IQA) resize or
interpolate their inputs in pyiqa, so they have no such limit.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asled.errors import AsledError, ConfigError
from asled.weights import METRIC_WEIGHTS, WEIGHTS_DIR, staged_path

# The no-reference metrics (pyiqa names) and their column headers; the default set of `metrics.nr`. The schema's
# enum and the weights each needs (asled.weights.METRIC_WEIGHTS) are checked against it (tests/test_nr.py).
NR_LABELS = {"niqe": "NIQE", "brisque": "BRISQUE", "piqe": "PIQE", "topiq_nr": "TOPIQ-NR", "musiq": "MUSIQ",
             "clipiqa": "CLIP-IQA"}
DEFAULT_NR = tuple(NR_LABELS)
# Options beyond the weights path; topiq_nr's backbone comes from its own checkpoint, so pyiqa must not
# fetch ImageNet ResNet-50 weights first.
EXTRA_OPTIONS = {"topiq_nr": {"backbone_pretrain": False}}
# Metrics whose pyiqa class takes no path: the file is found under $TORCH_HOME (set to data/weights/torch).
PATHLESS = {"clipiqa"}


@dataclass(frozen=True)
class MinSize:
    """A metric needs `blocks` x `blocks` of its `block`-pixel squares across the frame (`why` says why)."""

    block: int
    blocks: int
    why: str

    @property
    def side(self) -> int:
        return self.block * self.blocks

    def reason(self, name: str, height: int, width: int) -> str:
        side = self.side
        if height >= side and width >= side:
            return ""
        return (f"{name} needs a frame of at least {side}x{side} pixels: it works on {self.block}x{self.block}-pixel "
                f"blocks and needs {self.blocks}x{self.blocks} of them ({self.why}); this {width}x{height} frame "
                f"holds {width // self.block}x{height // self.block}")


# Block sizes from pyiqa 0.1.16's implementations (those of the official algorithms); NIQE's 3x3 measured
# (docs/real_captures.md, "Frame size"): on one block the fitted covariance is zero, and below 3x3 the
# score scatters by more than a NIQE point with the crop's position and reads well above the whole image's.
MIN_SIZE = {
    "niqe": MinSize(96, 3, "with fewer, the Gaussian it fits to the block features is degenerate or unstable: "
                           "measured, 2x2 blocks scatter by 1.3-1.9 NIQE points and read 2.4-2.8 higher than "
                           "the whole image"),
    "piqe": MinSize(16, 1, "a smaller frame has no block to score"),
    "brisque": MinSize(7, 2, "its 7x7 Gaussian window must still fit the frame at the second, half scale"),
}


def size_reason(name: str, height: int, width: int) -> str:
    """"" when `name` gives a meaningful score on a height x width frame, else why it cannot."""
    rule = MIN_SIZE.get(name)
    return rule.reason(name, height, width) if rule else ""


@dataclass
class NRMetric:
    name: str
    lower_better: bool
    model: object

    def __call__(self, image_u8: np.ndarray) -> float:
        import torch

        if image_u8.dtype != np.uint8 or image_u8.ndim != 3 or image_u8.shape[2] != 3:
            raise ValueError(f"expected uint8 [H, W, 3], got {image_u8.dtype} {image_u8.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image_u8.transpose(2, 0, 1))).float().div(255.0).unsqueeze(0)
        with torch.inference_mode(), _quiet():
            return float(self.model(x).reshape(-1)[0].item())


@contextlib.contextmanager
def _quiet():
    """pyiqa prints loading messages to stdout; CLI output must stay JSON."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in METRIC_WEIGHTS]
    if unknown:
        raise ConfigError(f"metrics.nr: unknown no-reference metrics {unknown}; supported: {sorted(METRIC_WEIGHTS)}")


def availability(name: str, root: Path = WEIGHTS_DIR) -> tuple[Path | None, str]:
    """(weights path or None, reason) — reason is "" when the metric can be created offline."""
    check_names([name])
    weights = METRIC_WEIGHTS[name]
    if weights is None:
        return None, ""
    path, reason = staged_path(weights, root)
    return path, (f"{name} needs staged weights: {reason}" if path is None else "")


def create(name: str, device: str = "cpu", root: Path = WEIGHTS_DIR) -> tuple[NRMetric | None, str]:
    """(metric, "") or (None, reason it is unavailable)."""
    path, reason = availability(name, root)
    if reason:
        return None, reason
    try:
        import pyiqa
    except Exception as exc:  # noqa: BLE001 - any import failure makes every metric unavailable
        return None, f"pyiqa cannot be imported ({exc}); install the project's dependencies"
    options = dict(EXTRA_OPTIONS.get(name, {}))
    if path is not None and name not in PATHLESS:
        options["pretrained_model_path"] = str(path)
    try:
        with _quiet():
            model = pyiqa.create_metric(name, device=device, as_loss=False, **options)
    except Exception as exc:  # noqa: BLE001 - a broken file or an API change: unavailable with the reason
        return None, f"pyiqa could not create {name} from {path} ({type(exc).__name__}: {str(exc)[:200]})"
    return NRMetric(name, bool(model.lower_better), model), ""


class NRSuite:
    """Every configured metric, created once; scoring returns a value or an unavailable reason per metric."""

    def __init__(self, names: list[str] | tuple[str, ...] = DEFAULT_NR, device: str = "cpu",
                 root: Path = WEIGHTS_DIR) -> None:
        names = list(names)
        check_names(names)
        self.names = names
        self.metrics: dict[str, NRMetric] = {}
        self.unavailable: dict[str, str] = {}
        for name in names:
            metric, reason = create(name, device, root)
            if metric is None:
                self.unavailable[name] = reason
            else:
                self.metrics[name] = metric

    def score(self, image_u8: np.ndarray) -> dict[str, float | None]:
        return self.score_with_reasons(image_u8)[0]

    def score_with_reasons(self, image_u8: np.ndarray) -> tuple[dict[str, float | None], dict[str, str]]:
        """({metric: value or None}, {metric: why it is None}) for one 8-bit RGB image."""
        values: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        height, width = image_u8.shape[:2]
        for name in self.names:
            # the frame's size first: too small a frame has no meaningful score, staged weights or not
            reason = size_reason(name, height, width) or self.unavailable.get(name, "")
            value = None if reason else self.metrics[name](image_u8)
            if value is not None and not math.isfinite(value):
                value, reason = None, f"{name} returned a non-finite score on this {width}x{height} image"
            values[name] = value
            if reason:
                reasons[name] = reason
        return values, reasons

    def describe(self) -> dict[str, dict]:
        out = {}
        for name in self.names:
            if name in self.metrics:
                out[name] = {"available": True, "lower_better": self.metrics[name].lower_better}
            else:
                out[name] = {"available": False, "reason": self.unavailable[name]}
        return out


def score_image(path: str | Path, names: list[str] | tuple[str, ...] = DEFAULT_NR, device: str = "cpu") -> dict:
    """`asled metrics nr IMG`: every configured metric's value, or unavailable with the reason."""
    from asled.io import read_png

    path = Path(path)
    if path.suffix.lower() == ".png":
        image = read_png(path)
    else:
        import cv2

        raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if raw is None:
            raise AsledError(f"{path}: not a readable image; pass an 8-bit PNG/JPEG/BMP file")
        image = np.ascontiguousarray(raw[:, :, ::-1])
    suite = NRSuite(names, device)
    values, reasons = suite.score_with_reasons(image)
    result = {"image": str(path), "size": [int(image.shape[1]), int(image.shape[0])], "metrics": {}}
    for name, info in suite.describe().items():
        if values[name] is not None:
            result["metrics"][name] = {"value": values[name], "lower_better": info["lower_better"]}
        else:
            result["metrics"][name] = {"value": "unavailable", "reason": reasons[name]}
    return result
