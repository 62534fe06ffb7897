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
and jitter: REGISTRY_HUB_RETRIES (5), REGISTRY_HUB_BACKOFF (1.0 s base), REGISTRY_HUB_MAX_WAIT
(30 s cap, also for Retry-After), REGISTRY_HUB_TIMEOUT (30 s, metadata and download requests).
Not-found errors are answers, never retried. The token is huggingface_hub's (HF_TOKEN or the
login); it is never logged and never part of an error message.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from registry.artifact import REGISTRY_JSON, VERSION_FILES, Provenance
from registry.core.fs import sha256_bytes
from registry.errors import Conflict, InvalidInput, StoreError
from registry.store import manifest_cache
from registry.store.base import (
    PublishResult,
    VersionInfo,
    check_files,
    check_name,
    check_version,
    is_valid_name,
    is_valid_version,
    retry_call,
    sort_versions,
    version_info,
)
from registry.store.hub_errors import (
    HUB_HOUSEKEEPING,
    env_number,
    hub_errors,
    is_transient,
    retry_after,
    status_of,
)

STAGING = "registry-staging-v"  # + version: the branch a version commit is built on
RETIRED_FILE = "RETIRED.md"
RETIRED_TEXT = (
    "# Retired\n\nThe registry no longer declares this adapter. Its published versions stay "
    'available by tag (`revision="v<version>"`).\n'
)
ROUNDS = 8  # look-again rounds when another writer moved a ref under us

T = TypeVar("T")


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _same(sibling: Any, data: bytes) -> bool:
    """Does a remote file hold `data`? LFS files carry a sha256, regular ones a git blob id."""
    if sibling.lfs is not None:
        return sibling.lfs.sha256 == sha256_bytes(data)
    return sibling.blob_id == _git_blob_sha(data)


def _fingerprint_of(sibling: Any) -> tuple:
    return (sibling.lfs.sha256 if sibling.lfs is not None else None, sibling.blob_id)


class HubStore:
    def __init__(self, org: str, *, endpoint: str | None = None, token: str | None = None) -> None:
        self.org = org
        self.url = f"hf://{org}"
        # Read at construction (not at huggingface_hub import) so HF_ENDPOINT set late counts.
        endpoint = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        self.endpoint = endpoint.rstrip("/")
        self._api = HfApi(endpoint=self.endpoint, token=token)
        self.retries = int(env_number("REGISTRY_HUB_RETRIES", 5))
        self.backoff = env_number("REGISTRY_HUB_BACKOFF", 1.0)
        self.max_wait = env_number("REGISTRY_HUB_MAX_WAIT", 30.0)
        self.timeout = env_number("REGISTRY_HUB_TIMEOUT", 30.0)
        self.trust_cache = True  # False (sync --full): re-read every manifest from the Hub

    def repo_id(self, name: str) -> str:
        return f"{self.org}/{check_name(name)}"

    # ---- transport: one retried call, and the reads built on it ----

    def _call(self, what: str, fn: Callable[[], T], retries: int | None = None) -> T:
        if constants.is_offline_mode():
            raise StoreError(f"{self.url}: HF_HUB_OFFLINE is set; the Hub store cannot be reached")
        return retry_call(
            fn,
            what=what,
            is_transient=is_transient,
            retries=self.retries if retries is None else retries,
            backoff=self.backoff,
            max_wait=self.max_wait,
            retry_after=retry_after,
        )

    def _refs(self, repo: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(branches, tags) as name -> commit, or None when the repo does not exist."""
        try:
            refs = self._call(f"{repo}: list refs", lambda: self._api.list_repo_refs(repo))
        except RepositoryNotFoundError:
            return None
        branches = {b.name: b.target_commit for b in refs.branches}
        return branches, {t.name: t.target_commit for t in refs.tags}

    def _tree(self, repo: str, rev: str) -> dict[str, Any]:
        """path -> RepoSibling (blob id, LFS sha256) of the files at `rev`."""
        info = self._call(
            f"{repo}: read files at {rev[:12]}",
            lambda: self._api.model_info(
                repo, revision=rev, files_metadata=True, timeout=self.timeout
            ),
        )
        return {s.rfilename: s for s in info.siblings or []}

    def _paths(self, repo: str, commit: str) -> set[str]:
        """The file names at `commit` (immutable: cached by commit). Writers use _tree instead,
        which also reads each file's blob id and sha256 fresh."""
        paths = manifest_cache.get_paths(self.url, repo, commit, trust=self.trust_cache)
        if paths is None:
            paths = set(self._tree(repo, commit))
            manifest_cache.put_paths(self.url, repo, commit, paths)
        return paths

    def _read(self, repo: str, rev: str, paths: list[str]) -> dict[str, bytes]:
        """The bytes of `paths` at `rev` (through a throwaway cache: the registry keeps its own)."""
        out = {}
        with tempfile.TemporaryDirectory(prefix="registry-hub-") as cache:
            for path in paths:
                local = self._call(
                    f"{repo}: download {path} at {rev[:12]}",
                    lambda p=path: self._api.hf_hub_download(
                        repo, p, revision=rev, cache_dir=cache, etag_timeout=self.timeout
                    ),
                    # hf_hub_download already resumes a dropped transfer 5 times with backoff;
                    # our full retries on top would multiply into minutes of waiting.
                    retries=min(self.retries, 1),
                )
                out[path] = Path(local).read_bytes()
        return out

    def _manifest(self, repo: str, rev: str) -> Provenance:
        """registry.json at `rev`, read leniently (empty when absent or malformed). At a commit
        id it is immutable: read once, then from the commit-keyed cache (manifest_cache)."""
        cached = manifest_cache.get(self.url, repo, rev, trust=self.trust_cache)
        if cached is not None:
            return Provenance.loads(cached)
        try:
            data: bytes | None = self._read(repo, rev, [REGISTRY_JSON])[REGISTRY_JSON]
        except RemoteEntryNotFoundError:
            data = None
        manifest_cache.put(self.url, repo, rev, data)
        return Provenance.loads(data)

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
        ids = self._call(
            f"{self.url}: list repos",
            lambda: [m.id for m in self._api.list_models(author=self.org)],
        )
        names = (i.split("/", 1)[1] for i in ids if i.startswith(f"{self.org}/"))
        return sorted(n for n in names if is_valid_name(n))

    @hub_errors("list versions of")
    def versions(self, name: str) -> list[VersionInfo]:
        repo = self.repo_id(name)
        refs = self._refs(repo)
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
        refs = self._refs(repo)
        if refs is None or "main" not in refs[0]:
            return None
        main = refs[0]["main"]
        tree = self._paths(repo, main)
        if RETIRED_FILE in tree or REGISTRY_JSON not in tree:
            return None
        return self._manifest(repo, main).version

    @hub_errors("read the state of")
    def is_retired(self, name: str) -> bool:
        repo = self.repo_id(name)
        refs = self._refs(repo)
        if refs is None or "main" not in refs[0]:
            return False
        return RETIRED_FILE in self._paths(repo, refs[0]["main"])

    @hub_errors("publish")
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
        repo = self.repo_id(name)
        refs = self._refs(repo)
        commit = refs[1].get(f"v{check_version(version)}") if refs else None
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
    def retire(self, name: str) -> bool:
        repo = self.repo_id(name)
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
