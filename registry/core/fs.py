"""Files written whole or not at all, the one cross-process lock, and the one way to hash.

Invariants:
- `atomic_file` / `atomic_dir` stage the new content under a temporary name on the same
  filesystem (next to the target, or in `staging`) and publish it with one rename: a reader in
  another process sees the old content or the new, never a part of either. A failure inside the
  block leaves the target as it was and removes the temporary.
- `durable=True` also flushes the content to disk before the rename and the folder after it, so
  a power cut cannot leave a renamed but empty file (the local store and checkpoints ask for
  it; caches, which are re-verified or recomputed, do not pay for it).
- `overwrite=False` (atomic_file) never replaces an existing target: the rename is a hard
  link, which fails if the target exists (tags never move); `replace=False` (atomic_dir) keeps
  an existing folder and drops the new one (two writers of one content-addressed entry).
- `file_lock` is an exclusive flock: it serialises processes, and closing the file (or the
  holder dying) releases it, so a killed holder never leaves it held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    """Hex sha256 of a file, read in chunks (datasets and weights may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX: fsync the folder itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fsync_file(path)
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


def _link_no_clobber(src: Path, dst: Path) -> None:
    """Create `dst` with `src`'s content, failing if it exists. Hard links make that atomic;
    where a filesystem has none, the caller's lock alone guards the rename."""
    try:
        os.link(src, dst)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst)


@contextlib.contextmanager
def atomic_file(
    target: str | os.PathLike,
    *,
    durable: bool = False,
    overwrite: bool = True,
    staging: str | os.PathLike | None = None,
) -> Iterator[Path]:
    """Yield a temporary path; when the block succeeds it becomes `target` in one rename.

    With `overwrite=False` an existing target raises FileExistsError and is left as it was.
    """
    target = Path(target)
    folder = Path(staging) if staging is not None else target.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    # pid + random: concurrent writers of one target (processes or threads) never share a temp
    tmp = folder / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike,
    *,
    durable: bool = False,
    replace: bool = True,
    staging: str | os.PathLike | None = None,
) -> Iterator[Path]:
    """Yield a temporary folder; when the block succeeds it becomes `target` in one rename.

    An existing `target` is replaced (moved aside, then removed: readers never find it
    missing), or with `replace=False` kept, the new folder being dropped.
    """
    target = Path(target)
    folder = Path(staging) if staging is not None else target.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-{target.name}."))
    try:
        yield tmp
        if durable:
            _fsync_tree(tmp)
        if target.exists():
            if not replace:
                return
            # rename() cannot replace a non-empty folder: move the old one aside first
            old = target.with_name(f".old-{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, target)
            except OSError:
                if replace or not target.exists():
                    raise
                return  # another writer's equal entry got there first
        if durable:
            fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) across processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
