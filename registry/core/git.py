"""Git for the whole registry: the one git runner, the one DVC runner, and reading history
cheaply (git objects and DVC `.dir` listings).

`run_git` / `try_git` are the only places a git process starts, `run_dvc` the one place a DVC
command runs (this interpreter's `python -m dvc`, analytics off): argv lists, never a shell.
`registry plan` reads through GitReader, which reads only what a diff names: one `git diff`,
then `git cat-file --batch` for the changed blobs, and DVC `.dir` listings from the local cache
or a local remote, so a repo with 1,000 specs costs what the change costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from registry.errors import InvalidInput, RegistryError

# The C loader when available: plan reads many small YAML files. Safe either way.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# -- git -----------------------------------------------------------------------------------------


def run_git(
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    ok: tuple[int, ...] = (0,),
    timeout: float | None = None,
    error: type[RegistryError] = InvalidInput,
) -> bytes:
    """stdout of `git ARGS` run in `cwd`. Raises `error` (InvalidInput: exit 2, by default)
    naming the command and the folder when git is missing, times out, or exits with a code not
    in `ok`."""

    def fail(message: str) -> RegistryError:
        if issubclass(error, InvalidInput):
            return error(message, file=str(cwd))
        return error(f"{message} (in {cwd})")

    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=timeout
        )
    except FileNotFoundError:
        raise fail("git is not installed, or the folder does not exist") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise fail(f"git {args[0]}: {exc}") from None
    if proc.returncode not in ok:
        raise fail(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def try_git(cwd: Path, *args: str, timeout: float | None = None) -> bytes | None:
    """stdout of `git ARGS`, or None when it fails for any reason (not a repo, no git, ...)."""
    try:
        return run_git(cwd, *args, timeout=timeout, error=RegistryError)
    except RegistryError:
        return None


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (what `git hash-object` prints; the Hub's blobId)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def run_dvc(cwd: Path, *args: str) -> str:
    """stdout of `dvc ARGS` run in `cwd` with this interpreter's DVC (`python -m dvc`, so the
    DVC installed beside the registry) and its analytics off. Raises RegistryError (exit 1)
    naming the command, the folder and DVC's message when it fails."""
    shown = " ".join(("dvc", *args))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RegistryError(f"`{shown}` failed in {cwd}: {exc}") from None
    if proc.returncode != 0:
        raise RegistryError(f"`{shown}` failed in {cwd}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def head_commit(folder: Path) -> str | None:
    """HEAD of the git repository holding `folder`, or None outside one (provenance)."""
    out = try_git(folder, "rev-parse", "HEAD", timeout=10)
    commit = out.decode(errors="replace").strip() if out else ""
    return commit if re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


class GitReader:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
        return run_git(self.repo, *args, stdin=stdin, ok=ok)

    def commit(self, ref: str) -> str:
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1))
        if not out.strip():
            raise InvalidInput(f"unknown git ref {ref!r}", file=str(self.repo))
        return out.decode().strip()

    def merge_base(self, a: str, b: str) -> str:
        out = self.run("merge-base", a, b, ok=(0, 1)).decode().strip()
        return out or a  # unrelated histories: compare with the base itself

    def changed(self, old: str, new: str | None) -> dict[str, str]:
        """{path: status letter} between `old` and `new` (None: the working tree + untracked)."""
        args = ["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", old]
        parts = self.run(*args, *([new] if new else [])).split(b"\0")
        changes = {
            parts[i + 1].decode(): parts[i].decode()[:1] for i in range(0, len(parts) - 1, 2)
        }
        if new is None:
            untracked = self.run("ls-files", "-z", "--others", "--exclude-standard")
            changes.update({p.decode(): "A" for p in untracked.split(b"\0") if p})
        return changes

    def ls(self, commit: str, paths: list[str]) -> dict[str, str]:
        """Blob ids of `paths` at `commit`; absent paths (and folders) are left out."""
        found: dict[str, str] = {}
        for i in range(0, len(paths), 1000):  # stay far below the argv limit
            chunk = paths[i : i + 1000]
            out = self.run(
                "--literal-pathspecs", "ls-tree", "-z", "--full-tree", commit, "--", *chunk
            )
            for record in out.split(b"\0"):
                meta, _, path = record.partition(b"\t")
                if meta.split(b" ")[1:2] == [b"blob"]:
                    found[path.decode()] = meta.split(b" ")[2].decode()
        return found

    def cat(self, commit: str, paths: list[str]) -> dict[str, bytes | None]:
        """Contents of `paths` at `commit`; None where absent or not a file.

        `<commit>:<path>` lookups cost ~0.7 ms each (git walks the trees per line), so many paths
        are first resolved to blob ids by one `ls-tree`, which cat-file then reads fast.
        """
        if len(paths) > 32:
            oids = self.ls(commit, paths)
            names = [(p, oids[p]) for p in paths if p in oids]
        else:
            names = [(p, f"{commit}:{p}") for p in paths]
        out = self.run("cat-file", "--batch", stdin="".join(f"{n}\n" for _, n in names).encode())
        result: dict[str, bytes | None] = dict.fromkeys(paths)
        pos = 0
        for p, _ in names:
            end = out.index(b"\n", pos)
            header, pos = out[pos:end].split(b" "), end + 1
            if len(header) != 3 or header[-1] in (b"missing", b"ambiguous"):
                continue
            size = int(header[2])
            result[p] = out[pos : pos + size] if header[1] == b"blob" else None
            pos += size + 1
        return result


