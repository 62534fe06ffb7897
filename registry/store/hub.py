"""Hugging Face Hub backend (hf://ORG): one model repo per adapter, `{org}/{name}`.

A version is one commit holding exactly its files, tagged `v<version>`; `main` is the current
pointer (a commit whose files equal the current version's), so a version commit must never move
`main`. Publishing therefore commits on a staging branch `registry-staging-v<version>` (one
`create_commit` with `parent_commit`, never `upload_folder`, which may split into several
commits), then tags that commit and deletes the branch. The tag is the decision point:
- a failure before the tag leaves no version: an untagged commit is invisible (readers start
  from tags) and a rerun finds the staging branch, checks what its head holds, and completes;
- concurrent publishers race on the tag; the loser sees it exists and compares fingerprints:
  same -> "exists", other -> Conflict. Every step re-reads the refs, so a lost reply (the server
  applied the request, the client never heard) is recovered by looking again.

Transient failures (5xx, 429, timeouts, dropped connections) are retried with exponential backoff
and jitter; a 429's Retry-After is waited out without failing the run (registry/store/hub_reads.py
names the settings). Not-found errors are answers, never retried. The token is huggingface_hub's
(HF_TOKEN or the login); it is never logged and never part of an error message.

A reconcile run (`registry sync`) reads the fleet in a session: one listing of the org says which
repos are unchanged, and those cost no request (registry/store/hub_session.py: what is trusted
and why); `prefetch` reads the others with a few threads. Writes always read the refs afresh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RevisionNotFoundError

from registry.artifact import REGISTRY_JSON, VERSION_FILES, Provenance
from registry.core.fs import sha256_bytes
from registry.core.git import blob_id
from registry.errors import Conflict, InvalidInput, RegistryError, StoreError
from registry.store.base import (
    PublishResult,
    VersionInfo,
    check_files,
    check_version,
    is_valid_name,
    is_valid_version,
    sort_versions,
    version_info,
)
from registry.store.hub_errors import HUB_HOUSEKEEPING, hub_errors, status_of
from registry.store.hub_reads import HubReads

STAGING = "registry-staging-v"  # + version: the branch a version commit is built on
RETIRED_FILE = "RETIRED.md"
RETIRED_TEXT = (
    "# Retired\n\nThe registry no longer declares this adapter. Its published versions stay "
    'available by tag (`revision="v<version>"`).\n'
)
ROUNDS = 8  # look-again rounds when another writer moved a ref under us


def _writes(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A write to adapter `name`'s repo: afterwards this process reads that repo afresh."""

    @functools.wraps(fn)
    def wrapper(self: HubStore, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, name, *args, **kwargs)
        finally:
            self._forget(f"{self.org}/{name}")

    return wrapper


def _same(sibling: Any, data: bytes) -> bool:
    """Does a remote file hold `data`? LFS files carry a sha256, regular ones a git blob id."""
    if sibling.lfs is not None:
        return sibling.lfs.sha256 == sha256_bytes(data)
    return sibling.blob_id == blob_id(data)


def _fingerprint_of(sibling: Any) -> tuple:
    return (sibling.lfs.sha256 if sibling.lfs is not None else None, sibling.blob_id)


