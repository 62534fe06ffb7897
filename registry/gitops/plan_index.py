"""Which specs name a changed data file, at a cost that does not grow with the registry.

A data-only change (a file under a DVC output changed, no spec file did) must find every spec
whose text names that file; plan then parses those and confirms (registry.gitops.plan). Reading
every spec for it (one `git grep` over all spec blobs) grows with the registry: 5 ms at 10 specs,
50 ms at 1,000. This index keeps the text of every spec of one `adapters/` tree in the registry
cache (folder "plan-index"), keyed by the git id of that tree. A tree id names the exact content
of every spec in it, so an index is never stale; it is also checked when read (each text against
its git blob id) and dropped when damaged. A lookup costs one `git ls-tree` and one file read.

A tree not indexed yet is indexed from the one indexed last: specs whose blob id it holds are
taken from it, only the others are read (by blob id, `git cat-file --batch`); a PR that changes a few specs
reads a few. Matching is `git grep -F`'s: a spec is named when its text contains a needle (a
file path, or a folder path ending in "/"). The working tree (no tree id), and a tree with a spec
over the spec size limit or over MAX_TOTAL bytes of specs, are searched with `git grep` as
before. The cache is the runner's own, like the rest of registry.core.cache: a damaged entry
costs a rebuild, never a wrong plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from registry.core.cache import cache_dir, read_entry
from registry.core.fs import atomic_file
from registry.core.git import GitReader, Snapshot, blob_id
from registry.spec.loader import MAX_SPEC_BYTES
from registry.spec.schema import SPEC_FILENAME

MAX_TOTAL = 64 * 1024 * 1024  # bytes of spec text one index may hold
KEEP = 16  # indexes kept in the cache (newest first)
_SPEC = re.compile(rf"^([^/]+)/{re.escape(SPEC_FILENAME)}$")  # inside adapters/
_OID = re.compile(r"^[0-9a-f]{40,64}$")


def specs_naming(git: GitReader, snap: Snapshot, needles: Iterable[str]) -> list[str]:
    """Repo paths `adapters/NAME/adapter.yaml` at `snap` whose text contains any needle."""
    needles = sorted(set(needles))
    if not needles:
        return []
    texts = _texts(git, snap.commit) if snap.commit is not None else None
    if texts is None:
        return snap.grep(needles, f"adapters/*/{SPEC_FILENAME}")
    wanted = [n.encode() for n in needles]
    return sorted(
        f"adapters/{path}" for path, text in texts.items() if any(n in text for n in wanted)
    )


def _texts(git: GitReader, commit: str) -> dict[str, bytes] | None:
    """{NAME/adapter.yaml: text} of the specs at `commit`; None: search with git grep."""
    top = git.run("--literal-pathspecs", "ls-tree", "-z", "--full-tree", commit, "--", "adapters")
    meta = top.split(b"\0")[0].partition(b"\t")[0].split()
    if len(meta) != 3 or meta[1] != b"tree" or not _OID.match(meta[2].decode()):
        return {}  # no adapters/ folder (or a file of that name): there is no spec
    tree_id = meta[2].decode()
    known = _load(tree_id)
    if known is not None:
        return known
    listing = _list(git, tree_id)
    previous = _load_latest()
    texts: dict[str, bytes] = {}
    missing: list[str] = []
    for path, blob in listing.items():
        if previous is not None and blob in previous:
            texts[path] = previous[blob]
        else:
            missing.append(path)
    oids = sorted({listing[p] for p in missing})
    if oids and not _within_limits(git, oids):
        return None
    read = _cat(git, oids)
    for path in missing:
        data = read.get(listing[path])
        if data is None:
            return None  # unreadable: let git grep decide
        texts[path] = data
    _save(tree_id, {p: (listing[p], t) for p, t in texts.items()})
    return texts


def _list(git: GitReader, tree_id: str) -> dict[str, str]:
    """{NAME/adapter.yaml: blob id} in the tree."""
    out = git.run("ls-tree", "-r", "-z", tree_id)
    found: dict[str, str] = {}
    for record in out.split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        fields = meta.split()
        path = raw.decode(errors="surrogateescape")
        if len(fields) == 3 and fields[1] == b"blob" and _SPEC.match(path):
            found[path] = fields[2].decode()
    return found


def _within_limits(git: GitReader, oids: list[str]) -> bool:
    """Are the blobs to read each within the spec size limit, and all within MAX_TOTAL?"""
    stdin = "".join(f"{o}\n" for o in oids).encode()
    total = 0
    for line in git.run("cat-file", "--batch-check", stdin=stdin).splitlines():
        fields = line.split()
        size = int(fields[2]) if len(fields) == 3 and fields[2].isdigit() else MAX_TOTAL + 1
        total += size
        if size > MAX_SPEC_BYTES or total > MAX_TOTAL:
            return False
    return True


def _cat(git: GitReader, oids: list[str]) -> dict[str, bytes]:
    """Blob id -> content, by id in one `git cat-file --batch` (no path lookups)."""
    if not oids:
        return {}
    out = git.run("cat-file", "--batch", stdin="".join(f"{o}\n" for o in oids).encode())
    found, pos = {}, 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3 or header[1] != b"blob":  # "<oid> missing" or not a blob
            pos = end + 1
            continue
        size = int(header[2])
        found[header[0].decode()] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return found


def _path(tree_id: str) -> Path:
    return cache_dir("plan-index", f"{tree_id}.json")


def _load(tree_id: str) -> dict[str, bytes] | None:
    """{path: text} of an index, every text checked against its blob id; None: absent or bad."""

    def parse(entry: dict) -> dict[str, bytes]:
        if entry["tree"] != tree_id:
            raise ValueError("index of another tree")
        texts = {}
        for spec, (blob, text) in entry["specs"].items():
            data = text.encode("latin-1")
            if blob_id(data) != blob:
                raise ValueError("text does not match its blob id")
            texts[spec] = data
        return texts

    return read_entry(_path(tree_id), parse)


def _load_latest() -> dict[str, bytes] | None:
    """blob id -> text of the index written last (a start for the next tree), if any."""
    try:
        tree_id = cache_dir("plan-index", "latest").read_text().strip()
    except OSError:
        return None
    if not _OID.match(tree_id):
        return None
    texts = _load(tree_id)
    return {blob_id(t): t for t in texts.values()} if texts is not None else None


def _save(tree_id: str, specs: dict[str, tuple[str, bytes]]) -> None:
    entry = {"tree": tree_id, "specs": {p: [b, t.decode("latin-1")] for p, (b, t) in specs.items()}}
    try:
        with atomic_file(_path(tree_id)) as tmp:
            tmp.write_text(json.dumps(entry), encoding="utf-8")
        with atomic_file(cache_dir("plan-index", "latest")) as tmp:
            tmp.write_text(tree_id + "\n")
        indexes = sorted(
            _path(tree_id).parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in indexes[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache: the next plan reads the specs again
