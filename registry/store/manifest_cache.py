"""Commit-keyed cache of version manifests (registry.json): read from a store once, kept for good.

A Hub commit id is the hash of its content, so the registry.json at a commit can never change:
an entry keyed by (store, repo, commit) is never stale. Each entry records the git blob id of
its bytes and is dropped (and read again from the store) when they disagree, so a truncated or
edited entry is never used. The same bytes are also found by their git blob id (`get_blob`): a
key that is the hash of its content, checked on every read; the Hub's `main` holds the current
version's registry.json, the same blob as the version's, so it is not downloaded twice. A
commit's file list (path -> git blob id) is kept the same way (`get_paths`). The cache only saves requests for listings (versions, current, the
sync's conflict check); `pull` always downloads registry.json afresh and verifies every file's
sha256 against it, so a forged entry can never let other weights through a pull.
`registry sync --full` (a store's trust_cache = False, or REGISTRY_FULL=1) skips reading the
commit-keyed entries and re-reads everything, refreshing them; only a lookup by blob id, which
checks itself, is still made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from registry.core.cache import cache_dir, read_entry
from registry.core.fs import atomic_file
from registry.core.git import blob_id

FULL_ENV = "REGISTRY_FULL"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_commit(rev: str) -> bool:
    """Only a full commit id names immutable content; a branch or tag name may move."""
    return bool(_COMMIT.fullmatch(rev))


def trusting() -> bool:
    return os.environ.get(FULL_ENV, "") in ("", "0")


def _path(store_url: str, repo: str, commit: str, kind: str = "json") -> Path:
    store_key = hashlib.sha256(f"{store_url}\0{repo}".encode()).hexdigest()[:24]
    return cache_dir("manifests", store_key, f"{commit}.{kind}")


def get(store_url: str, repo: str, commit: str, *, trust: bool = True) -> bytes | None:
    """The cached registry.json bytes at `commit` (b"": it has none), or None: absent,
    corrupted, or not trusted (`trust` False, or REGISTRY_FULL set)."""
    if not trust or not is_commit(commit) or not trusting():
        return None

    def parse(entry: dict) -> bytes:
        data = entry["text"].encode("utf-8") if entry["text"] is not None else None
        if entry["commit"] != commit or (data is not None and blob_id(data) != entry["git_blob"]):
            raise ValueError("entry does not match its key or its own blob id")
        return data if data is not None else b""

    return read_entry(_path(store_url, repo, commit), parse)


def put(store_url: str, repo: str, commit: str, data: bytes | None) -> None:
    """Remember registry.json at `commit` (None: the commit has none), and by its blob id.
    Best effort."""
    if not is_commit(commit):
        return
    try:
        text = data.decode("utf-8") if data is not None else None
    except UnicodeDecodeError:
        return  # not a manifest we can keep as text; read it from the store each time
    blob = blob_id(data) if data else None
    entry = {"commit": commit, "git_blob": blob, "text": text}
    _write(_path(store_url, repo, commit), entry)
    if blob is not None:
        _write(_blob_path(store_url, blob), {"git_blob": blob, "text": text})


def _write(path: Path, entry: dict) -> None:
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(entry), encoding="utf-8")
    except OSError:
        pass  # a read-only or full cache costs requests, never correctness


def _blob_path(store_url: str, blob: str) -> Path:
    store_key = hashlib.sha256(store_url.encode()).hexdigest()[:24]
    return cache_dir("manifests", store_key, "blobs", f"{blob}.json")


def get_blob(store_url: str, blob: str) -> bytes | None:
    """registry.json bytes whose git blob id is `blob`, when cached. The id is the hash of the
    bytes, checked on every read, so this trusts nothing: `--full` uses it too (with a blob id
    it has just read from the store)."""
    if not _COMMIT.fullmatch(blob or ""):
        return None

    def parse(entry: dict) -> bytes:
        data = entry["text"].encode("utf-8")
        if blob_id(data) != blob:
            raise ValueError("entry is not the blob it is named after")
        return data

    return read_entry(_blob_path(store_url, blob), parse)


def get_paths(
    store_url: str, repo: str, commit: str, *, trust: bool = True
) -> dict[str, str | None] | None:
    """path -> git blob id (None: not recorded) of the tree at `commit`, when cached."""
    if not trust or not is_commit(commit) or not trusting():
        return None

    def parse(entry: dict) -> dict[str, str | None]:
        if entry["commit"] != commit or not all(isinstance(p, str) for p in entry["paths"]):
            raise ValueError("entry does not match its key")
        blobs = entry.get("blobs") or {}
        return {p: blobs.get(p) if isinstance(blobs.get(p), str) else None for p in entry["paths"]}

    return read_entry(_path(store_url, repo, commit, "paths"), parse)


def put_paths(store_url: str, repo: str, commit: str, paths: dict[str, str | None]) -> None:
    if not is_commit(commit):
        return
    entry = {
        "commit": commit,
        "paths": sorted(paths),
        "blobs": {p: b for p, b in paths.items() if b},
    }
    _write(_path(store_url, repo, commit, "paths"), entry)
