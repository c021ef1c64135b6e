"""RealMCVSR from its zip parts: resumable download, SHA-256 checks, streaming extraction.

RealMCVSR is distributed as tens-of-gigabyte zip files (later re-uploaded as ~10 GB split-zip parts)
behind cloud-folder shares, with no published checksums, and downloads of that size die half-way.
`download_dataset` turns the parts listed in `params.yaml` (`datasets.<name>.download.parts`: file,
optional url, size and sha256) into `data/raw/<name>` in the RealMCVSR layout:

1. **Parts.** Each part lives at `data/raw/<file>`. A part already there (downloaded earlier, or
   placed by hand after a browser download) is verified and used as it is. A missing part with a URL
   is fetched over HTTP(S) into `<file>.part` by asled/fetch.py (the layer weights use too): an interrupted
   transfer resumes with a `Range` request, failures are retried with exponential back-off, the SHA-256 is
   computed as the bytes arrive, and only a verified file is renamed to `<file>`.
2. **Hashes.** A part must match the manifest's size and SHA-256 where given. The first time a part
   is verified, its size and SHA-256 go into a lock file (`data/raw/<name>.lock.json`); from then on
   the part must match the lock too, so a re-download or a copy on another machine is checked
   against the bytes first seen, even when the manifest has no checksum (trust on first use).
3. **Archives.** Parts are grouped by name: `<a>.zip` alone; byte-split `<a>.zip.001, .002, ...`
   (a zip cut into pieces, as `split` or 7-Zip make); spanned `<a>.z01, .z02, ..., <a>.zip` (Info-ZIP
   `zip -s`, WinZip). Several archives (e.g. one per split) are all extracted. The parts of an
   archive are read as one virtual file: nothing is joined on disk.
4. **Extraction** reads the central directory, then streams each wanted member through zlib (or bz2)
   into its place, checking its CRC-32 and size. Only `<split>/HR/<camera>/<clip>/<frame>.png` of the
   configured splits and cameras is kept, whatever folder prefix the archive uses (`RealMCVSR/...`);
   LRx2/LRx4 and unlisted cameras are skipped. Everything is extracted into a temporary folder beside
   the destination, validated (asled.data.layout), and renamed into place: a truncated part, a full
   disk or a bad frame leaves no dataset folder behind, while the verified parts stay for the next run.
"""

from __future__ import annotations

import bz2
import io
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from asled.errors import ConfigError, DataError
from asled.fetch import (
    CHUNK,
    Remote,
    Settings,
    download_verified,
    progress_bar,
    read_lock,
    sha256_file,
    write_chunk,
    write_lock,
)
from asled.io import atomic_dir

SOURCE_PAGE = "https://github.com/codeslake/RefVSR#2-dataset (also https://junyonglee.me/datasets/RealMCVSR)"
RESOLUTIONS = ("HR", "LRx2", "LRx4")


@dataclass(frozen=True)
class Part:
    """One file of the manifest: where it comes from and what it must hash to (both optional)."""

    file: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None


def manual_download_help(dataset: str, raw: Path) -> str:
    """What to do when the dataset is neither on disk nor downloadable from the manifest."""
    return (
        f"{raw}: dataset folder is missing and datasets.{dataset}.download.parts in params.yaml is empty. "
        f"RealMCVSR is published only as cloud-folder shares ({SOURCE_PAGE}) without direct links or "
        f"checksums: download its zip files in a browser into data/raw/ and list them under "
        f"datasets.{dataset}.download.parts (file names; url, size and sha256 are optional), then run "
        f"`asled data download {dataset}`; or extract them yourself so that {raw}/<split>/HR/<camera>/ "
        f"exists (or point datasets.{dataset}.root at such a folder)"
    )


def parts_from_config(download: dict | None) -> tuple[list[Part], Settings]:
    download = download or {}
    parts = []
    for item in download.get("parts", []):
        sha = item.get("sha256")
        parts.append(Part(item["file"], item.get("url"), item.get("size"), sha.lower() if sha else None))
    names = [p.file for p in parts]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"params.yaml: download part {duplicate!r} is listed twice; remove one entry")
    defaults = Settings()
    settings = Settings(
        int(download.get("retries", defaults.retries)),
        float(download.get("backoff_s", defaults.backoff_s)),
        float(download.get("timeout_s", defaults.timeout_s)),
    )
    return parts, settings


# ----------------------------------------------------------------------------- verification


