"""RealMCVSR download: a local HTTP server with Range support serves split-zip parts of a tiny
RealMCVSR-layout archive; transfers are cut, parts corrupted, truncated, changed, and the disk fills up."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from local_http import Handler, serve

from asled import cli, fetch
from asled.data import download as dl
from asled.data.download import Part, download_dataset, group_archives
from asled.errors import DataError
from asled.io import write_png

SPLITS = ("train", "valid", "test")
CLIPS = {"train": ["0002", "0005"], "valid": ["0001"], "test": ["0000"]}
FRAMES = 7


# ------------------------------------------------------------------------------------ the archive


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny RealMCVSR tree as the authors ship it: HR and LRx2, cameras T, UW and W."""
    root = tmp_path_factory.mktemp("source") / "RealMCVSR"
    rng = np.random.default_rng(7)
    for split in SPLITS:
        for resolution, (h, w) in (("HR", (16, 24)), ("LRx2", (8, 12))):
            for camera in ("T", "UW", "W"):
                for clip in CLIPS[split]:
                    for k in range(FRAMES):
                        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                        write_png(root / split / resolution / camera / clip / f"{k:04d}.png", image)
    return root


def expected_files(source: Path) -> dict[str, bytes]:
    """What the extraction must produce: HR/UW and HR/W of every split, nothing else."""
    return {
        str(p.relative_to(source)): p.read_bytes()
        for p in sorted(source.rglob("*.png"))
        if p.relative_to(source).parts[1] == "HR" and p.relative_to(source).parts[2] in ("UW", "W")
    }


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive(source) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.parent.rglob("*")):
            zf.write(path, path.relative_to(source.parent))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def parts(archive) -> dict[str, bytes]:
    """The archive cut into three byte-split parts, as `split -b` or 7-Zip would."""
    step = -(-len(archive) // 3)
    return {f"RealMCVSR.zip.{i + 1:03d}": archive[i * step : (i + 1) * step] for i in range(3)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ the server


@pytest.fixture()
def server(parts, monkeypatch):
    yield from serve(parts, monkeypatch)


def write_params(workdir: Path, manifest: list[dict], **download) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"] = "realmcvsr"
    params["datasets"]["realmcvsr"]["download"] = {"parts": manifest, "retries": 3, "backoff_s": 0.0,
                                                   "timeout_s": 10, **download}
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------ end to end


def test_download_resumes_rejects_a_corrupt_part_and_ends_with_the_exact_layout(
    server, parts, source, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    manifest = [{"file": n, "url": server.url(n), "size": len(d), "sha256": sha(d)} for n, d in parts.items()]
    params = write_params(tmp_path, manifest)
    server.drop_once.add("RealMCVSR.zip.002")
    server.corrupt.add("RealMCVSR.zip.003")
    raw = tmp_path / "data/raw/realmcvsr"
    lock_path = tmp_path / "data/raw/realmcvsr.lock.json"

    # first run: part 2 is cut half-way and resumed, part 3 arrives corrupted and is rejected
    assert cli.main(["--params", str(params), "data", "download", "realmcvsr"]) == 2
    error = capsys.readouterr().err
    assert "data/raw/RealMCVSR.zip.003.part: checksum mismatch" in error
    assert "re-run the download" in error
    assert not raw.exists()
    assert not (tmp_path / "data/raw/RealMCVSR.zip.003.part").exists()  # bad bytes are not resumed from
    assert (tmp_path / "data/raw/RealMCVSR.zip.002").read_bytes() == parts["RealMCVSR.zip.002"]
    part2 = [rng for name, rng in server.requests if name == "RealMCVSR.zip.002"]
    half = len(parts["RealMCVSR.zip.002"]) // 2
    assert part2 == [None, f"bytes={half}-"]  # resumed where the cut left it, not restarted
    assert set(yaml.safe_load(lock_path.read_text())["parts"]) == {"RealMCVSR.zip.001", "RealMCVSR.zip.002"}

    # second run, server fixed: verified parts are not fetched again
    server.corrupt.clear()
    server.requests.clear()
    assert cli.main(["--params", str(params), "data", "download"]) == 0
    assert [name for name, _ in server.requests] == ["RealMCVSR.zip.003"]
    assert tree(raw) == expected_files(source)
    lock = yaml.safe_load(lock_path.read_text())
    assert lock["parts"] == {n: {"sha256": sha(d), "size": len(d), "url": server.url(n)} for n, d in parts.items()}
    leftovers = sorted(p.name for p in (tmp_path / "data/raw").iterdir())
    assert leftovers == ["RealMCVSR.zip.001", "RealMCVSR.zip.002", "RealMCVSR.zip.003", "realmcvsr",
                         "realmcvsr.lock.json"]

    # a third run finds the dataset present and only validates it
    server.requests.clear()
    assert cli.main(["--params", str(params), "data", "download", "realmcvsr"]) == 0
    assert server.requests == []
    assert '"status": "present"' in capsys.readouterr().out


def test_retries_run_out_and_keep_the_partial_bytes(server, parts, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.time, "sleep", lambda seconds: None)
    name = "RealMCVSR.zip.001"
    # every attempt is cut: three drops for one try and two retries
    server.drop_once.add(name)
    original = Handler.do_GET

    def always_drop(self):
        self.server.drop_once.add(name)
        original(self)

    monkeypatch.setattr(Handler, "do_GET", always_drop)
    part = Part(name, server.url(name), len(parts[name]), sha(parts[name]))
    with pytest.raises(DataError) as error:
        fetch.download(dl.part_remote(part, tmp_path), tmp_path / f"{name}.part",
                       fetch.Settings(retries=2, backoff_s=0.0, timeout_s=5))
    assert "failed 3 times" in str(error.value) and "resume" in str(error.value)
    kept = tmp_path / f"{name}.part"
    assert 0 < kept.stat().st_size < len(parts[name])  # the next run resumes from here
    assert parts[name].startswith(kept.read_bytes())
    assert len(server.requests) == 3


def test_server_error_names_the_url(server, tmp_path):
    part = Part("missing.zip", server.url("missing.zip"))
    with pytest.raises(DataError, match=r"missing\.zip: HTTP 404.*check the url"):
        dl.ensure_part(part, tmp_path, dl.Settings(retries=0), {"parts": {}}, tmp_path / "lock.json")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- parts placed by hand


def place(folder: Path, parts: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in parts.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in parts]


def run_download(tmp_path: Path, manifest: list[dict]) -> dict:
    return download_dataset(
        "realmcvsr", tmp_path / "raw/realmcvsr", tmp_path / "raw", tmp_path / "raw/realmcvsr.lock.json",
        {"parts": manifest},
    )


def test_parts_placed_by_hand_are_verified_and_used(parts, source, tmp_path):
    place(tmp_path / "raw", parts)
    result = run_download(tmp_path, [{"file": n} for n in parts])
    assert result["status"] == "extracted"
    assert tree(tmp_path / "raw/realmcvsr") == expected_files(source)
    assert result["parts"] == {n: sha(d) for n, d in parts.items()}
    assert result["validated"]["splits"] == {
        s: {"clips": len(CLIPS[s]), "frames": FRAMES * len(CLIPS[s])} for s in SPLITS
    }


def test_lock_file_catches_a_part_that_changed_since_the_first_download(parts, tmp_path):
    place(tmp_path / "raw", parts)
    run_download(tmp_path, [{"file": n} for n in parts])
    shutil.rmtree(tmp_path / "raw/realmcvsr")
    changed = bytearray(parts["RealMCVSR.zip.002"])
    changed[10] ^= 0x01
    (tmp_path / "raw/RealMCVSR.zip.002").write_bytes(bytes(changed))
    with pytest.raises(DataError) as error:
        run_download(tmp_path, [{"file": n} for n in parts])  # no sha256 in the manifest: the lock decides
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'raw/RealMCVSR.zip.002'}: checksum mismatch")
    assert "realmcvsr.lock.json recorded" in text and "replace it" in text
    assert (tmp_path / "raw/RealMCVSR.zip.002").exists()  # a user's file is never deleted
    assert not (tmp_path / "raw/realmcvsr").exists()


def test_checksum_mismatch_against_the_manifest(parts, tmp_path):
    place(tmp_path / "raw", parts)
    manifest = [{"file": n, "sha256": sha(d)} for n, d in parts.items()]
    manifest[0]["sha256"] = sha(b"something else")
    with pytest.raises(DataError, match=r"RealMCVSR\.zip\.001: checksum mismatch.*params\.yaml expects"):
        run_download(tmp_path, manifest)
    assert not (tmp_path / "raw/realmcvsr").exists() and not (tmp_path / "raw/realmcvsr.lock.json").exists()


def test_truncated_part_with_a_listed_size_is_named(parts, tmp_path):
    place(tmp_path / "raw", parts)
    cut = tmp_path / "raw/RealMCVSR.zip.002"
    cut.write_bytes(parts["RealMCVSR.zip.002"][:-500])
    manifest = [{"file": n, "size": len(d)} for n, d in parts.items()]
    with pytest.raises(DataError, match=rf"^{cut}: .* \(truncated\)"):
        run_download(tmp_path, manifest)
    assert not (tmp_path / "raw/realmcvsr").exists()


@pytest.mark.parametrize("which", ["RealMCVSR.zip.002", "RealMCVSR.zip.003"])
def test_truncated_part_without_size_or_checksum_fails_extraction(parts, tmp_path, which):
    """Nothing says how long the part should be: extraction finds out, names a part, keeps nothing."""
    damaged = dict(parts)
    damaged[which] = parts[which][: len(parts[which]) // 2]
    place(tmp_path / "raw", damaged)
    with pytest.raises(DataError) as error:
        run_download(tmp_path, [{"file": n} for n in parts])
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'raw' / which}: "), text  # the damaged part is the one named
    assert "truncated" in text and "download it again" in text and "nothing was kept" in text
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*parts, "realmcvsr.lock.json"])