class Snapshot:
    """Files of one side of the comparison: a commit, or the working tree (commit None)."""

    def __init__(self, git: GitReader, commit: str | None) -> None:
        self.git, self.commit = git, commit
        self._files: dict[str, bytes | None] = {}

    def read(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        paths = list(dict.fromkeys(paths))
        todo = [p for p in paths if p not in self._files]
        if todo and self.commit is not None:
            self._files.update(self.git.cat(self.commit, todo))
        for p in todo if self.commit is None else ():
            try:
                self._files[p] = (self.git.repo / p).read_bytes()
            except OSError:
                self._files[p] = None
        return {p: self._files[p] for p in paths}

    def blob_ids(self, paths: list[str]) -> dict[str, str]:
        """Git blob ids of the files among `paths` (for data tracked by git, not DVC)."""
        if self.commit is not None:
            return self.git.ls(self.commit, paths)
        present = [p for p in paths if (self.git.repo / p).is_file()]
        ids = self.git.run("hash-object", "--", *present).decode().split() if present else []
        return dict(zip(present, ids, strict=True))

    def grep(self, needles: Iterable[str], pathspec: str) -> list[str]:
        """Paths matching `pathspec` whose text contains any of `needles` (a cheap prefilter)."""
        patterns = "".join(f"{n}\n" for n in sorted(set(needles))).encode()
        if not patterns:
            return []
        rev = [self.commit] if self.commit else ["--untracked"]
        out = self.git.run(
            "grep", "-l", "-z", "-F", "-f", "-", *rev, "--", pathspec, stdin=patterns, ok=(0, 1)
        )
        prefix = f"{self.commit}:" if self.commit else ""
        return [p.decode().removeprefix(prefix) for p in out.split(b"\0") if p]


# -- DVC -----------------------------------------------------------------------------------------


def dvc_object_dirs(repo: Path) -> list[Path]:
    """Where a .dir object may be found: the DVC cache, then every local-directory remote."""
    config: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        section = ""
        try:
            lines = (repo / ".dvc" / name).read_text().splitlines()
        except OSError:
            continue
        for line in map(str.strip, lines):
            if line.startswith("["):
                section = line[1:-1].strip().strip("'")  # ['remote "name"'] -> remote "name"
            elif "=" in line and not line.startswith(("#", ";")):
                key, value = (s.strip() for s in line.split("=", 1))
                config.setdefault(section, {})[key] = value
    cache = repo / ".dvc" / config.get("cache", {}).get("dir", "cache")
    roots = [cache]
    default = config.get("core", {}).get("remote")
    remotes = sorted(config, key=lambda s: s != f'remote "{default}"')
    for section in remotes:
        url = config[section].get("url", "") if section.startswith("remote ") else ""
        if url and ("://" not in url or url.startswith("file://")):
            # relative URLs are relative to .dvc/; `~` is expanded by DVC, so expand it too
            roots.append(repo / ".dvc" / os.path.expanduser(url.removeprefix("file://")))
    return [d for root in roots for d in (root / "files" / "md5", root)]  # DVC 3, then DVC 2


@dataclass
class DvcOut:
    """One DVC output: a file (md5) or a directory (md5 ending in .dir, listing if found)."""

    path: str
    md5: str
    listing: dict[str, str] | None = None


class DvcReader:
    def __init__(self, repo: Path) -> None:
        self._dirs: list[Path] | None = None
        self._repo = repo
        self._listings: dict[str, dict[str, str] | None] = {}
        self._outs: dict[tuple[str, bytes | None], list[DvcOut]] = {}

    def listing(self, md5: str) -> dict[str, str] | None:
        if md5 not in self._listings:
            self._dirs = self._dirs if self._dirs is not None else dvc_object_dirs(self._repo)
            self._listings[md5] = None
            for d in self._dirs:
                try:
                    entries = json.loads((d / md5[:2] / md5[2:]).read_text())
                    self._listings[md5] = {e["relpath"]: e["md5"] for e in entries}
                    break
                except (OSError, ValueError, TypeError, KeyError):
                    continue
        return self._listings[md5]

    def outs(self, dvc_file: str, text: bytes | None) -> list[DvcOut]:
        if (dvc_file, text) not in self._outs:
            self._outs[dvc_file, text] = self._parse_outs(dvc_file, text)
        return self._outs[dvc_file, text]

    def _parse_outs(self, dvc_file: str, text: bytes | None) -> list[DvcOut]:
        try:
            outs = yaml.load(text, Loader=_Loader).get("outs") or [] if text else []
            parent = PurePosixPath(dvc_file).parent
            result = [DvcOut(str(parent / o["path"]), str(o["md5"])) for o in outs]
        except (yaml.YAMLError, AttributeError, TypeError, KeyError):
            return []  # not ours to validate; such data simply counts as untracked
        for out in result:
            if out.md5.endswith(".dir"):
                out.listing = self.listing(out.md5)
        return result


def path_under(path: str, out: str) -> str | None:
    """`path` relative to the output `out`, or None when outside it."""
    if path == out:
        return ""
    return path[len(out) + 1 :] if path.startswith(out + "/") else None


def norm_path(path: str) -> str:
    return posixpath.normpath(path)


def candidate_dvc_files(path: str) -> list[str]:
    """`.dvc` files that may track `path`: DVC writes one next to the output it tracks."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) + ".dvc" for i in range(1, len(parts) + 1)]


class ContentHasher:
    """Content hash of a data path on one side: DVC md5, else git blob id, else 'missing'."""

    def __init__(self, snap: Snapshot, dvc: DvcReader) -> None:
        self.snap, self.dvc = snap, dvc

    def hashes(self, paths: Iterable[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        todo = {p: candidate_dvc_files(p) for p in dict.fromkeys(paths)}
        # Shallowest .dvc files first, one batch per depth: with the usual root datasets.dvc
        # the first batch reads one file, however many data paths there are.
        for depth in range(max(map(len, todo.values()), default=0)):
            files = self.snap.read(cs[depth] for cs in todo.values() if depth < len(cs))
            for p, cs in list(todo.items()):
                if depth < len(cs) and (h := self._from_dvc(p, cs[depth], files[cs[depth]])):
                    result[p] = h
                    del todo[p]
        oids = self.snap.blob_ids(list(todo)) if todo else {}
        result.update({p: f"git:{oids[p]}" if p in oids else "missing" for p in todo})
        return result

    def _from_dvc(self, path: str, dvc_file: str, text: bytes | None) -> str | None:
        for out in self.dvc.outs(dvc_file, text):
            rel = path_under(path, out.path)
            if rel is None:
                continue
            if not out.md5.endswith(".dir"):
                return f"md5:{out.md5}" if rel == "" else "missing"
            if out.listing is None:
                return f"unverified:{out.md5}:{rel}"
            return f"md5:{out.listing[rel]}" if rel in out.listing else "missing"
        return None


def dir_listing(out: DvcOut | None) -> dict[str, str] | None:
    """relpath -> md5 of an output (a file output is one entry, relpath "")."""
    if out is None:
        return {}
    return out.listing if out.md5.endswith(".dir") else {"": out.md5}


def data_changes(
    old: Snapshot, new: Snapshot, dvc: DvcReader, changes: dict[str, str]
) -> tuple[set[str], set[str]]:
    """(changed data files, DVC output dirs whose changes could not be listed).

    Only `.jsonl` files count: the spec accepts no other data file.
    """
    files = {p for p in changes if p.endswith(".jsonl")}  # data tracked by git itself
    unverified: set[str] = set()
    dvc_files = [p for p in changes if p.endswith(".dvc")]
    old_text, new_text = old.read(dvc_files), new.read(dvc_files)
    for f in dvc_files:
        before = {o.path: o for o in dvc.outs(f, old_text[f])}
        after = {o.path: o for o in dvc.outs(f, new_text[f])}
        for path in before.keys() | after.keys():
            la, lb = dir_listing(before.get(path)), dir_listing(after.get(path))
            if la is None or lb is None:
                unverified.add(path)
                continue
            for rel in la.keys() | lb.keys():
                if la.get(rel) != lb.get(rel):
                    files.add(f"{path}/{rel}" if rel else path)
    return {f for f in files if f.endswith(".jsonl")}, unverified