def verify(path: Path, part: Part, lock: dict, lock_path: Path, *, downloaded: bool,
           digest: str | None = None) -> dict:
    """Size and SHA-256 of `path` against the manifest and the lock; returns the lock entry.

    `downloaded`: the file is ours (a `.part` file); otherwise the user placed it, and the fix named
    in an error is to replace it rather than to re-run. `digest`: its SHA-256, computed while it was
    downloaded (the file is then not read again); else the file is hashed here, once.
    """
    size = path.stat().st_size
    fix = (
        "it was deleted; re-run the download to fetch it again"
        if downloaded
        else f"replace it with a good copy (or delete it{' to download it again' if part.url else ''})"
    )
    if part.size is not None and size != part.size:
        what = "truncated" if size < part.size else "too long"
        raise DataError(f"{path}: {size} bytes, but params.yaml lists {part.size} for {part.file} ({what}); {fix}")
    recorded = lock["parts"].get(part.file)
    if recorded and recorded.get("size") is not None and recorded["size"] != size:
        raise DataError(
            f"{path}: {size} bytes, but {lock_path} recorded {recorded['size']} when {part.file} was first "
            f"verified; {fix}, or delete its entry in the lock file if the upstream file really changed"
        )
    actual = digest or sha256_file(path)
    if part.sha256 and actual != part.sha256:
        raise DataError(
            f"{path}: checksum mismatch, SHA-256 {actual} but params.yaml expects {part.sha256}; the file is "
            f"corrupt or a different version: {fix}"
        )
    if recorded and recorded.get("sha256") != actual:
        raise DataError(
            f"{path}: checksum mismatch, SHA-256 {actual} but {lock_path} recorded {recorded.get('sha256')} "
            f"when {part.file} was first verified; {fix}, or delete its entry in the lock file if the upstream "
            "file really changed"
        )
    return {"sha256": actual, "size": size, "url": part.url}


def part_remote(part: Part, dest_dir: Path) -> Remote:
    """How asled/fetch.py downloads `part` (resumed, retried, hashed while it streams), and the fixes it names."""
    return Remote(
        part.url, part.file, part.size,
        resume_fix="re-run `asled data download` to resume (or raise download.retries in params.yaml)",
        source_fix=(f"check the url and size in params.yaml (datasets.<name>.download.parts) or download the "
                    f"file by hand into {dest_dir / part.file}"),
    )


def ensure_part(part: Part, dest_dir: Path, settings: Settings, lock: dict, lock_path: Path) -> Path:
    """The verified part at `dest_dir/<file>`: used as it is if present, else downloaded."""
    path = dest_dir / part.file
    if path.is_file():
        entry = verify(path, part, lock, lock_path, downloaded=False)
    else:
        if not part.url:
            raise DataError(
                f"{path}: part is missing and has no url in params.yaml; download it by hand from {SOURCE_PAGE} "
                "into that path, or add its url"
            )
        entry = download_verified(
            part_remote(part, dest_dir), path, settings,
            lambda partial, digest: verify(partial, part, lock, lock_path, downloaded=True, digest=digest),
        )
    if lock["parts"].get(part.file) != entry:
        lock["parts"][part.file] = entry
        write_lock(lock_path, lock)
    return path


# ----------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class Archive:
    name: str
    kind: str  # "zip" | "split" (<a>.zip.001 ...) | "spanned" (<a>.z01 ... <a>.zip)
    parts: tuple[Path, ...]


def group_archives(paths: list[Path]) -> list[Archive]:
    """Group part files into archives by name, in disk order; gaps in a numbered series are errors."""
    split: dict[str, dict[int, Path]] = {}
    spanned: dict[str, dict[int, Path]] = {}
    whole: dict[str, Path] = {}
    for path in paths:
        name = path.name
        if match := re.fullmatch(r"(.+\.zip)\.(\d{3})", name, re.IGNORECASE):
            split.setdefault(match.group(1), {})[int(match.group(2))] = path
        elif match := re.fullmatch(r"(.+)\.z(\d{2,})", name, re.IGNORECASE):
            spanned.setdefault(match.group(1), {})[int(match.group(2))] = path
        elif name.lower().endswith(".zip"):
            whole[name[:-4]] = path
        else:
            raise DataError(
                f"{path}: not a zip part name (<name>.zip, <name>.zip.001 ..., or <name>.z01 ... with <name>.zip); "
                "rename it or fix its file name in params.yaml"
            )
    archives = []
    for base, numbered in sorted(split.items()):
        archives.append(Archive(base, "split", _series(numbered, 1, base + ".%03d")))
    for base, numbered in sorted(spanned.items()):
        last = whole.pop(base, None)
        if last is None:
            first = numbered[min(numbered)]
            raise DataError(f"{first.with_name(base + '.zip')}: last part of the spanned archive {base} is missing; "
                            "download it into that path and list it in params.yaml")
        archives.append(Archive(base + ".zip", "spanned", _series(numbered, 1, base + ".z%02d") + (last,)))
    for base, path in sorted(whole.items()):
        archives.append(Archive(path.name, "zip", (path,)))
    return archives


