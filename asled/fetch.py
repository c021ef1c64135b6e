"""One fetch-and-verify layer for the large files asled stages: dataset zip parts (asled/data/download.py)
and metric and network weights (asled/weights.py).

- `download` fetches a URL into `<file>.part`. An interrupted transfer resumes with a `Range` request,
  transient failures are retried with exponential back-off, and the SHA-256 is computed while the bytes
  stream in, so a downloaded file is never read back only to hash it.
- `sha256_file` is the one way a file already on disk is hashed (with a progress bar on a terminal).
- `Stamps` remembers the size, mtime and SHA-256 of files hashed before, in a machine-local JSON file: a
  file whose size and mtime are unchanged is trusted without reading it again (as make and rsync do; a
  file rewritten with the same size and its old mtime restored would not be noticed). An evaluate job
  thus checks LPIPS's 244 MB trunk with one `stat`.
- `read_lock`/`write_lock` read and write the lock files (trust on first use: the hashes of the bytes first
  seen, committed so that every other machine must stage the same bytes). Both are JSON objects of
  entries `{"sha256": ..., ...}` keyed by file or weights name; `data/raw/<name>.lock.json` keeps them
  under `"parts"`, `workflow/weights.lock.json` at the top level. Both layouts are committed in users'
  repositories, so they are kept as they are and read by the same code.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from asled.errors import DataError
from asled.io import atomic_path

CHUNK = 1 << 20
STAMPS_FILE = "hash_stamps.json"
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    retries: int = 5
    backoff_s: float = 2.0
    timeout_s: float = 60.0
    # A host that cannot be reached at the first attempt is retried only when there is no other source:
    # weights have mirrors and registry fallbacks, and an offline machine should reach them at once.
    retry_unreachable: bool = True


@dataclass(frozen=True)
class Remote:
    """What to download, and the fixes an error names (they differ between datasets and weights)."""

    url: str
    name: str  # the file's name in messages and on the progress bar
    size: int | None = None  # expected size in bytes, when known
    resume_fix: str = "re-run the command to resume"
    source_fix: str = "check the url"


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle, progress_bar(path.stat().st_size, f"sha256 {path.name}") as bar:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


class _StreamHash:
    """The SHA-256 of the bytes in a `.part` file, fed chunk by chunk as they are written."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.hash, self.count = hashlib.sha256(), 0

    def update(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.count += len(chunk)

    def sync(self, partial: Path) -> int:
        """The size of `partial`, after making the hash cover exactly its bytes. Bytes this call did not
        write (a partial file left by an earlier run) are read once here; afterwards this is a `stat`."""
        have = partial.stat().st_size if partial.exists() else 0
        if have != self.count:
            self.reset()
            if have:
                with open(partial, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        self.update(chunk)
        return have


class Stamps:
    """Size, mtime and SHA-256 of files hashed before, kept in `file` (None: in memory only).

    `trust_recorded=False` ignores what the file held (an explicit fetch verifies every file once) but
    still trusts what this object recorded itself, so no file is hashed twice in one call. Saving is
    best-effort: the stamps only spare work, and a read-only folder must not fail a job.
    """

    def __init__(self, file: Path | None, *, trust_recorded: bool = True) -> None:
        self.file = Path(file) if file is not None else None
        self.entries = _read_json(self.file) if (self.file and trust_recorded) else {}

    def digest(self, path: Path, key: str) -> str:
        """The SHA-256 of `path`: the stamp's when size and mtime are unchanged, else hashed once now."""
        stat = Path(path).stat()
        entry = self.entries.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry["sha256"]
        # stat before hashing: a file changed while it is read gets a new mtime and is hashed next time
        return self.record(key, path, sha256_file(path), stat)

    def record(self, key: str, path: Path, sha256: str, stat: os.stat_result | None = None) -> str:
        """Stamp `path` with a SHA-256 computed elsewhere (while it was downloaded or converted)."""
        stat = stat or Path(path).stat()
        self.entries[key] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if self.file is not None:
            try:
                merged = {**_read_json(self.file), key: self.entries[key]}
                with atomic_path(self.file) as tmp:
                    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
            except OSError:
                pass  # only a cache: the next check hashes the file again
        return sha256


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ----------------------------------------------------------------------------- the lock files


def read_lock(path: str | Path, section: str | None = None) -> dict:
    """The lock at `path` ({} or {section: {}} when there is none yet); a damaged lock is an error, since
    it is what binds every later download to the bytes first seen."""
    path = Path(path)
    if not path.is_file():
        return {section: {}} if section else {}
    try:
        lock = json.loads(path.read_text())
    except ValueError as error:
        lock, problem = None, str(error)
    else:
        problem = ("not a JSON object" if not isinstance(lock, dict)
                   else f"no {section!r} mapping" if section and not isinstance(lock.get(section), dict) else "")
    if problem:
        raise DataError(f"{path}: lock file is not valid ({problem}); restore it from version control (git "
                        f"checkout -- {path}), or delete it to record the hashes afresh")
    return lock


def write_lock(path: str | Path, lock: dict) -> None:
    """Sorted keys and a trailing newline: the committed file changes only where a hash does."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- HTTP


class _Retry(Exception):
    """A transient failure: the transfer may resume after a pause."""


class _Unreachable(_Retry):
    """No connection at all (refused, no route, unknown host)."""


def download(remote: Remote, partial: Path, settings: Settings = Settings(), *,
             sleep: Callable[[float], None] | None = None) -> Fetched:
    """Download `remote.url` into `partial`, resuming what it holds and retrying; returns its SHA-256.

    The caller verifies the hash and renames the file: a `.part` file is never a finished one."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    stream = _StreamHash()
    failures = 0
    while True:
        try:
            _download_once(remote, partial, settings, stream)
            size = stream.sync(partial)
            return Fetched(partial, stream.hash.hexdigest(), size)
        except _Retry as error:
            failures += 1
            have = partial.stat().st_size if partial.exists() else 0
            if isinstance(error, _Unreachable) and failures == 1 and not settings.retry_unreachable:
                raise DataError(f"{remote.url}: {error}; {remote.source_fix}") from None
            if failures > settings.retries:
                raise DataError(
                    f"{remote.url}: download of {remote.name} failed {failures} times, last: {error}. {partial} "
                    f"keeps the {have} bytes received; {remote.resume_fix}"
                ) from None
            wait = settings.backoff_s * 2 ** (failures - 1)
            print(f"asled: {remote.name}: {error}; retrying in {wait:g} s from byte {have}", file=sys.stderr)
            (sleep or time.sleep)(wait)


def download_verified(remote: Remote, dest: Path, settings: Settings, check: Callable[[Path, str], T]) -> T:
    """Download into `<dest>.part`, run `check(partial, sha256)`, then rename the file to `dest`; returns what
    `check` returns. A check that raises deletes the partial file: bad bytes cannot be fixed by resuming,
    so the next run starts clean."""
    fetched = download(remote, dest.with_name(f"{dest.name}.part"), settings)
    try:
        result = check(fetched.path, fetched.sha256)
    except Exception:
        fetched.path.unlink(missing_ok=True)
        raise
    os.replace(fetched.path, dest)
    return result


def _download_once(remote: Remote, partial: Path, settings: Settings, stream: _StreamHash) -> None:
    have = stream.sync(partial)
    if remote.size is not None and have > remote.size:
        partial.unlink()
        stream.reset()
        have = 0
    if remote.size is not None and have == remote.size:
        return
    response = _open(remote, partial, have, settings, stream)
    if response is None:
        return
    with response:
        if have and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                partial.unlink()
                stream.reset()
                raise _Retry(f"server resumed at byte {start}, not {have}; starting over")
            mode, total = "ab", _content_range_total(response.headers.get("Content-Range"))
        else:
            # 200 (or a file:// URL): the server ignored the Range header, so the body is the whole file
            mode, have = "wb", 0
            stream.reset()
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        if remote.size is not None and total is not None and total != remote.size:
            raise DataError(f"{remote.url}: server reports {total} bytes for {remote.name}, but {remote.size} are "
                            f"expected; {remote.source_fix}")
        _receive(response, partial, mode, have, total if total is not None else remote.size, stream, remote.name)


def _open(remote: Remote, partial: Path, have: int, settings: Settings, stream: _StreamHash):
    """The response for the bytes from `have` on, or None when the server says they are all here."""
    headers = {"User-Agent": "asled-bench", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers), timeout=settings.timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            if _content_range_total(error.headers.get("Content-Range")) == have:
                return None  # everything is already here (the size was not known)
            partial.unlink()
            stream.reset()
            raise _Retry(f"server refused to resume at byte {have} (HTTP 416); starting over") from None
        if error.code in (408, 425, 429) or error.code >= 500:
            raise _Retry(f"HTTP {error.code} {error.reason}") from None
        raise DataError(
            f"{remote.url}: HTTP {error.code} {error.reason} for {remote.name}; {remote.source_fix}"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise _Unreachable(f"cannot connect ({getattr(error, 'reason', error)})") from None


def _receive(response, partial: Path, mode: str, have: int, expected: int | None, stream: _StreamHash,
             name: str) -> None:
    received = have
    with open(partial, mode) as out, progress_bar(expected, name, initial=have) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (http.client.HTTPException, OSError) as error:
                raise _Retry(f"connection lost after {received} of {expected} bytes ({type(error).__name__})") from None
            if not chunk:
                break
            write_chunk(out, chunk, partial)
            stream.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if expected is not None and received < expected:
        raise _Retry(f"connection closed after {received} of {expected} bytes")


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _content_range_total(value: str | None) -> int | None:
    match = re.match(r"bytes (?:\d+-\d+|\*)/(\d+)", value or "")
    return int(match.group(1)) if match else None


def progress_bar(total: int | None, desc: str, initial: int = 0) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, disable=not sys.stderr.isatty())


def write_chunk(handle, data: bytes, path: Path) -> None:
    """Every byte written by a download or an extraction goes through here (a full disk is named)."""
    try:
        handle.write(data)
    except OSError as error:
        raise DataError(
            f"{path}: cannot write ({error.strerror or error}); free disk space on that file system (or fix "
            "its permissions) and re-run: verified files are kept, partial downloads resume"
        ) from error
