"""No-reference image quality metrics through pyiqa, from staged weights only.

Each configured metric (`metrics.nr` in params.yaml) is created with
`pyiqa.create_metric(name, pretrained_model_path=<file under data/weights>)` when its weights are
staged (`asled.weights`); otherwise it is reported as unavailable, with the reason and the command
that stages it. Nothing is downloaded: pyiqa would fetch missing files from its hub, so a metric is
never created before its file is known to be present and verified.

Scores follow pyiqa's definitions (inputs RGB in [0, 1]); `lower_better` says which way is better.
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

DEFAULT_NR = ("niqe", "brisque", "piqe", "topiq_nr", "musiq", "clipiqa")
# Options beyond the weights path; topiq_nr's backbone comes from its own checkpoint, so pyiqa must not
# fetch ImageNet ResNet-50 weights first.
EXTRA_OPTIONS = {"topiq_nr": {"backbone_pretrain": False}}
# Metrics whose pyiqa class takes no path: the file is found under $TORCH_HOME (set to data/weights/torch).
PATHLESS = {"clipiqa"}


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
        values: dict[str, float | None] = {}
        for name in self.names:
            if name not in self.metrics:
                values[name] = None
                continue
            value = self.metrics[name](image_u8)
            # A non-finite score (e.g. too few patches in a tiny image) is not a number to report.
            values[name] = value if math.isfinite(value) else None
        return values

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
    values = suite.score(image)
    result = {"image": str(path), "size": [int(image.shape[1]), int(image.shape[0])], "metrics": {}}
    for name, info in suite.describe().items():
        if info["available"] and values[name] is not None:
            result["metrics"][name] = {"value": values[name], "lower_better": info["lower_better"]}
        elif info["available"]:
            result["metrics"][name] = {"value": "unavailable", "reason": f"{name} returned a non-finite score on this image"}
        else:
            result["metrics"][name] = {"value": "unavailable", "reason": info["reason"]}
    return result
