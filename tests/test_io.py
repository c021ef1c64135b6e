"""Atomic writes: outputs appear only when complete, and are as readable as any file the user creates."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from asled.io import atomic_dir, atomic_path, current_umask, write_png, write_text


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_files_and_folders_get_the_umask_mode(tmp_path, umask):
    """mkstemp/mkdtemp make 0600/0700 entries; renamed into place they would keep it (issue 15)."""
    write_text(tmp_path / "table.md", "| a |\n")
    with atomic_path(tmp_path / "ckpt.pt") as tmp:
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "restored") as tmp:
        write_png(tmp / "0000.png", np.zeros((4, 4, 3), np.uint8))
        (tmp / "sub").mkdir()
    for name in ("table.md", "ckpt.pt", "restored/0000.png"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name
    for name in ("restored", "restored/sub"):
        assert mode(tmp_path / name) == 0o777 & ~umask, name
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(tmp_path / "table.md") == mode(plain)  # as readable as a file open() makes


def test_umask_022_gives_0644_files_and_0755_folders(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.csv", "x\n")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (mode(tmp_path / "a.csv"), mode(tmp_path / "d")) == (0o644, 0o755)


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d"):
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
