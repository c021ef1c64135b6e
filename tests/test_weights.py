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
from asled.errors import AsledError
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


# ------------------------------------------------------------------ one fetch layer: resume, one hash, stamps


class _CountingSha256:
    """hashlib.sha256 that counts the bytes it is fed (every file hash in asled goes through asled/fetch.py)."""

    fed = 0

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        type(self).fed += len(data)
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@pytest.fixture
def hashed_bytes(monkeypatch):
    """A function giving the bytes hashed since it was last called."""
    import types

    from asled import fetch as transfer

    monkeypatch.setattr(transfer, "hashlib", types.SimpleNamespace(sha256=_CountingSha256))
    monkeypatch.setattr(_CountingSha256, "fed", 0)

    def since_last() -> int:
        fed, _CountingSha256.fed = _CountingSha256.fed, 0
        return fed

    return since_last


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several chunks, so a cut transfer has something to resume


@pytest.fixture
def weights_server(monkeypatch):
    from local_http import serve

    yield from serve({"toy.pth": PAYLOAD}, monkeypatch)


def _served_spec(server) -> WeightSpec:
    return WeightSpec("toy", "toy/toy.pth", (server.url("toy.pth"),), ("test",), size=len(PAYLOAD),
                      sha256=hashlib.sha256(PAYLOAD).hexdigest())


def test_weights_download_resumes_a_dropped_transfer_and_a_partial_file(in_tmp, weights_server, monkeypatch):
    from asled import fetch as transfer

    monkeypatch.setattr(transfer.time, "sleep", lambda seconds: None)
    spec = _served_spec(weights_server)
    weights_server.drop_once.add("toy.pth")  # cut half-way: resumed in the same fetch
    assert fetch_one(spec, in_tmp / "w", lock={})["status"] == "staged"
    assert weights_server.requests == [("toy.pth", None), ("toy.pth", f"bytes={len(PAYLOAD) // 2}-")]
    assert (in_tmp / "w/toy/toy.pth").read_bytes() == PAYLOAD
    # a `.part` left by an interrupted earlier run: only the missing bytes are requested
    (in_tmp / "w/toy/toy.pth").unlink()
    (in_tmp / "w/toy/toy.pth.part").write_bytes(PAYLOAD[:1000])
    weights_server.requests.clear()
    assert fetch_one(spec, in_tmp / "w", lock={})["status"] == "staged"
    assert weights_server.requests == [("toy.pth", "bytes=1000-")]
    assert (in_tmp / "w/toy/toy.pth").read_bytes() == PAYLOAD and not (in_tmp / "w/toy/toy.pth.part").exists()


def test_bad_bytes_are_not_kept_for_resuming(in_tmp, weights_server):
    weights_server.corrupt.add("toy.pth")
    result = fetch_one(_served_spec(weights_server), in_tmp / "w", lock={})
    assert result["status"] == "missing" and "does not match" in result["reason"]
    assert list((in_tmp / "w/toy").iterdir()) == []  # neither the file nor a .part to resume from


def test_each_file_is_hashed_once_per_fetch_and_not_at_all_when_its_stamp_matches(
        in_tmp, weights_server, monkeypatch, hashed_bytes):
    spec = _served_spec(weights_server)
    monkeypatch.setitem(weights.REGISTRY, "toy", spec)
    monkeypatch.setattr(weights, "LOCK_FILE", in_tmp / "lock.json")
    assert weights.fetch(["toy"], in_tmp / "w")["toy"]["status"] == "staged"
    assert hashed_bytes() == len(PAYLOAD)  # hashed while it streamed in; not read back, not again for the manifest
    assert weights.fetch(["toy"], in_tmp / "w")["toy"]["status"] == "staged"
    assert hashed_bytes() == len(PAYLOAD)  # a fetch verifies a staged file: once
    assert weights.staged_path("toy", in_tmp / "w")[0] == in_tmp / "w/toy/toy.pth"
    assert [item["status"] for item in weights.list_status(in_tmp / "w") if item["name"] == "toy"] == ["staged"]
    assert hashed_bytes() == 0  # evaluate jobs and `weights list`: the stamp vouches for the unchanged file
    stamp = json.loads((in_tmp / "w/hash_stamps.json").read_text())["toy/toy.pth"]
    assert stamp["sha256"] == spec.sha256 and stamp["size"] == len(PAYLOAD)


def test_staged_check_uses_the_stamp_and_detects_a_modified_file(in_tmp, monkeypatch, hashed_bytes):
    import os

    spec, digest = _spec(in_tmp, b"weights bytes")
    spec = dataclasses.replace(spec, sha256=digest)
    monkeypatch.setitem(weights.REGISTRY, "toy", spec)
    monkeypatch.setattr(weights, "LOCK_FILE", in_tmp / "lock.json")
    weights.fetch(["toy"], in_tmp / "w")
    staged = in_tmp / "w/toy/toy.bin"
    hashed_bytes()
    weights.verify_staged("toy", staged)
    assert hashed_bytes() == 0
    # same size, other bytes, a later mtime: the stamp no longer matches, the file is hashed and refused
    before = staged.stat().st_mtime_ns
    staged.write_bytes(b"weights BYTES")
    os.utime(staged, ns=(before + 10**9, before + 10**9))
    with pytest.raises(AsledError) as error:
        weights.verify_staged("toy", staged)
    assert hashed_bytes() == len(b"weights BYTES")
    assert str(staged) in str(error.value) and "asled weights fetch --only toy" in str(error.value)
    assert weights.staged_path("toy", in_tmp / "w")[0] is None
    # restored bytes with a new mtime: hashed once, stamped again, then trusted
    staged.write_bytes(b"weights bytes")
    weights.verify_staged("toy", staged)
    weights.verify_staged("toy", staged)
    assert hashed_bytes() == len(b"weights bytes")


def test_lock_files_keep_their_committed_format(tmp_path):
    """One reader and writer (asled/fetch.py) for both lock files: the committed weights lock reads back and
    is written byte for byte as it is; the dataset lock keeps its `parts` section; a damaged one is named."""
    from asled.errors import DataError
    from asled.fetch import read_lock, write_lock

    committed = Path(__file__).resolve().parents[1] / "workflow/weights.lock.json"
    assert weights.read_lock(committed)["niqe"]["file"] == REGISTRY["niqe"].file
    write_lock(tmp_path / "weights.lock.json", read_lock(committed))
    assert (tmp_path / "weights.lock.json").read_bytes() == committed.read_bytes()
    assert read_lock(tmp_path / "none.json", section="parts") == {"parts": {}}
    (tmp_path / "bad.json").write_text('{"other": {}}')
    with pytest.raises(DataError, match=r"bad\.json: lock file is not valid \(no 'parts' mapping\).*version control"):
        read_lock(tmp_path / "bad.json", section="parts")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match=r"bad\.json: lock file is not valid"):
        read_lock(tmp_path / "bad.json")
