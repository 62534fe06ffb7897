"""Take a pull request's specs and data pointers -- and nothing else -- into a trusted checkout.

CI judges a PR with code from a trusted ref (the PR's base commit, or a pinned tool release):
that checkout's `registry/`, Makefile, pyproject.toml, `.dvc/config` (which decides where
`dvc pull` sends the runner's credentials) and `.github/` are what install, train, evaluate and
gate. From the PR head only the content under `paths` (specs, the DVC data pointer, regression
suites) is taken, as untrusted input, read from git objects (`ls-tree`, `cat-file`) so nothing
of the head is ever checked out or run.

Invariants:
- Nothing is written unless every entry passes: regular files only (no symlink, no submodule),
  names of plain characters, each file and the total bounded in size, the count bounded, and
  every `.dvc` file a plain `dvc add` pointer whose outputs stay under the data folders (so
  `dvc pull` can never write over trusted code). Problems are all reported at once
  (InvalidInput, exit 2), each naming the path and the reason.
- Afterwards the files under `paths` are exactly the head's: changed ones rewritten (mode 0644),
  files the trusted ref tracks there and the head lacks removed. Nothing outside `paths` is
  touched, and `paths` may never name trusted files (`.dvc/`, `.github/`, `registry/`, ...).
- Bounded time and memory: one `ls-tree` with sizes (checked before any blob is read), then
  `cat-file --batch` over groups of at most BATCH_BYTES into a staging folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from registry.core.fs import atomic_file
from registry.core.git import GitReader
from registry.errors import InvalidInput, Problem
from registry.spec.loader import load_yaml

DEFAULT_PATHS = ("adapters", "datasets.dvc", "regression")
# Where a taken `.dvc` file may make `dvc pull` write, besides the taken folders themselves.
DATA_ROOTS = ("datasets",)
# Top-level names a PR may never supply: the code, build and CI configuration that judge it.
TRUSTED = frozenset(
    {".dvc", ".dvcignore", ".git", ".github", ".gitmodules", "Makefile", "pyproject.toml"}
    | {"registry", "requirements", "scripts", "setup.py", "setup.cfg", "tests"}
)
MAX_FILE_BYTES = 8 << 20  # a spec is KBs; data itself lives in DVC, not in git
MAX_TOTAL_BYTES = 256 << 20
MAX_FILES = 5000
BATCH_BYTES = 32 << 20  # blobs read per `git cat-file --batch`
# A path component: letters, digits and `._+=@-`; no leading dash (never an option), no
# whitespace, quotes, backslashes, control or non-ASCII characters.
NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.+=@-]{0,254}")
RESERVED = frozenset({".", "..", ".git", ".dvc"})  # git and DVC internals, at any depth
# Files that change what `dvc pull` fetches or ignores beyond plain pointers.
DVC_CONTROL = frozenset({"dvc.yaml", "dvc.lock", ".dvcignore"})
REGULAR = {"100644", "100755"}  # the executable bit is dropped: files are written 0644
DVC_OUT_KEYS = frozenset({"md5", "size", "nfiles", "hash", "path", "isexec"})
MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


@dataclass(frozen=True)
class Entry:
    path: str
    mode: str
    kind: str
    oid: str
    size: int | None


def take_pr_content(
    repo: Path,
    head_rev: str,
    paths: tuple[str, ...] = DEFAULT_PATHS,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
) -> list[str]:
    """Make `paths` in the checkout `repo` hold exactly `head_rev`'s files; return what changed.

    `head_rev` must already be in `repo`'s object store (CI fetches the PR head's commit).
    Raises InvalidInput (exit 2) naming every refused path, before anything is written.
    """
    repo = Path(repo).resolve()
    roots = _check_roots(paths)
    git = GitReader(repo)
    head = git.commit(head_rev)
    entries = _list(git, head, roots)
    problems = _check_entries(entries, roots, max_file_bytes, max_total_bytes, max_files)
    if problems:
        raise InvalidInput(problems)
    tracked = {e.path for e in _list(git, "HEAD", roots)} if _has_head(git) else set()
    staging = Path(tempfile.mkdtemp(prefix=".take-pr-", dir=repo))
    try:
        _stream_blobs(git, [e for e in entries if e.kind == "blob"], staging)
        dvc_files = [e for e in entries if e.path.endswith(".dvc")]
        problems = [p for e in dvc_files for p in _check_dvc(e, staging, roots)]
        if problems:
            raise InvalidInput(problems)
        changed = _apply(repo, staging, {e.path for e in entries}, tracked)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return changed


# -- what may be taken ---------------------------------------------------------------------------


def _check_roots(paths: tuple[str, ...]) -> tuple[str, ...]:
    problems = []
    for p in paths:
        parts = PurePosixPath(p).parts
        if not parts or p.startswith("/") or any(not NAME.fullmatch(c) for c in parts):
            problems.append(Problem(p, "not a plain relative path inside the repository"))
        elif parts[0] in TRUSTED or ".." in parts or "." in parts:
            problems.append(Problem(p, "names trusted files; it can never come from a PR"))
    if problems:
        raise InvalidInput(problems)
    return tuple(str(PurePosixPath(p)) for p in paths)


def _has_head(git: GitReader) -> bool:
    return bool(git.run("rev-parse", "--verify", "--quiet", "HEAD", ok=(0, 1)).strip())


def _list(git: GitReader, rev: str, roots: tuple[str, ...]) -> list[Entry]:
    """Every entry under `roots` at `rev`, recursively, with blob sizes (`ls-tree -r -l`)."""
    out = git.run(
        "--literal-pathspecs", "ls-tree", "-r", "-z", "-l", "--full-tree", rev, "--", *roots
    )
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        path = raw_path.decode("utf-8", errors="replace")
        entries.append(Entry(path, mode, kind, oid, int(size) if size.isdigit() else None))
    return entries


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def _check_entries(
    entries: list[Entry], roots: tuple[str, ...], max_file: int, max_total: int, max_files: int
) -> list[Problem]:
    problems = []
    if len(entries) > max_files:
        problems.append(
            Problem(", ".join(roots), f"{len(entries)} files; at most {max_files} are taken")
        )
    total = 0
    for e in entries:
        parts = PurePosixPath(e.path).parts
        if not _under(e.path, roots):
            problems.append(Problem(e.path, f"outside the taken paths {', '.join(roots)}"))
        elif any(not NAME.fullmatch(c) or c in RESERVED for c in parts):
            problems.append(Problem(e.path, "odd characters in the name; use [A-Za-z0-9._+=@-]"))
        elif e.mode == "120000":
            problems.append(Problem(e.path, "a symlink; only regular files are taken from a PR"))
        elif e.mode == "160000" or e.kind == "commit":
            problems.append(Problem(e.path, "a submodule; only regular files are taken from a PR"))
        elif e.mode not in REGULAR or e.kind != "blob" or e.size is None:
            problems.append(Problem(e.path, f"not a regular file (git mode {e.mode})"))
        elif parts[-1] in DVC_CONTROL:
            problems.append(Problem(e.path, "DVC configuration; only `.dvc` pointers are taken"))
        elif e.size > max_file:
            problems.append(Problem(e.path, f"{e.size} bytes; a file may hold {max_file}"))
        else:
            total += e.size
    if total > max_total:
        problems.append(Problem(", ".join(roots), f"{total} bytes in all; at most {max_total}"))
    return problems


def _check_dvc(entry: Entry, staging: Path, roots: tuple[str, ...]) -> list[Problem]:
    """A `.dvc` file must be a plain `dvc add` pointer whose outputs are data folders: no
    imports (`deps` fetch from elsewhere), no per-output remotes, no path leaving the data."""
    where = entry.path
    try:  # the bounded loader: a PR's .dvc file may be an alias bomb or nested 20,000 deep
        doc, _ = load_yaml((staging / entry.path).read_bytes(), where)
    except InvalidInput as exc:
        return exc.problems
    if not isinstance(doc, dict) or set(doc) != {"outs"} or not isinstance(doc["outs"], list):
        return [Problem(where, "a .dvc file from a PR may hold only `outs` (no deps, no imports)")]
    parent = PurePosixPath(entry.path).parent
    allowed = DATA_ROOTS + tuple(r for r in roots if not r.endswith(".dvc"))
    problems = []
    for i, out in enumerate(doc["outs"]):
        field = f"outs[{i}]"
        if not isinstance(out, dict) or not set(out) <= DVC_OUT_KEYS:
            extra = sorted(set(out) - DVC_OUT_KEYS) if isinstance(out, dict) else out
            problems.append(Problem(where, f"unexpected keys {extra}", field=field))
            continue
        if not MD5.fullmatch(str(out.get("md5", ""))) or out.get("hash", "md5") != "md5":
            problems.append(Problem(where, "md5 must be 32 hex digits (.dir)", field=field))
        path = out.get("path")
        target = PurePosixPath(os.path.normpath(parent / str(path))) if path else None
        if (
            not isinstance(path, str)
            or "://" in path
            or path.startswith("/")
            or target is None
            or ".." in target.parts
            or not _under(str(target), allowed)
        ):
            problems.append(
                Problem(where, f"output {path!r} must be under {', '.join(allowed)}", field=field)
            )
    return problems


# -- reading and writing ---------------------------------------------------------------------------


def _stream_blobs(git: GitReader, blobs: list[Entry], staging: Path) -> None:
    """Copy each blob into `staging/<path>`: `git cat-file --batch` over groups of at most
    BATCH_BYTES, so memory stays bounded however many files the head holds."""
    groups: list[list[Entry]] = [[]]
    for e in blobs:
        if groups[-1] and sum(b.size or 0 for b in groups[-1]) + (e.size or 0) > BATCH_BYTES:
            groups.append([])
        groups[-1].append(e)
    for group in filter(None, groups):
        out = git.run("cat-file", "--batch", stdin="".join(f"{e.oid}\n" for e in group).encode())
        pos = 0
        for e in group:
            end = out.index(b"\n", pos)
            header, pos = out[pos:end].split(), end + 1
            if len(header) != 3 or header[1] != b"blob" or int(header[2]) != e.size:
                raise InvalidInput(f"git cat-file: cannot read {e.oid}", file=e.path)
            target = staging / e.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(out[pos : pos + e.size])
            pos += e.size + 1  # the object, then its newline


def _inside(repo: Path, path: str) -> Path:
    """The worktree path of `path`, refusing one that a symlinked folder would lead elsewhere."""
    target = repo / path
    real = Path(os.path.realpath(target.parent))
    if real != repo and repo not in real.parents:
        raise InvalidInput(f"{path}: its folder leads outside the checkout; refused", file=path)
    return target


def _apply(repo: Path, staging: Path, taken: set[str], tracked: set[str]) -> list[str]:
    changed = []
    for path in sorted(taken):
        source, target = staging / path, _inside(repo, path)
        if target.is_file() and not target.is_symlink() and _same(source, target):
            continue
        if target.is_symlink() or target.is_dir():
            _remove(target)
        _make_parents(repo, target)
        with atomic_file(target) as tmp:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
        changed.append(path)
    for path in sorted(tracked - taken):  # the head deleted them
        target = _inside(repo, path)
        if target.exists() or target.is_symlink():
            _remove(target)
            changed.append(path)
            _prune_empty(target.parent, repo)
    return changed


def _make_parents(repo: Path, target: Path) -> None:
    """Create `target`'s folders, replacing a file the trusted checkout has where one goes."""
    folder = repo
    for part in target.relative_to(repo).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        folder.mkdir(exist_ok=True)


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _prune_empty(folder: Path, repo: Path) -> None:
    while folder != repo and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
