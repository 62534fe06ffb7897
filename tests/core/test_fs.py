"""registry.core.fs: the one atomic write, the one lock, the one hash."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from registry.core.fs import atomic_dir, atomic_file, file_lock, sha256_bytes, sha256_file


@pytest.mark.parametrize("durable", [False, True])
def test_atomic_file_replaces_whole_or_not_at_all(tmp_path: Path, durable: bool):
    target = tmp_path / "sub" / "memo.json"
    with atomic_file(target, durable=durable) as tmp:
        tmp.write_text("one")
    with pytest.raises(RuntimeError), atomic_file(target, durable=durable) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "one"
    assert [p.name for p in target.parent.iterdir()] == ["memo.json"]  # no temporary left


def test_atomic_file_without_overwrite_never_moves_an_existing_file(tmp_path: Path):
    tag, staging = tmp_path / "tags" / "v1.0.0", tmp_path / ".tmp"
    with atomic_file(tag, overwrite=False, staging=staging) as tmp:
        tmp.write_text("commit-a")
    with pytest.raises(FileExistsError), atomic_file(tag, overwrite=False, staging=staging) as t:
        t.write_text("commit-b")
    assert tag.read_text() == "commit-a" and list(staging.iterdir()) == []


def test_atomic_dir_replaces_or_keeps(tmp_path: Path):
    target = tmp_path / "entry"
    for content, replace in (("a", True), ("b", True), ("c", False)):
        with atomic_dir(target, durable=True, replace=replace) as tmp:
            (tmp / "f").write_text(content)
    assert (target / "f").read_text() == "b"  # replace=False kept the entry already there
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError
    assert (target / "f").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


HOLD = """
import sys, time
from pathlib import Path
from registry.core.fs import file_lock
with file_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(0.5)
    Path(sys.argv[2]).write_text("done")  # the last thing before the lock is released
"""


def test_file_lock_serialises_processes(tmp_path: Path):
    lock, done = tmp_path / "x.lock", tmp_path / "done"
    cmd = [sys.executable, "-c", HOLD, str(lock), str(done)]
    holder = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with file_lock(lock):
            assert done.exists()  # we got it only once the holder was done with it
    finally:
        holder.wait(timeout=30)


def test_hashes(tmp_path: Path):
    data = b"x" * (3 << 20)  # several read chunks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == sha256_bytes(data) == hashlib.sha256(data).hexdigest()