def test_full_disk_during_extraction_leaves_no_dataset(parts, tmp_path, monkeypatch):
    place(tmp_path / "raw", parts)
    real_write = dl.write_chunk
    written = {"files": 0}

    class FullDisk:
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_until_full(handle, data, path):
        # the disk fills up on the fifth extracted frame (the parts are already downloaded)
        if path.suffix == ".png":
            written["files"] += 1
            if written["files"] >= 5:
                return real_write(FullDisk(), data, path)
        return real_write(handle, data, path)

    monkeypatch.setattr(dl, "write_chunk", write_until_full)
    with pytest.raises(DataError) as error:
        run_download(tmp_path, [{"file": n} for n in parts])
    text = str(error.value)
    assert str(tmp_path / "raw/realmcvsr") in text and "No space left on device" in text
    assert "free disk space" in text and "need" in text
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*parts, "realmcvsr.lock.json"])


def test_empty_manifest_explains_the_manual_download(tmp_path):
    with pytest.raises(DataError) as error:
        run_download(tmp_path, [])
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'raw/realmcvsr'}: dataset folder is missing")
    assert "github.com/codeslake/RefVSR" in text and "download.parts" in text
    assert not (tmp_path / "raw").exists()


def test_missing_part_without_url_says_where_to_put_it(parts, tmp_path):
    place(tmp_path / "raw", {n: d for n, d in parts.items() if not n.endswith("2")})
    with pytest.raises(DataError, match=r"RealMCVSR\.zip\.002: part is missing and has no url"):
        run_download(tmp_path, [{"file": n} for n in parts])