def _series(numbered: dict[int, Path], first: int, pattern: str) -> tuple[Path, ...]:
    folder = next(iter(numbered.values())).parent
    for number in range(first, max(numbered) + 1):
        if number not in numbered:
            raise DataError(
                f"{folder / (pattern % number)}: part is missing from the series (found "
                f"{', '.join(p.name for _, p in sorted(numbered.items()))}); download it and list it in params.yaml"
            )
    return tuple(path for _, path in sorted(numbered.items()))


class JoinedParts(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream (disk `i` starts at `starts[i]`)."""

    def __init__(self, paths: tuple[Path, ...]) -> None:
        super().__init__()
        self.paths = paths
        self.sizes = [p.stat().st_size for p in paths]
        self.starts = [sum(self.sizes[:i]) for i in range(len(paths))]
        self.size = sum(self.sizes)
        self._handles = [open(p, "rb") for p in paths]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def part_at(self, offset: int) -> Path:
        """The part file holding byte `offset` of the joined stream (the last one past the end)."""
        return self.paths[self._disk(offset)]

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            disk = self._disk(self._pos)
            handle = self._handles[disk]
            handle.seek(self._pos - self.starts[disk])
            want = min(len(view) - done, self.starts[disk] + self.sizes[disk] - self._pos)
            got = handle.readinto(view[done : done + want])
            if not got:
                break
            done += got
            self._pos += got
        return done

    def _disk(self, offset: int) -> int:
        for i in range(len(self.paths)):
            if offset < self.starts[i] + self.sizes[i]:
                return i
        return len(self.paths) - 1

    def read_exact(self, offset: int, count: int, what: str) -> bytes:
        self.seek(offset)
        data = self.read(count)
        if len(data) != count:
            raise DataError(
                f"{self.part_at(min(offset, self.size - 1))}: zip part is truncated: {what} needs {count} bytes at "
                f"offset {offset} but the parts end at byte {self.size}; download that part again"
            )
        return data

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    flags: int
    crc: int
    compressed: int
    size: int
    disk: int
    offset: int


def read_directory(view: JoinedParts, archive: Archive) -> list[Member]:
    """The central directory of a (possibly split or spanned) zip, ZIP64 included."""
    label = archive.parts[-1]
    tail_len = min(view.size, 22 + 65535)
    tail = view.read_exact(view.size - tail_len, tail_len, "the end of the archive")
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise DataError(
            f"{label}: no zip end record: the archive's last part is truncated, missing, or not a zip; "
            "download it again"
        )
    eocd_pos = view.size - tail_len + at
    _, disk_no, cd_disk, _, count, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[at : at + 22])
    cd_end = eocd_pos
    needs_zip64 = 0xFFFF in (disk_no, cd_disk, count) or 0xFFFFFFFF in (cd_size, cd_offset)
    locator = view.read_exact(eocd_pos - 20, 20, "the ZIP64 end locator") if eocd_pos >= 20 else b""
    if needs_zip64 and locator[:4] != b"PK\x06\x07":
        raise DataError(f"{label}: ZIP64 end locator is missing; the archive is corrupt, download it again")
    if locator[:4] == b"PK\x06\x07":
        _, z64_disk, z64_offset, _ = struct.unpack("<4sIQI", locator)
        # the ZIP64 record sits between the central directory and the locator
        cd_end = eocd_pos - 20 - 56 if archive.kind != "spanned" else None
        record = view.read_exact(
            cd_end if cd_end is not None else _absolute(view, archive, z64_disk, z64_offset), 56, "the ZIP64 end record"
        )
        sig, _, _, _, disk_no, cd_disk, _, count, cd_size, cd_offset = struct.unpack("<4sQHHIIQQQQ", record)
        if sig != b"PK\x06\x06":
            raise DataError(f"{label}: ZIP64 end record is corrupt; download the archive again")
    disks = len(archive.parts) if archive.kind == "spanned" else 1
    if disk_no != disks - 1:
        raise DataError(
            f"{label}: the archive says it has {disk_no + 1} disk(s) but {disks} part(s) were given as its disks; "
            "a part is missing or the parts are named in the wrong scheme"
        )
    if archive.kind == "spanned":
        cd_start = _absolute(view, archive, cd_disk, cd_offset)
    else:
        # bytes before the archive proper (a self-extractor stub) shift every offset alike
        cd_start = cd_end - cd_size
        shift = cd_start - cd_offset
        if shift < 0:
            # the parts hold fewer bytes than the archive's own offsets say it has: in a byte-split
            # series every part but the last has the same size, so a short one is the truncated one
            largest = max(view.sizes)
            short = [(p, n) for p, n in zip(archive.parts[:-1], view.sizes[:-1]) if n < largest]
            culprit, detail = (short[0][0], f"{short[0][1]} bytes where the other parts have {largest}") if short else (
                label, "or a part is missing")
            raise DataError(
                f"{culprit}: zip part is truncated ({detail}): the archive needs {-shift} bytes more than its "
                "parts hold; download it again"
            )
    directory = view.read_exact(cd_start, cd_size, "the central directory")
    members, pos = [], 0
    for _ in range(count):
        if directory[pos : pos + 4] != b"PK\x01\x02":
            raise DataError(f"{label}: central directory entry {len(members)} is corrupt; download the archive again")
        (_, _, _, flags, method, _, _, crc, compressed, size, name_len, extra_len, comment_len, disk, _, _,
         offset) = struct.unpack("<4sHHHHHHIIIHHHHHII", directory[pos : pos + 46])
        raw_name = directory[pos + 46 : pos + 46 + name_len]
        extra = directory[pos + 46 + name_len : pos + 46 + name_len + extra_len]
        pos += 46 + name_len + extra_len + comment_len
        size, compressed, offset, disk = _zip64_extra(extra, size, compressed, offset, disk)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        if archive.kind != "spanned":
            disk, offset = 0, offset + shift
        members.append(Member(name, method, flags, crc, compressed, size, disk, offset))
    return members


def _absolute(view: JoinedParts, archive: Archive, disk: int, offset: int) -> int:
    if archive.kind != "spanned":
        return offset
    if disk >= len(view.starts):
        raise DataError(f"{archive.parts[-1]}: refers to disk {disk + 1} of {len(view.starts)}; a part is missing")
    return view.starts[disk] + offset


def _zip64_extra(extra: bytes, size: int, compressed: int, offset: int, disk: int) -> tuple[int, int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            fields, at = [], 0
            for value, width in ((size, 8), (compressed, 8), (offset, 8), (disk, 4)):
                full = 0xFFFFFFFF if width == 8 else 0xFFFF
                if value == full and at + width <= len(body):
                    value = int.from_bytes(body[at : at + width], "little")
                    at += width
                fields.append(value)
            return fields[0], fields[1], fields[2], fields[3]
        pos += 4 + length
    return size, compressed, offset, disk


def layout_target(name: str, splits: tuple[str, ...], cameras: tuple[str, ...]) -> tuple[str, ...] | None:
    """`(split, "HR", camera, clip, frame)` for a wanted member, None for anything to skip.

    Whatever folders precede `<split>/<HR|LRx2|LRx4>/<camera>/` in the archive are dropped.
    """
    parts = name.replace("\\", "/").split("/")
    if name.endswith("/") or any(p.startswith(".") or p == "__MACOSX" for p in parts if p):
        return None
    for i in range(len(parts) - 4):
        if parts[i] in ("train", "valid", "test") and parts[i + 1] in RESOLUTIONS:
            split, resolution, camera, *rest = parts[i:]
            if split in splits and resolution == "HR" and camera in cameras and len(rest) == 2 and all(rest):
                return (split, "HR", camera, *rest)
            return None
    return None


def extract(archive: Archive, dest: Path, splits: tuple[str, ...], cameras: tuple[str, ...],
            written: dict[tuple[str, ...], str]) -> dict:
    """Stream the wanted members of `archive` into `dest`; returns counts. `written`: target -> archive."""
    view = JoinedParts(archive.parts)
    try:
        members = read_directory(view, archive)
        wanted = [(m, t) for m in members if (t := layout_target(m.name, splits, cameras))]
        total = sum(m.size for m, _ in wanted)
        with progress_bar(total, f"extract {archive.name}") as bar:
            for member, target in wanted:
                if target in written:
                    raise DataError(
                        f"{archive.parts[0]}: {member.name} is also in {written[target]}; the archives overlap, "
                        "list only one of them in params.yaml"
                    )
                written[target] = archive.name
                try:
                    _extract_member(view, archive, member, dest.joinpath(*target))
                except DataError as error:
                    if isinstance(error.__cause__, OSError):
                        raise DataError(f"{error} (the wanted members of {archive.name} need {total} bytes)") from error
                    raise
                bar.update(member.size)
    finally:
        view.close()
    return {"archive": archive.name, "parts": [p.name for p in archive.parts], "members": len(members),
            "extracted": len(wanted), "bytes": total}


def _extract_member(view: JoinedParts, archive: Archive, member: Member, out: Path) -> None:
    if member.flags & 0x1:
        raise DataError(f"{archive.parts[0]}: {member.name} is encrypted; extract the archive with its password by hand")
    if member.method == 0:
        decompress = None
    elif member.method == 8:
        decompress = zlib.decompressobj(-15)
    elif member.method == 12:
        decompress = bz2.BZ2Decompressor()
    else:
        raise DataError(
            f"{archive.parts[0]}: {member.name} uses zip compression method {member.method} (only stored, deflate "
            "and bzip2 are read); extract the archive by hand into the dataset folder"
        )
    start = _absolute(view, archive, member.disk, member.offset)
    header = view.read_exact(start, 30, f"the local header of {member.name}")
    sig, *_, name_len, extra_len = struct.unpack("<4sHHHHHIIIHH", header)
    if sig != b"PK\x03\x04":
        raise DataError(
            f"{view.part_at(start)}: no zip entry where {member.name} should start (byte {start}); a part is "
            "truncated, missing or out of order: download the parts again"
        )
    view.seek(start + 30 + name_len + extra_len)
    remaining, crc, size = member.compressed, 0, 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as handle:
        while remaining:
            offset = view.tell()
            chunk = view.read(min(CHUNK, remaining))
            if not chunk:
                raise DataError(
                    f"{view.part_at(offset - 1)}: zip part is truncated: {member.name} continues past the end of "
                    f"the parts (byte {view.size}); download the part again"
                )
            remaining -= len(chunk)
            try:
                data = decompress.decompress(chunk) if decompress is not None else chunk
            except (zlib.error, OSError, ValueError) as error:
                raise DataError(
                    f"{view.part_at(offset)}: {member.name} does not decompress ({error}); the part is corrupt, "
                    "download it again"
                ) from None
            crc = zlib.crc32(data, crc)
            size += len(data)
            write_chunk(handle, data, out)
        if member.method == 8:
            tail = decompress.flush()
            crc = zlib.crc32(tail, crc)
            size += len(tail)
            write_chunk(handle, tail, out)
    if size != member.size or crc != member.crc:
        raise DataError(
            f"{view.part_at(start)}: {member.name} fails its CRC/size check ({size} bytes, expected {member.size}); "
            "the part holding it is corrupt, download it again"
        )


# ----------------------------------------------------------------------------- the whole step


def download_dataset(
    dataset: str,
    raw: Path,
    downloads: Path,
    lock_path: Path,
    download: dict | None,
    *,
    splits: tuple[str, ...] = ("train", "valid", "test"),
    cameras: tuple[str, ...] = ("UW", "W"),
) -> dict:
    """Make `raw` hold the dataset in RealMCVSR layout from the manifest's parts; returns a summary."""
    from asled.data.layout import validate_raw

    raw, downloads, lock_path = Path(raw), Path(downloads), Path(lock_path)
    if raw.is_dir():
        # extraction is atomic, so an existing folder is complete (or placed by the user)
        return {"status": "present", "validated": validate_raw(raw, splits, cameras, check_pixels=False)}
    parts, settings = parts_from_config(download)
    if not parts:
        raise DataError(manual_download_help(dataset, raw))
    lock = read_lock(lock_path, section="parts")
    paths = [ensure_part(part, downloads, settings, lock, lock_path) for part in parts]
    archives = group_archives(paths)
    written: dict[tuple[str, ...], str] = {}
    with atomic_dir(raw) as tmp:
        try:
            extracted = [extract(archive, tmp, splits, cameras, written) for archive in archives]
            summary = validate_raw(tmp, splits, cameras, check_pixels=False)
        except DataError as error:
            # name the destination, not the temporary folder that is about to be removed
            raise DataError(
                f"{str(error).replace(str(tmp), str(raw))} [extracting into {raw}; nothing was kept there, the "
                f"verified parts in {downloads} were]"
            ) from error.__cause__
        summary["root"] = str(raw)
    return {
        "status": "extracted",
        "archives": extracted,
        "lock": str(lock_path),
        "parts": {p.name: lock["parts"][p.name]["sha256"] for p in paths},
        "validated": summary,
    }
