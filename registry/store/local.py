"""Local directory store (file:///path): the same semantics as the Hub, on one filesystem.

Layout, one folder per adapter (mirroring a Hub repo):

    <root>/<name>/commits/<commit>/   the files of one version; <commit> = sha256 over the
                                      sorted (file name, sha256) pairs, so equal content = equal id
    <root>/<name>/tags/v<version>     one line: the commit id. This file IS the version
    <root>/<name>/CURRENT             one line: the current version
    <root>/<name>/RETIRED             marker: retired (CURRENT removed)
    <root>/<name>/.lock               flock target serialising writers of this adapter
    <root>/<name>/.tmp/               staging area; whatever is left there was left by a killed
                                      writer (writers stage under the lock) and is removed

Why it is crash-safe: a commit folder is written and fsynced in .tmp, then renamed into place
(it appears whole or not at all); the tag is hard-linked from a fsynced temp file, which fails if
the tag exists, so a tag never moves and never points at a missing or partial commit. A commit
without a tag is invisible: readers start from tags. (The writes are registry.core.fs's
atomic_file / atomic_dir with durable=True, staged in .tmp.)

A reconcile (`registry sync`) needs no listing or session here, unlike the Hub: what it asks of
each adapter (one tag file, that commit's registry.json, CURRENT and RETIRED) is a few local file
reads that do not grow with the number of versions; the directory itself is the listing. A no-op
of 1,000 adapters x 10 versions reads in 0.1-0.2 s (bench/fleet_scale.py, bench/results.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from registry.artifact import REGISTRY_JSON, VERSION_FILES, Provenance
from registry.core.fs import atomic_dir, atomic_file, file_lock, fsync_dir, sha256_bytes
from registry.errors import Conflict, InvalidInput, StoreError
from registry.store.base import (
    PublishResult,
    VersionInfo,
    check_files,
    check_name,
    check_version,
    is_valid_name,
    is_valid_version,
    sort_versions,
    version_info,
)


def commit_id(files: dict[str, bytes]) -> str:
    listing = "".join(f"{name}\0{sha256_bytes(data)}\n" for name, data in sorted(files.items()))
    return sha256_bytes(listing.encode())


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"

    # ---- paths and low-level helpers ----

    def _repo(self, name: str) -> Path:
        return self.root / check_name(name)

    def _tag(self, name: str, version: str) -> Path:
        return self._repo(name) / "tags" / f"v{check_version(version)}"

    def _commit_of(self, name: str, version: str) -> str | None:
        try:
            commit = self._tag(name, version).read_text().strip()
        except FileNotFoundError:
            return None
        return commit or None

    def _manifest(self, name: str, commit: str) -> Provenance:
        try:
            raw = (self._repo(name) / "commits" / commit / REGISTRY_JSON).read_bytes()
        except OSError:
            return Provenance()
        return Provenance.loads(raw)

    @contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        """Hold the adapter's writer lock; clear what killed writers left in .tmp."""
        repo = self._repo(name)
        with ExitStack() as stack:
            try:
                (repo / ".tmp").mkdir(parents=True, exist_ok=True)
                (repo / "tags").mkdir(exist_ok=True)
                (repo / "commits").mkdir(exist_ok=True)
                stack.enter_context(file_lock(repo / ".lock"))
            except OSError as err:
                raise StoreError(f"{self.url}: cannot write {repo}: {err.strerror}") from err
            for leftover in (repo / ".tmp").iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
            yield repo

    def _write_pointer(self, repo: Path, fname: str, text: str) -> None:
        with atomic_file(repo / fname, durable=True, staging=repo / ".tmp") as tmp:
            tmp.write_bytes(text.encode())

    # ---- the Store protocol ----

    def list_adapters(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and (p / "tags").is_dir() and is_valid_name(p.name)
        )

    def versions(self, name: str) -> list[VersionInfo]:
        tags = self._repo(name) / "tags"
        if not tags.is_dir():
            return []
        infos = []
        for tag in tags.iterdir():
            version = tag.name[1:]
            if not tag.name.startswith("v") or not is_valid_version(version):
                continue
            commit = self._commit_of(name, version)
            if commit:
                infos.append(version_info(name, version, commit, self._manifest(name, commit)))
        return sort_versions(infos)

    def current(self, name: str) -> str | None:
        repo = self._repo(name)
        if (repo / "RETIRED").exists():
            return None
        try:
            return (repo / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def is_retired(self, name: str) -> bool:
        return (self._repo(name) / "RETIRED").exists()

    def publish(
        self, name: str, version: str, files: dict[str, bytes], *, private: bool = True
    ) -> PublishResult:
        """`private` has no meaning on a local folder; file permissions are the access control."""
        check_version(version)
        fingerprint = check_files(files)
        commit = commit_id(files)
        with self._locked(name) as repo:
            existing = self._commit_of(name, version)
            if existing is not None:
                return self._existing(name, version, existing, fingerprint)
            target = repo / "commits" / commit
            if not target.is_dir():
                # the commit appears whole or not at all (an equal one is content-addressed)
                with atomic_dir(target, durable=True, replace=False, staging=repo / ".tmp") as d:
                    for fname, data in files.items():
                        (d / fname).write_bytes(data)
            try:  # a hard link: fails if the tag exists, so a tag never moves
                tag = self._tag(name, version)
                with atomic_file(tag, durable=True, overwrite=False, staging=repo / ".tmp") as t:
                    t.write_bytes(f"{commit}\n".encode())
            except FileExistsError:
                return self._existing(name, version, self._commit_of(name, version), fingerprint)
        return PublishResult("published", version, commit)

    def _existing(
        self, name: str, version: str, commit: str | None, fingerprint: str
    ) -> PublishResult:
        theirs = self._manifest(name, commit).fingerprint if commit else None
        if theirs != fingerprint:
            raise Conflict(
                f"{name} {version} already exists in {self.url} with another fingerprint "
                f"({theirs} != {fingerprint}); published versions never change: bump the version"
            )
        return PublishResult("exists", version, commit or "")

    def manifest(self, name: str, version: str) -> Provenance | None:
        commit = self._commit_of(name, version)
        return self._manifest(name, commit) if commit else None

    def download(self, name: str, version: str, dest: Path) -> str:
        commit = self._commit_of(name, version)
        if commit is None:
            raise InvalidInput(f"{name} {version} is not published in {self.url}")
        source = self._repo(name) / "commits" / commit
        if not source.is_dir():
            raise StoreError(f"{self.url}: {name} {version} points at missing commit {commit}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.name in VERSION_FILES and path.is_file() and not path.is_symlink():
                shutil.copyfile(path, dest / path.name)
        return commit

    def set_current(self, name: str, version: str) -> bool:
        if self._commit_of(name, version) is None:  # tags never disappear: no lock needed
            raise InvalidInput(f"{name} {version} is not published in {self.url}; publish it first")
        with self._locked(name) as repo:
            if self.current(name) == version:
                return False
            self._write_pointer(repo, "CURRENT", f"{version}\n")
            (repo / "RETIRED").unlink(missing_ok=True)  # pointing current again un-retires
            fsync_dir(repo)
        return True

    def retire(self, name: str) -> bool:
        if not (self._repo(name) / "tags").is_dir() or self.is_retired(name):
            return False
        with self._locked(name) as repo:
            if self.is_retired(name):
                return False
            self._write_pointer(repo, "RETIRED", "retired: its versions stay pullable\n")
            (repo / "CURRENT").unlink(missing_ok=True)
            fsync_dir(repo)
        return True