def test_a_present_dataset_folder_is_validated_not_downloaded(parts, source, tmp_path):
    shutil.copytree(source, tmp_path / "raw/realmcvsr")
    result = run_download(tmp_path, [{"file": "never-fetched.zip", "url": "http://127.0.0.1:9/x.zip"}])
    assert result["status"] == "present"
    assert result["validated"]["splits"]["train"] == {"clips": 2, "frames": 14}


# ------------------------------------------------------------------------------------- archive kinds


def test_part_names_are_grouped_and_gaps_reported(tmp_path):
    names = ["b.z01", "b.z02", "b.zip", "a.zip.002", "a.zip.001", "c.zip"]
    archives = group_archives([tmp_path / n for n in names])
    assert [(a.name, a.kind, [p.name for p in a.parts]) for a in archives] == [
        ("a.zip", "split", ["a.zip.001", "a.zip.002"]),
        ("b.zip", "spanned", ["b.z01", "b.z02", "b.zip"]),
        ("c.zip", "zip", ["c.zip"]),
    ]
    with pytest.raises(DataError, match=r"a\.zip\.002: part is missing from the series"):
        group_archives([tmp_path / "a.zip.001", tmp_path / "a.zip.003"])
    with pytest.raises(DataError, match=r"b\.zip: last part of the spanned archive"):
        group_archives([tmp_path / "b.z01"])
    with pytest.raises(DataError, match="not a zip part name"):
        group_archives([tmp_path / "RealMCVSR.tar"])


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP `zip` is needed to make a spanned archive")
@pytest.mark.parametrize("zip64", [False, True])
def test_spanned_info_zip_archive(source, tmp_path, zip64):
    """`zip -s` parts (.z01, .z02, .zip): offsets are per disk, the first disk starts with a marker."""
    out = tmp_path / "raw"
    out.mkdir()
    flags = ["-fz"] if zip64 else []
    subprocess.run(["zip", "-q", "-r", *flags, "-s", "64k", str(out / "RealMCVSR.zip"), "RealMCVSR"],
                   cwd=source.parent, check=True)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) >= 3 and names[-1] == "RealMCVSR.zip"
    run_download(tmp_path, [{"file": n} for n in names])
    assert tree(out / "realmcvsr") == expected_files(source)


def test_several_archives_one_per_split_and_overlaps(source, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for split in SPLITS:
        with zipfile.ZipFile(folder / f"{split}.zip", "w", zipfile.ZIP_STORED) as zf:
            for path in sorted((source / split).rglob("*.png")):
                zf.write(path, path.relative_to(source.parent))
    run_download(tmp_path, [{"file": f"{s}.zip"} for s in SPLITS])
    assert tree(folder / "realmcvsr") == expected_files(source)
    shutil.rmtree(folder / "realmcvsr")
    shutil.copy2(folder / "test.zip", folder / "test-copy.zip")
    with pytest.raises(DataError, match="archives overlap"):
        run_download(tmp_path, [{"file": f"{s}.zip"} for s in SPLITS] + [{"file": "test-copy.zip"}])
    assert not (folder / "realmcvsr").exists()
