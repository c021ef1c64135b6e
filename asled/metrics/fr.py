"""Full-reference metrics on 8-bit RGB frames: PSNR, SSIM, LPIPS.

Protocol (the paper: "PSNR, SSIM, LPIPS on RGB", full frame):
- PSNR: mean squared error over all pixels and all three channels of the 8-bit images, data range
  255; `inf` for identical images.
- SSIM: Wang et al. 2004 with an 11x11-support Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population covariance, data range 255, computed per channel and averaged (BasicSR's convention;
  `skimage.metrics.structural_similarity` is called directly). `metrics.ssim` selects a peer's
  convention instead (`matlab3d`, `skimage_default`; see `asled.metrics.conventions`).
- LPIPS v0.1 with the AlexNet trunk (`lpips` package), inputs scaled to [-1, 1].
- `border` crops that many pixels from every side first; `y_channel` evaluates PSNR/SSIM on the
  BT.601 luma of MATLAB's `rgb2ycbcr` (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for 8-bit
  R, G, B), kept in floating point as BasicSR does rather than rounded to 8 bits.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np

from asled.errors import AsledError
from asled.metrics.conventions import DEFAULT_SSIM, compute_ssim

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
FETCH_HINT = ("stage it with `asled weights fetch --only lpips_alexnet` (or place the file there) to enable LPIPS; "
              "it is never downloaded at run time")


def _check_pair(ref_u8: np.ndarray, dist_u8: np.ndarray) -> None:
    for name, img in (("reference", ref_u8), ("distorted", dist_u8)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
    if ref_u8.shape != dist_u8.shape:
        raise ValueError(f"image sizes differ: {ref_u8.shape} vs {dist_u8.shape}")


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return img
    if 2 * border >= min(img.shape[:2]):
        raise ValueError(f"border {border} leaves nothing of a {img.shape[1]}x{img.shape[0]} image")
    return img[border:-border, border:-border]


def rgb_to_y(img_u8: np.ndarray) -> np.ndarray:
    """BT.601 luma of MATLAB's `rgb2ycbcr` for 8-bit RGB, as float64 in [16, 235]."""
    img = img_u8.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def _prepare(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    _check_pair(ref_u8, dist_u8)
    ref, dist = crop_border(ref_u8, border), crop_border(dist_u8, border)
    if y_channel:
        return rgb_to_y(ref), rgb_to_y(dist)
    return ref.astype(np.float64), dist.astype(np.float64)


def psnr(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of 8-bit RGB images (MSE over all channels, data range 255); `inf` if identical."""
    ref, dist = _prepare(ref_u8, dist_u8, border, y_channel)
    mse = float(np.mean((ref - dist) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def ssim(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0, y_channel: bool = False,
         convention: str = DEFAULT_SSIM) -> float:
    """SSIM of 8-bit RGB images under `convention` (`asled.metrics.conventions.SSIM_CONVENTIONS`)."""
    ref, dist = _prepare(ref_u8, dist_u8, border, y_channel)
    return compute_ssim(ref, dist, convention)


def alexnet_weights_path() -> Path:
    """Where torchvision keeps the AlexNet ImageNet weights: `$TORCH_HOME/hub/checkpoints/...`."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
    # Shown in tables and logs: relative to the working directory (the repository) when inside it,
    # so results carry no machine-specific paths.
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


class LPIPSMetric:
    """LPIPS v0.1, AlexNet trunk, on 8-bit RGB images (scaled to [-1, 1]). Lower is better.

    Never downloads: the AlexNet ImageNet weights (torchvision's `alexnet-owt-7be5be79.pth`) must
    already be in `$TORCH_HOME/hub/checkpoints`; LPIPS's own linear heads ship inside the `lpips`
    package. Use `LPIPSMetric.available()` to ask first; constructing it without the weights raises
    an `AsledError` with the same reason.
    """

    def __init__(self, device: str = "cpu", *, check_hash: bool = True) -> None:
        ok, reason = self.available()
        if not ok:
            raise AsledError(reason)
        import lpips
        import torch

        path = alexnet_weights_path()
        if check_hash:
            expected = ALEXNET_FILE.rsplit("-", 1)[1].split(".")[0]
            actual = _sha256_prefix(path)
            if actual != expected:
                raise AsledError(
                    f"{path}: checksum prefix {actual} does not match {expected} (corrupt or wrong file); "
                    f"delete it and {FETCH_HINT}"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # pnet_rand=True: lpips builds the AlexNet trunk without asking torchvision to fetch
            # anything; the ImageNet weights are loaded below from the local file.
            model = lpips.LPIPS(pretrained=True, net="alex", version="0.1", pnet_rand=True, verbose=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise AsledError(f"{path}: cannot be read as AlexNet weights ({exc}); delete it and {FETCH_HINT}") from exc
        trunk = {}
        for key in model.net.state_dict():
            _, index, param = key.split(".")  # "slice2.3.weight" -> features.3.weight
            source = f"features.{index}.{param}"
            if source not in state:
                raise AsledError(f"{path}: no '{source}' in the file (not torchvision AlexNet); delete it and {FETCH_HINT}")
            trunk[key] = state[source]
        model.net.load_state_dict(trunk, strict=True)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, "") when LPIPS can run offline, else (False, reason naming the file and the fix)."""
        try:
            import lpips  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return False, f"the `lpips` package cannot be imported ({exc}); install the project's dependencies"
        path = alexnet_weights_path()
        if not path.is_file() or path.stat().st_size == 0:
            return False, (
                f"LPIPS needs the AlexNet ImageNet weights {path} (torchvision, {ALEXNET_URL}), which are "
                f"missing; {FETCH_HINT}"
            )
        return True, ""

    def __call__(self, ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0) -> float:
        import torch

        _check_pair(ref_u8, dist_u8)
        ref, dist = crop_border(ref_u8, border), crop_border(dist_u8, border)

        def to_t(img: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(127.5).sub(1.0)
            return t.unsqueeze(0).to(self.device)

        with torch.inference_mode():
            return float(self.model(to_t(ref), to_t(dist)).item())


def load_lpips(enabled: bool = True, device: str = "auto") -> tuple[LPIPSMetric | None, str | None]:
    """(metric, None) when LPIPS can run offline, else (None, the reason it cannot)."""
    if not enabled:
        return None, "disabled (metrics.lpips is false in params.yaml)"
    ok, reason = LPIPSMetric.available()
    if not ok:
        return None, reason
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return LPIPSMetric(device=device), None
    except AsledError as exc:
        return None, str(exc)


def score_pair(
    ref_u8: np.ndarray,
    dist_u8: np.ndarray,
    *,
    border: int = 0,
    y_channel: bool = False,
    ssim_convention: str = DEFAULT_SSIM,
    lpips: bool = True,
    device: str = "auto",
) -> dict:
    """{"psnr", "ssim", "lpips"} of one image pair; "lpips" None plus "lpips_unavailable" (reason) without it."""
    result = {
        "psnr": psnr(ref_u8, dist_u8, border=border, y_channel=y_channel),
        "ssim": ssim(ref_u8, dist_u8, border=border, y_channel=y_channel, convention=ssim_convention),
    }
    metric, reason = load_lpips(lpips, device)
    result["lpips"] = metric(ref_u8, dist_u8, border=border) if metric is not None else None
    if metric is None:
        result["lpips_unavailable"] = reason
    result.update(border=border, y_channel=y_channel, ssim_convention=ssim_convention)
    return result