class HubStore(HubReads):
    """The Store protocol on a Hub org (`hf://ORG`): the reads of HubReads, and the writes."""

    def _commit(
        self, repo: str, branch: str, parent: str, tree: dict, files: dict[str, bytes], msg: str
    ) -> bool:
        """One commit on `branch` whose files become exactly `files` (+ HUB_HOUSEKEEPING). False when
        `branch` moved or vanished since `parent` was read: the caller looks again."""

        def operations() -> list:  # fresh objects per attempt: the client mutates them
            adds = [CommitOperationAdd(path, data) for path, data in sorted(files.items())]
            stale = sorted(set(tree) - set(files) - HUB_HOUSEKEEPING)
            return adds + [CommitOperationDelete(path) for path in stale]

        return self._attempt(
            f"{repo}: commit on {branch}",
            lambda: self._api.create_commit(
                repo, operations(), commit_message=msg, revision=branch, parent_commit=parent
            ),
        )

    def _attempt(self, what: str, fn: Callable[[], object]) -> bool:
        """Run a write; False when another writer got there first (409/412, or the branch or a
        file vanished): the caller re-reads the refs and looks again."""
        try:
            self._call(what, fn)
        except (RevisionNotFoundError, RemoteEntryNotFoundError):
            return False
        except HfHubHTTPError as err:
            if status_of(err) in (409, 412):
                return False
            raise
        return True

    def _drop_branch(self, repo: str, branch: str) -> None:
        """Best effort: a leftover staging branch is harmless and the next publish retries."""
        try:
            self._call(
                f"{repo}: delete {branch}", lambda: self._api.delete_branch(repo, branch=branch)
            )
        except (StoreError, HfHubHTTPError):
            pass

    # ---- the Store protocol ----

    @hub_errors("list adapters")
    def list_adapters(self) -> list[str]:
        names = self._listed_names()
        if names is None:
            ids = self._call(
                f"{self.url}: list repos",
                lambda: [m.id for m in self._api.list_models(author=self.org)],
            )
            names = [i.split("/", 1)[1] for i in ids if i.startswith(f"{self.org}/")]
        return sorted(n for n in names if is_valid_name(n))

    @hub_errors("list versions of")
    def versions(self, name: str) -> list[VersionInfo]:
        repo = self.repo_id(name)
        refs = self._refs(repo)  # complete: always read now
        if refs is None:
            return []
        infos = [
            version_info(name, tag[1:], commit, self._manifest(repo, commit))
            for tag, commit in refs[1].items()
            if tag.startswith("v") and is_valid_version(tag[1:])
        ]
        return sort_versions(infos)

    @hub_errors("read the current version of")
    def current(self, name: str) -> str | None:
        repo = self.repo_id(name)
        main = self._main(repo)
        if main is None:
            return None
        tree = self._paths(repo, main)
        if RETIRED_FILE in tree or REGISTRY_JSON not in tree:
            return None
        return self._manifest(repo, main, blob=tree[REGISTRY_JSON]).version

    @hub_errors("read the state of")
    def is_retired(self, name: str) -> bool:
        repo = self.repo_id(name)
        main = self._main(repo)
        return main is not None and RETIRED_FILE in self._paths(repo, main)

    def prefetch(self, wanted: list[tuple[str, str]]) -> None:
        """Read what a reconcile asks of each (name, version) -- its manifest and the current
        version -- with REGISTRY_HUB_THREADS threads, into this session; a failure is left for
        the reconcile's own call to meet and report. Outside a session: nothing to keep."""
        if self._session is None or not wanted:
            return

        def read(item: tuple[str, str]) -> None:
            try:
                self.manifest(*item)
                self.current(item[0])
            except (RegistryError, ValueError):
                pass

        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="hub-read") as pool:
            list(pool.map(read, wanted))

    @hub_errors("publish")
    @_writes
    def publish(
        self, name: str, version: str, files: dict[str, bytes], *, private: bool = True
    ) -> PublishResult:
        check_version(version)
        fingerprint = check_files(files)
        repo, tag, staging = self.repo_id(name), f"v{version}", f"{STAGING}{version}"
        self._call(
            f"{repo}: create repo",
            lambda: self._api.create_repo(repo, private=private, exist_ok=True),
        )
        for _ in range(ROUNDS):
            refs = self._refs(repo)
            if refs is None:
                raise StoreError(f"{self.url}: {repo} vanished while publishing {tag}")
            branches, tags = refs
            if tag in tags:
                if staging in branches:
                    self._drop_branch(repo, staging)
                return self._existing(repo, name, version, tags[tag], fingerprint)
            head = branches.get(staging)
            if head is None:
                head = branches["main"]
                if not self._attempt(
                    f"{repo}: create branch {staging}",
                    lambda h=head: self._api.create_branch(repo, branch=staging, revision=h),
                ):
                    continue  # another publisher made it: look again
            tree = self._tree(repo, head)
            if set(tree) - HUB_HOUSEKEEPING != set(files) or not all(
                _same(tree[p], data) for p, data in files.items()
            ):
                # Build the version commit, then look again: the next round sees the new head,
                # verifies it holds exactly these files, and only then tags it.
                self._commit(repo, staging, head, tree, files, f"{name} {version}")
                continue
            if not self._attempt(
                f"{repo}: create tag {tag}",
                lambda h=head: self._api.create_tag(repo, tag=tag, revision=h),
            ):
                continue  # tagged meanwhile (by a rival, or by our own lost reply): compare
            self._drop_branch(repo, staging)
            return PublishResult("published", version, head)
        raise StoreError(f"{self.url}: {repo} kept changing while publishing {tag}; try again")

    def _existing(
        self, repo: str, name: str, version: str, commit: str, fingerprint: str
    ) -> PublishResult:
        theirs = self._manifest(repo, commit).fingerprint
        if theirs != fingerprint:
            raise Conflict(
                f"{name} {version} already exists in {self.url} with another fingerprint "
                f"({theirs} != {fingerprint}); published versions never change: bump the version"
            )
        return PublishResult("exists", version, commit)

    @hub_errors("read the manifest of")
    def manifest(self, name: str, version: str) -> Provenance | None:
        repo, tag = self.repo_id(name), f"v{check_version(version)}"
        refs = self._tag_refs(repo, tag)
        commit = refs[1].get(tag) if refs else None
        return self._manifest(repo, commit) if commit else None

    @hub_errors("download")
    def download(self, name: str, version: str, dest: Path) -> str:
        repo = self.repo_id(name)
        refs = self._refs(repo)
        commit = refs[1].get(f"v{check_version(version)}") if refs else None
        if commit is None:
            raise InvalidInput(f"{name} {version} is not published in {self.url}")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        paths = sorted(set(self._tree(repo, commit)) & VERSION_FILES)
        for path, data in self._read(repo, commit, paths).items():
            (dest / path).write_bytes(data)
        return commit

    @hub_errors("set the current version of")
    @_writes
    def set_current(self, name: str, version: str) -> bool:
        repo, tag = self.repo_id(name), f"v{check_version(version)}"
        for _ in range(ROUNDS):
            refs = self._refs(repo)
            if refs is None or tag not in refs[1]:
                raise InvalidInput(
                    f"{name} {version} is not published in {self.url}; publish it first"
                )
            main, commit = refs[0]["main"], refs[1][tag]
            main_tree = self._tree(repo, main)
            wanted = {
                p: s for p, s in self._tree(repo, commit).items() if p not in HUB_HOUSEKEEPING
            }
            if set(main_tree) - HUB_HOUSEKEEPING == set(wanted) and all(
                _fingerprint_of(main_tree[p]) == _fingerprint_of(s) for p, s in wanted.items()
            ):
                return False
            files = self._read(repo, commit, sorted(wanted))
            if self._commit(repo, "main", main, main_tree, files, f"current: {name} {version}"):
                return True
        raise StoreError(f"{self.url}: {repo} main kept changing; try again")

    @hub_errors("retire")
    @_writes
    def retire(self, name: str) -> bool:
        repo = self.repo_id(name)
        if self._session is not None and self.is_retired(name):
            return False  # main's commit, per this run's listing, holds RETIRED.md
        for _ in range(ROUNDS):
            refs = self._refs(repo)
            if refs is None or "main" not in refs[0]:
                return False
            main = refs[0]["main"]
            tree = self._tree(repo, main)
            if RETIRED_FILE in tree:
                return False
            retired = {RETIRED_FILE: RETIRED_TEXT.encode()}
            if self._commit(repo, "main", main, tree, retired, f"retire {name}"):
                return True
        raise StoreError(f"{self.url}: {repo} main kept changing; try again")
