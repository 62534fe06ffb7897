"""Paths a spec points at (datasets, regression suites): plain, confined, regular files.

A spec comes from a pull request, so every path in it is untrusted. Two layers, both returning
a reason (a short sentence) or None, so callers attach the spec's file, line and field:

- `path_text_problem(value)`: the string alone. Relative POSIX, normalised (no `..`, `.` or
  empty components, no trailing slash), no backslash, control character, lone surrogate or
  URL, bounded length, not inside `.git`/`.dvc`, the expected suffix.
- `file_problem(root, rel)`: the file system. The path, with every symlink resolved, stays
  inside the repo root, and what it names is a regular file (not a folder, FIFO, socket or
  device); loops, over-long names and unreadable parents are reasons too. A path that does not
  exist is not a problem here: readers report it with their own hint (`dvc pull`).

`open_regular(path)` opens without blocking (a FIFO swapped in later cannot hang a reader) and
re-checks the opened file is regular, so readers never trust the earlier check alone.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INTERNAL = frozenset({".git", ".dvc"})


def path_text_problem(value: str, suffix: str = ".jsonl") -> str | None:
    """Why `value` is not a plain repo-relative path ending in `suffix`, or None."""
    if not value.strip():
        return "empty path"
    if _CONTROL.search(value):
        return "control characters in the path"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "the path is not valid Unicode (a lone surrogate)"
    if "\\" in value:
        return "backslash in the path; use '/'"
    if "://" in value:
        return "a URL; data must be a file in the repository"
    if len(value) > MAX_PATH_CHARS:
        return f"a path of {len(value)} characters; at most {MAX_PATH_CHARS}"
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", value):
        return f"path must be relative to the repo root, got {value[:200]!r}"
    parts = value.split("/")
    if ".." in parts:
        return f"path must stay inside the repo (no '..'), got {value[:200]!r}"
    if any(p in ("", ".") for p in parts):
        return f"not a normalised path (empty or '.' parts), got {value[:200]!r}"
    if any(len(p) > MAX_COMPONENT_CHARS for p in parts):
        return f"a path component longer than {MAX_COMPONENT_CHARS} characters"
    if any(p in _INTERNAL for p in parts):
        return "path inside git or DVC internals"
    if not value.endswith(suffix) or parts[-1] == suffix:
        return f"expected a {suffix} file, got {value[:200]!r}"
    return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _os_reason(exc: OSError) -> str:
    return {
        errno.ELOOP: "a symlink loop",
        errno.ENAMETOOLONG: "the path is too long for the file system",
        errno.EACCES: "permission denied",
        errno.ENOTDIR: "a parent in the path is not a folder",
    }.get(exc.errno or 0, exc.strerror or str(exc))


def file_problem(root: str | os.PathLike, rel: str) -> str | None:
    """Why `root/rel` is not a regular file inside `root`, or None (also None when missing)."""
    try:
        real_root = os.path.realpath(root)
        target = os.path.join(root, rel)
        real = os.path.realpath(target)
        if os.path.commonpath([real_root, real]) != real_root:
            return "a symlink that leads outside the repository"
        info = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _os_reason(exc)
    except ValueError as exc:  # embedded NUL and the like, if a caller skipped the text check
        return str(exc)
    if not stat.S_ISREG(info.st_mode):
        return f"{_kind(info.st_mode)}, not a regular file"
    return None


class NotRegular(OSError):
    """Raised by open_regular when what was opened is not a regular file."""


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open for reading without blocking or following into a non-regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(f"{_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_file(root: str | os.PathLike, rel: str, suffix: str = ".jsonl") -> str | None:
    """Both layers: the text of `rel`, then what it names under `root`."""
    return path_text_problem(rel, suffix) or file_problem(Path(root), rel)
