"""Plan: what a change to the registry repo asks CI to do, read from git alone.

`plan(base)` compares the head (a commit, `HEAD` by default, or the working tree) with its merge
base with `base` -- the same three-dot comparison GitHub shows on a pull request -- and says per
adapter whether to train it (`new`, `retrain`), publish the old weights under a new version
(`bump`), point the store back at a published version (`rollback`), retire it (`retire`), or do
nothing (`unchanged`: the spec file changed only in formatting or comments).
Adapters the change does not touch are absent from the plan.

Why it is fast on a registry of 1,000 adapters: one `git diff --name-status` lists what changed,
then `git cat-file --batch` reads only the changed specs and `.dvc` files. A dataset change is
found by diffing the two DVC `.dir` listings (read from the DVC cache or a local remote) and
mapped to the specs that use the changed files with one `git grep`; no model, no dataset file
and no untouched spec is read. If a `.dir` listing is not available locally, every file under
that DVC output counts as possibly changed and the affected entries say so (`data_unverified`).

Rules (bad input -> InvalidInput, exit 2, naming the spec file and its `version` line):
  * a spec whose content (any key, or the content of its data files) changed must bump `version`;
  * a version may go backwards only to a published version (that is a rollback).
The weights key compared for bump-vs-retrain mirrors `registry.fingerprint` without loading the
base model: the spec minus version/description/eval/publish, with data paths replaced by content
hashes. The base model ref is pinned (builtin name or 40-hex commit), so the ref identifies it.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from registry.errors import InvalidInput, Problem
from registry.semver import parse_version
from registry.spec import SPEC_FILENAME, parse_spec

TRAIN_ACTIONS = ("new", "retrain")  # the only actions that put an adapter in the matrix
_NOT_WEIGHTS = ("version", "description", "eval", "publish")  # as in registry.fingerprint
_DATA_PATHS = ("data.train", "data.eval")  # where files live, not what they hold
_SPEC_RE = re.compile(rf"^adapters/([^/]+)/{re.escape(SPEC_FILENAME)}$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Published = Callable[[str], Iterable[str]] | Mapping[str, Iterable[str]]


@dataclass(frozen=True)
class PlanEntry:
    name: str
    action: str  # new | retrain | bump | rollback | retire | unchanged
    old_version: str | None
    new_version: str | None
    reason: str
    spec: str  # repo-relative path of the spec file
    reuse_version: str | None = None  # bump: the version whose weights are published again
    data_unverified: bool = False  # a DVC .dir listing was missing: data may have changed


@dataclass(frozen=True)
class Plan:
    base: str  # the commit compared against (merge base of the base ref and the head)
    head: str | None  # the head commit; None for the working tree
    entries: list[PlanEntry] = field(default_factory=list)

    @property
    def to_train(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.action in TRAIN_ACTIONS]

    def to_json(self) -> dict[str, Any]:
        """`matrix` feeds `strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}`.

        Actions rejects an empty matrix, so `matrix.include` may be empty only when `has_work`
        is false, and the training job is guarded with `if: needs.plan.outputs.has_work == 'true'`
        (a skipped job never expands its matrix).
        """
        include = [{"name": e.name, "version": e.new_version} for e in self.to_train]
        return {
            "base": self.base,
            "head": self.head,
            "has_work": bool(include),
            "adapters": [asdict(e) for e in self.entries],
            "matrix": {"include": include},
        }

    def describe(self) -> str:
        """One line per adapter, for people."""
        if not self.entries:
            return "no adapter changed"
        rows = []
        for e in self.entries:
            versions = f"{e.old_version or '-'} -> {e.new_version or '-'}"
            rows.append(f"{e.action:<9} {e.name:<24} {versions:<20} {e.reason}")
        return "\n".join(rows)


# -- git -----------------------------------------------------------------------------------------


class _Git:
    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
        try:
            proc = subprocess.run(["git", *args], cwd=self.repo, input=stdin, capture_output=True)
        except FileNotFoundError:
            raise InvalidInput("git is not installed", file=str(self.repo)) from None
        if proc.returncode not in ok:
            message = proc.stderr.decode(errors="replace").strip()
            raise InvalidInput(f"git {args[0]}: {message}", file=str(self.repo))
        return proc.stdout

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


class _Snapshot:
    """Files of one side of the comparison: a commit, or the working tree (commit None)."""

    def __init__(self, git: _Git, commit: str | None) -> None:
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


def _dvc_object_dirs(repo: Path) -> list[Path]:
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
            roots.append(repo / ".dvc" / url.removeprefix("file://"))
    return [d for root in roots for d in (root / "files" / "md5", root)]  # DVC 3, then DVC 2


@dataclass
class _Out:
    """One DVC output: a file (md5) or a directory (md5 ending in .dir, listing if found)."""

    path: str
    md5: str
    listing: dict[str, str] | None = None


class _Dvc:
    def __init__(self, repo: Path) -> None:
        self._dirs: list[Path] | None = None
        self._repo = repo
        self._listings: dict[str, dict[str, str] | None] = {}
        self._outs: dict[tuple[str, bytes | None], list[_Out]] = {}

    def listing(self, md5: str) -> dict[str, str] | None:
        if md5 not in self._listings:
            self._dirs = self._dirs if self._dirs is not None else _dvc_object_dirs(self._repo)
            self._listings[md5] = None
            for d in self._dirs:
                try:
                    entries = json.loads((d / md5[:2] / md5[2:]).read_text())
                    self._listings[md5] = {e["relpath"]: e["md5"] for e in entries}
                    break
                except (OSError, ValueError, TypeError, KeyError):
                    continue
        return self._listings[md5]

    def outs(self, dvc_file: str, text: bytes | None) -> list[_Out]:
        if (dvc_file, text) not in self._outs:
            self._outs[dvc_file, text] = self._parse_outs(dvc_file, text)
        return self._outs[dvc_file, text]

    def _parse_outs(self, dvc_file: str, text: bytes | None) -> list[_Out]:
        try:
            outs = yaml.load(text, Loader=_Loader).get("outs") or [] if text else []
            parent = PurePosixPath(dvc_file).parent
            result = [_Out(str(parent / o["path"]), str(o["md5"])) for o in outs]
        except (yaml.YAMLError, AttributeError, TypeError, KeyError):
            return []  # not ours to validate; such data simply counts as untracked
        for out in result:
            if out.md5.endswith(".dir"):
                out.listing = self.listing(out.md5)
        return result


def _under(path: str, out: str) -> str | None:
    """`path` relative to the output `out`, or None when outside it."""
    if path == out:
        return ""
    return path[len(out) + 1 :] if path.startswith(out + "/") else None


def _norm(path: str) -> str:
    return posixpath.normpath(path)


def _candidate_dvc_files(path: str) -> list[str]:
    """`.dvc` files that may track `path`: DVC writes one next to the output it tracks."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) + ".dvc" for i in range(1, len(parts) + 1)]


