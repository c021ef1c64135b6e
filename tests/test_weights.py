"""Weights staging: registry facts, hash checks, atomic fetches, trust-on-first-use lock, registry fallback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from asled import weights
from asled.cli import main
from asled.weights import REGISTRY, WeightSpec, fetch_one, status


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_registry_hashes_and_names_agree():
    for spec in REGISTRY.values():
        assert (spec.urls or spec.fallbacks) and spec.used_by
        if spec.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        if spec.sha256_prefix:
            assert spec.sha256_prefix in Path(spec.file).name
        # torchvision / OpenMMLab names carry the hash prefix; a pinned full hash must start with it
        match = re.search(r"-([0-9a-f]{8})\.pth$", spec.file)
        if match and spec.sha256:
            assert spec.sha256.startswith(match.group(1))
    assert REGISTRY["clip_rn50"].sha256 in REGISTRY["clip_rn50"].urls[0]


def _spec(tmp_path: Path, payload: bytes, **changes) -> tuple[WeightSpec, str]:
    source = tmp_path / "upstream.bin"
    source.write_bytes(payload)
    spec = WeightSpec("toy", "toy/toy.bin", (source.as_uri(),), ("test",), note="test")
    return dataclasses.replace(spec, **changes), hashlib.sha256(payload).hexdigest()


def test_fetch_verifies_pinned_hash_and_is_atomic(in_tmp):
    spec, digest = _spec(in_tmp, b"weights")
    bad = dataclasses.replace(spec, sha256="0" * 64)
    result = fetch_one(bad, in_tmp / "w", lock={})
    assert result["status"] == "missing" and "does not match" in result["reason"]
    assert "asled weights fetch --only toy" in result["reason"]
    assert not (in_tmp / "w/toy").exists() or not any((in_tmp / "w/toy").iterdir())
    good = dataclasses.replace(spec, sha256=digest)
    assert fetch_one(good, in_tmp / "w", lock={})["status"] == "staged"
    assert status(good, in_tmp / "w", lock={})["sha256"] == digest


def test_unreachable_host_is_missing_with_reason(in_tmp):
    spec, _ = _spec(in_tmp, b"x", urls=("http://127.0.0.1:9/none.pth",))
    result = fetch_one(spec, in_tmp / "w", lock={})
    assert result["status"] == "missing"
    assert "http://127.0.0.1:9/none.pth" in result["reason"] and "place the file at" in result["reason"]


def test_fetch_reads_the_lock_and_only_update_lock_writes_it(in_tmp, monkeypatch):
    """The lock is fetch_weights' own DVC dependency: the pipeline's fetch never rewrites it; the explicit
    `asled weights fetch --update-lock` records the hash (trust on first use), which then binds every fetch."""
    spec, digest = _spec(in_tmp, b"first")
    lock_file = in_tmp / "workflow/weights.lock.json"
    monkeypatch.setattr(weights, "LOCK_FILE", lock_file)
    monkeypatch.setitem(weights.REGISTRY, "toy", spec)
    result = weights.fetch(["toy"], in_tmp / "w")["toy"]
    assert result["status"] == "staged" and result["unlocked"] and not lock_file.exists()
    manifest = json.loads((in_tmp / "w/MANIFEST.json").read_text())
    assert "--update-lock" in manifest["entries"]["toy"]["unlocked"]
    # the file is staged already: --update-lock records it with the source the manifest names
    result = weights.fetch(["toy"], in_tmp / "w", update_lock=True)["toy"]
    assert "unlocked" not in result
    assert json.loads(lock_file.read_text())["toy"] == {"file": spec.file, "sha256": digest, "source": spec.urls[0]}
    before = lock_file.read_bytes()
    assert "unlocked" not in weights.fetch(["toy"], in_tmp / "w")["toy"]
    assert lock_file.read_bytes() == before
    (in_tmp / "w/toy/toy.bin").write_bytes(b"tampered")
    assert status(spec, in_tmp / "w")["status"] == "corrupt"


def test_fetch_weights_declares_the_lock_as_input_only():
    smk = (Path(__file__).resolve().parents[1] / "workflow/rules/weights.smk").read_text()
    rule = smk[smk.index("rule fetch_weights"):]
    assert "workflow/weights.lock.json" in rule[:rule.index("output:")]
    assert "update-lock" not in rule[rule.index("shell:"):]


def test_weights_list_json(in_tmp, capsys):
    assert main(["weights", "list", "--json"]) == 0
    items = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert set(items) == set(REGISTRY)
    assert items["niqe"]["status"] == "missing"
    assert "asled weights fetch --only niqe" in items["niqe"]["reason"]


def _registry_reachable() -> bool:
    try:
        urllib.request.urlopen(f"{weights.PYPI_SIMPLE}/basicsr/", timeout=10).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def test_niqe_from_basicsr_sdist_is_the_same_model(in_tmp, monkeypatch):
    if not _registry_reachable():
        pytest.skip("the package registry is unreachable: the NIQE fallback cannot be fetched here")
    import io
    import tarfile

    import scipy.io

    monkeypatch.setattr(weights, "LOCK_FILE", in_tmp / "workflow/weights.lock.json")
    result = fetch_one(REGISTRY["niqe"], in_tmp / "w")
    assert result["status"] == "staged", result["reason"]
    member = REGISTRY["niqe"].fallbacks[0]
    archive = weights._registry_archive(member, in_tmp)
    with tarfile.open(archive) as tar:
        npz = np.load(io.BytesIO(tar.extractfile(member.member).read()))
    mat = scipy.io.loadmat(in_tmp / "w" / REGISTRY["niqe"].file)
    # the conversion changes the container only: the model numbers are bit-identical
    assert np.array_equal(np.ravel(mat["mu_prisparam"]), np.ravel(npz["mu_pris_param"]))
    assert np.array_equal(mat["cov_prisparam"], npz["cov_pris_param"])
    again = in_tmp / "again.mat"
    with tarfile.open(archive) as tar:
        weights.niqe_npz_to_mat(tar.extractfile(member.member).read(), again)
    assert again.read_bytes() == (in_tmp / "w" / REGISTRY["niqe"].file).read_bytes()  # deterministic bytes
