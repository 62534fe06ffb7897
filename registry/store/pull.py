"""`registry pull` and `registry versions`: get published bytes, verified, by version.

A reference is `NAME@1.2.0`, `NAME@^1.2`, `NAME@~1.2.3`, `NAME@latest` or a bare `NAME` (the
store's current version, the one main declares). It resolves to one exact commit; the files land
in a local cache keyed by store + name + commit, and every sha256 is verified against the
manifest before the path is returned, on every pull, cached or not. A lockfile pins name ->
version, commit and hashes so a service gets the same bytes on every deploy.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.artifact import verify_folder
from registry.core.cache import cache_dir
from registry.core.fs import atomic_dir, atomic_file
from registry.core.semver import best_match, parse_version
from registry.errors import InvalidInput, RegistryError
from registry.spec.schema import NAME_PATTERN
from registry.store.base import Store, VersionInfo

if TYPE_CHECKING:
    from registry.spec.schema import Spec

_REF = re.compile(
    NAME_PATTERN.removesuffix("$").replace("^", "^(?P<name>", 1) + r")(?:@(?P<sel>[^\s@]+))?$"
)
LOCK_VERSION = 1


@dataclass
class PulledAdapter:
    name: str
    version: str
    commit: str
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'name@selector' -> (name, selector); selector None means the current version."""
    match = _REF.match(ref.strip())
    if not match:
        raise InvalidInput(
            f"bad adapter reference {ref!r}: use NAME, NAME@1.2.0, NAME@^1.2, NAME@~1.2.3 "
            "or NAME@latest"
        )
    selector = match["sel"]
    if selector not in (None, "latest") and selector[:1] not in "^~":
        parse_version(selector)  # an exact version must be valid semver
    return match["name"], selector


def versions(name: str, store: Store) -> list[VersionInfo]:
    """Published versions sorted by semver, the current one flagged."""
    infos = sorted(store.versions(name), key=lambda v: parse_version(v.version))
    current = store.current(name)
    for info in infos:
        info.current = info.version == current
    return infos


def resolve(ref: str, store: Store) -> VersionInfo:
    name, selector = parse_ref(ref)
    infos = store.versions(name)
    if not infos:
        raise InvalidInput(f"{name}: no published versions in {store.url}")
    if selector is None:
        version = store.current(name)
        if version is None:
            raise InvalidInput(
                f"{name} has no current version (retired?); pull an exact version: "
                + ", ".join(i.version for i in infos)
            )
    else:
        version = best_match([i.version for i in infos], selector)
        if version is None:
            raise InvalidInput(
                f"{ref}: no published version matches; published: "
                + ", ".join(sorted((i.version for i in infos), key=parse_version))
            )
    return next(i for i in infos if i.version == version)


def _cache_path(store: Store, name: str, commit: str) -> Path:
    store_key = hashlib.sha256(store.url.encode()).hexdigest()[:16]
    return cache_dir("adapters", store_key, name, commit)


def _read_lock(lock: Path | None) -> dict:
    if lock is None or not lock.exists():
        return {"version": LOCK_VERSION, "adapters": {}}
    try:
        data = json.loads(lock.read_text())
        if data.get("version") != LOCK_VERSION or not isinstance(data.get("adapters"), dict):
            raise ValueError
        return data
    except ValueError:
        raise InvalidInput(f"{lock}: not a registry lockfile (version {LOCK_VERSION})") from None


def read_lock(lock: Path) -> dict[str, dict]:
    """The pins of an existing lockfile: name -> {version, commit, store, files}."""
    lock = Path(lock)
    if not lock.is_file():
        raise InvalidInput(f"{lock}: no such lockfile")
    return _read_lock(lock)["adapters"]


def _write_lock(lock: Path, data: dict) -> None:
    with atomic_file(lock) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fetch(store: Store, info: VersionInfo, target: Path) -> None:
    """Download into a temp dir next to the cache entry, verify, then rename into place."""
    with atomic_dir(target) as tmp:
        commit = store.download(info.name, info.version, tmp)
        if commit != info.commit:
            raise RegistryError(
                f"{info.name} {info.version}: the store served commit {commit}, expected "
                f"{info.commit}; refusing"
            )
        verify_folder(tmp)


def pull(
    ref: str,
    store: Store,
    *,
    out: Path | None = None,
    no_cache: bool = False,
    lock: Path | None = None,
) -> PulledAdapter:
    """Resolve, download (or reuse the cache), verify every sha256, optionally copy to `out`."""
    name, _ = parse_ref(ref)
    lock_data = _read_lock(lock)
    pinned = lock_data["adapters"].get(name)
    if pinned is not None:
        info = resolve(f"{name}@{pinned['version']}", store)
        if info.commit != pinned["commit"]:
            raise RegistryError(
                f"{name} {pinned['version']}: the store's tag points at {info.commit}, the "
                f"lockfile pins {pinned['commit']}; a version must never change: refusing"
            )
    else:
        info = resolve(ref, store)
    target = _cache_path(store, name, info.commit)
    expected = pinned["files"] if pinned else None
    hashes = None
    if target.exists() and not no_cache:
        try:
            hashes = verify_folder(target, expected)
        except InvalidInput:
            shutil.rmtree(target)  # corrupted cache entry: download again
    if hashes is None:
        _fetch(store, info, target)
        hashes = verify_folder(target, expected)
    if out is not None:
        out = Path(out)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(target, out)
    if lock is not None and pinned is None:
        lock_data["adapters"][name] = {
            "version": info.version,
            "commit": info.commit,
            "store": store.url,
            "files": hashes,
        }
        _write_lock(lock, lock_data)
    return PulledAdapter(name, info.version, info.commit, out or target, hashes)


def current_version_dir(spec: Spec, store: Store) -> Path | None:
    """The store's current version of the adapter (pulled, verified), unless it is this version:
    the "previous" contender of an evaluation (no regression vs what is served now)."""
    current = store.current(spec.name)
    if not current or current == spec.version:
        return None
    return pull(f"{spec.name}@{current}", store).path


def current_for_comparison(spec: Spec, store_url: str | None = None) -> tuple[Path | None, str]:
    """What `registry eval --against-current` compares with, as sync does: the configured
    store's current version of the adapter (`current_version_dir`), and those words for the
    log. Without a configured store (a PR job may have none) it compares with base and
    baseline only: (None, why)."""
    from registry.store import configured_store

    store = configured_store(store_url)
    if store is None:
        return None, "no store configured (--store / REGISTRY_STORE)"
    path = current_version_dir(spec, store)
    return path, str(path) if path else "none published yet"