class _Hasher:
    """Content hash of a data path on one side: DVC md5, else git blob id, else 'missing'."""

    def __init__(self, snap: _Snapshot, dvc: _Dvc) -> None:
        self.snap, self.dvc = snap, dvc

    def hashes(self, paths: Iterable[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        todo = {p: _candidate_dvc_files(p) for p in dict.fromkeys(paths)}
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
            rel = _under(path, out.path)
            if rel is None:
                continue
            if not out.md5.endswith(".dir"):
                return f"md5:{out.md5}" if rel == "" else "missing"
            if out.listing is None:
                return f"unverified:{out.md5}:{rel}"
            return f"md5:{out.listing[rel]}" if rel in out.listing else "missing"
        return None


def _listing(out: _Out | None) -> dict[str, str] | None:
    """relpath -> md5 of an output (a file output is one entry, relpath "")."""
    if out is None:
        return {}
    return out.listing if out.md5.endswith(".dir") else {"": out.md5}


def _data_changes(
    old: _Snapshot, new: _Snapshot, dvc: _Dvc, changes: dict[str, str]
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
            la, lb = _listing(before.get(path)), _listing(after.get(path))
            if la is None or lb is None:
                unverified.add(path)
                continue
            for rel in la.keys() | lb.keys():
                if la.get(rel) != lb.get(rel):
                    files.add(f"{path}/{rel}" if rel else path)
    return {f for f in files if f.endswith(".jsonl")}, unverified


# -- the plan ------------------------------------------------------------------------------------


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(a.keys() | b.keys(), key=str):
            out += _diff(a.get(k, ...), b.get(k, ...), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]


def _key_line(text: bytes | None, key: str) -> int | None:
    try:
        node = yaml.compose(text or b"", Loader=_Loader)
    except yaml.YAMLError:
        return None
    for k, _ in getattr(node, "value", []) if isinstance(node, yaml.MappingNode) else []:
        if k.value == key:
            return k.start_mark.line + 1
    return None


def _light(text: bytes | None) -> dict:
    """The raw YAML mapping, for specs that are not validated here (base side, candidates)."""
    try:
        data = yaml.load(text or b"", Loader=_Loader)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _data_roles(data: dict) -> dict[str, str]:
    """{"data.train#content": path, ...} for the data files a raw spec names."""
    d = data.get("data") if isinstance(data.get("data"), dict) else {}
    return {
        f"data.{k}#content": _norm(d[k]) for k in ("train", "eval") if isinstance(d.get(k), str)
    }


def _data_paths(data: dict) -> list[str]:
    return list(_data_roles(data).values())


def _declared_before(git: _Git, commit: str, path: str, version: str) -> bool:
    """Was `version` ever declared by this spec in the base history? (Stand-in for 'published'
    when no store is given: main's specs are what gets published.)"""
    log = git.run("log", "--format=", "-p", "-U0", "--no-ext-diff", commit, "--", path).decode()
    pattern = rf"^[+-]version:\s*['\"]?{re.escape(version)}['\"]?\s*(#.*)?$"
    return re.search(pattern, log, re.MULTILINE) is not None


_BUMP_HINT = "bump version: a published version never changes content"
_UNSURE = "data may have changed but its DVC .dir listing is not here (dvc fetch); not checked"


@dataclass(frozen=True)
class _Side:
    """One spec file on one side of the comparison."""

    text: bytes | None  # None: the file does not exist on this side
    raw: dict  # the YAML mapping as written (unvalidated)
    dump: dict | None  # the validated spec; None when absent or invalid


def _side(text: bytes | None, path: str, name: str, strict: bool) -> _Side:
    """Parse a spec; `strict` (the head side) turns problems into InvalidInput."""
    if text is None:
        return _Side(None, {}, None)
    try:
        spec = parse_spec(text.decode("utf-8"), path)
        if spec.name != name:
            line = _key_line(text, "name")
            message = f"name {spec.name!r} differs from its folder {name!r}"
            raise InvalidInput([Problem(path, message, line=line, field="name")])
    except UnicodeDecodeError:
        if strict:
            raise InvalidInput([Problem(path, "spec file is not UTF-8 text")]) from None
        return _Side(text, {}, None)
    except InvalidInput:
        if strict:
            raise
        return _Side(text, _light(text), None)
    return _Side(text, _light(text), spec.model_dump(mode="json"))


def _content(dump: dict, hashes: dict[str, str]) -> dict:
    """The spec with each data file's content hash beside its path (`data.train#content`)."""
    data = dict(dump.get("data") or {})
    for key in ("train", "eval"):
        if isinstance(data.get(key), str):
            data[f"{key}#content"] = hashes.get(_norm(data[key]), "missing")
    return {**dump, "data": data}


def _unsure(view: dict, key: str) -> bool:
    """Is `key` a data content hash that could not be verified (listing unavailable)?"""
    if not key.endswith("#content"):
        return False
    return str(view.get("data", {}).get(key.split(".", 1)[1], "")).startswith("unverified:")


def _describe(keys: list[str]) -> str:
    shown = [k.replace("#content", " content") for k in keys[:6]]
    return ", ".join(shown) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def _is_lower(version: str, than: str) -> bool:
    try:
        return parse_version(version) < parse_version(than)
    except InvalidInput:  # an invalid base version: nothing to go backwards from
        return False


def _decide(
    name: str,
    path: str,
    old: _Side,
    new: _Side,
    hashes: tuple[dict[str, str], dict[str, str]],
    is_published: Callable[[str, str, str, bool], bool],
) -> PlanEntry | Problem | None:
    """The action for one adapter whose spec or data changed (None: nothing really changed)."""
    old_version = str(old.raw["version"]) if old.raw.get("version") is not None else None
    if new.dump is None:
        return PlanEntry(name, "retire", old_version, None, "spec deleted", path)
    v = new.dump["version"]
    line = _key_line(new.text, "version")

    def entry(action: str, reason: str, **kw: Any) -> PlanEntry:
        return PlanEntry(name, action, old_version, v, reason, path, **kw)

    def problem(message: str, hint: str = _BUMP_HINT) -> Problem:
        return Problem(path, message, line=line, field="version", hint=hint)

    after = _content(new.dump, hashes[1])
    if old_version is None:
        if is_published(name, path, v, False):
            return entry("rollback", f"{v} is already published: it becomes current, no training")
        unsure = any(_unsure(after, f"data.{k}#content") for k in ("train", "eval"))
        return entry("new", "new adapter", data_unverified=unsure)
    before = _content(old.dump, hashes[0]) if old.dump else {"<base spec invalid>": True}
    changed = [k for k in _diff(before, after) if k != "version"]
    unsure = [k for k in changed if _unsure(before, k) or _unsure(after, k)]
    sure = [k for k in changed if k not in unsure]
    if v == old_version:
        if sure:
            return problem(f"the spec changed ({_describe(sure)}) but its version is still {v}")
        if unsure:
            return entry("unchanged", _UNSURE, data_unverified=True)
        return entry("unchanged", "formatting or comments only")
    backwards = _is_lower(v, old_version)
    if is_published(name, path, v, backwards):
        return entry("rollback", f"{v} is already published: the current version moves to it")
    if backwards:
        hint = f"use a version above {old_version}, or roll back to a published one"
        return problem(f"version goes backwards ({old_version} -> {v}) to an unpublished one", hint)
    weights = [k for k in changed if k.split(".")[0] not in _NOT_WEIGHTS and k not in _DATA_PATHS]
    if weights:
        note = f" ({_UNSURE.split(';')[0]}: assumed changed)" if unsure else ""
        return entry(
            "retrain", f"changed: {_describe(weights)}{note}", data_unverified=bool(unsure)
        )
    what = f"changed: {_describe(changed)}" if changed else "version bump only"
    return entry("bump", f"{what}; weights of {old_version} reused", reuse_version=old_version)


def _decide_data_only(
    name: str,
    path: str,
    text: bytes | None,
    raw: dict,
    hashes: tuple[dict[str, str], dict[str, str]],
) -> PlanEntry | Problem | None:
    """An adapter whose spec file is unchanged but names a changed data file.

    The text is the same on both sides, so only the data hashes can differ: no need to validate
    the spec (this keeps the no-listing fallback cheap when it touches every adapter).
    """
    version = str(raw.get("version"))
    diffs = {k: p for k, p in _data_roles(raw).items() if hashes[0].get(p) != hashes[1].get(p)}
    sure = [k for k, p in diffs.items() if not any(h[p].startswith("unverified:") for h in hashes)]
    if sure:
        message = f"the spec changed ({_describe(sure)}) but its version is still {version}"
        line = _key_line(text, "version")
        return Problem(path, message, line=line, field="version", hint=_BUMP_HINT)
    if diffs:
        return PlanEntry(name, "unchanged", version, version, _UNSURE, path, data_unverified=True)
    return None  # named a changed data path only as text (a grep false positive)


def plan(
    base_ref: str,
    *,
    repo: Path = Path("."),
    head_ref: str | None = "HEAD",
    published: Published | None = None,
) -> Plan:
    """What changed between the merge base of `base_ref` and `head_ref`.

    `head_ref=None` plans the working tree (untracked files included; run `dvc add` first so
    `datasets.dvc` is current). `published` gives the store's versions of an adapter (a callable
    or a mapping); without it, a version declared earlier in the base history of the spec counts
    as published (main's specs are what `registry sync` publishes). Raises InvalidInput listing
    every problem found.
    """
    top = _Git(Path(repo)).run("rev-parse", "--show-toplevel").decode().strip()
    git = _Git(Path(top))  # paths in git's output are relative to the top
    base = git.commit(base_ref)
    head = git.commit(head_ref) if head_ref is not None else None
    merge_base = git.merge_base(base, head or git.commit("HEAD"))
    old, new, dvc = _Snapshot(git, merge_base), _Snapshot(git, head), _Dvc(git.repo)
    changes = git.changed(merge_base, head)
    spec_files = {m.group(1): p for p in changes if (m := _SPEC_RE.match(p))}

    # Specs whose file did not change but whose data did: found as text, confirmed below.
    data_files, unverified = _data_changes(old, new, dvc, changes)
    needles = data_files | {f"{d}/" for d in unverified}
    data_only: dict[str, str] = {}
    for p in new.grep(needles, f"adapters/*/{SPEC_FILENAME}") if needles else []:
        if (m := _SPEC_RE.match(p)) and m.group(1) not in spec_files:
            data_only[m.group(1)] = p
    data_only_text = new.read(data_only.values())
    data_only_raw = {p: _light(t) for p, t in data_only_text.items()}

    problems: list[Problem] = []
    sides: dict[str, tuple[_Side, _Side]] = {}
    old_text, new_text = old.read(spec_files.values()), new.read(spec_files.values())
    for name, path in spec_files.items():
        try:
            new_side = _side(new_text[path], path, name, strict=True)
            sides[name] = (_side(old_text[path], path, name, strict=False), new_side)
        except InvalidInput as exc:
            problems += exc.problems
    # Hash every data path the specs name, in one batch per side.
    same = [p for raw in data_only_raw.values() for p in _data_paths(raw)]
    old_paths = [p for o, _ in sides.values() for p in _data_paths(o.raw)] + same
    new_paths = [p for _, n in sides.values() for p in _data_paths(n.raw)] + same
    hashes = (_Hasher(old, dvc).hashes(old_paths), _Hasher(new, dvc).hashes(new_paths))

    def is_published(name: str, path: str, version: str, backwards: bool) -> bool:
        if isinstance(published, Mapping):
            return version in set(published.get(name, ()))
        if published is not None:
            return version in set(published(name))
        # No store: only a step back is looked up (one `git log`), in the spec's base history.
        return backwards and _declared_before(git, merge_base, path, version)

    entries: list[PlanEntry] = []
    decisions = [
        _decide(name, spec_files[name], *sides[name], hashes, is_published) for name in sides
    ]
    for name, path in data_only.items():
        text, raw = data_only_text[path], data_only_raw[path]
        decisions.append(_decide_data_only(name, path, text, raw, hashes))
    for decided in decisions:
        if isinstance(decided, Problem):
            problems.append(decided)
        elif decided is not None:
            entries.append(decided)
    if problems:
        raise InvalidInput(sorted(problems, key=lambda p: p.file))
    entries.sort(key=lambda e: e.name)
    return Plan(base=merge_base, head=head, entries=entries)
