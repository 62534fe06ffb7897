"""The Hub backend's transport and reads: one retried call, and the reads built on it.

HubStore (registry/store/hub.py) is this plus the Store protocol and the writes. Reads of
immutable things (a commit's file list, a commit's registry.json) come from the commit-keyed
cache (manifest_cache); reads of refs are fresh, except inside a reconcile session
(registry/store/hub_session.py), where the org listing says what is unchanged.

Settings: REGISTRY_HUB_RETRIES (5), REGISTRY_HUB_BACKOFF (1.0 s base), REGISTRY_HUB_MAX_WAIT (30 s
cap of a backoff and of a Retry-After that spends a retry), REGISTRY_HUB_RATE_WAIT (600 s: the
Retry-After waits one call may take without spending a retry; the Hub's rate-limit window is
minutes), REGISTRY_HUB_TIMEOUT (30 s, metadata and download requests), REGISTRY_HUB_THREADS (8:
the parallel reads of a prefetch).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

from registry.artifact import REGISTRY_JSON, Provenance
from registry.errors import StoreError
from registry.store import manifest_cache
from registry.store.base import Pause, check_name, retry_call
from registry.store.hub_errors import env_number, hub_errors, is_transient, retry_after
from registry.store.hub_session import Refs, Session, State, read_listing

T = TypeVar("T")
LISTING_FIELDS = ["sha", "lastModified"]


class HubReads:
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
        self.rate_budget = env_number("REGISTRY_HUB_RATE_WAIT", 600.0)
        self.timeout = env_number("REGISTRY_HUB_TIMEOUT", 30.0)
        self.threads = max(1, int(env_number("REGISTRY_HUB_THREADS", 8)))
        self.trust_cache = True  # False (sync --full): re-read every manifest from the Hub
        self._pause = Pause()
        self._session: Session | None = None

    def repo_id(self, name: str) -> str:
        return f"{self.org}/{check_name(name)}"

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
            rate_budget=self.rate_budget,
            pause=self._pause,
        )

    # ---- a reconcile session ----

    @contextmanager
    def session(self) -> Iterator[None]:
        """One reconcile run: one paged listing of the org, then reads of unchanged repos from
        it and from the caches (registry/store/hub_session.py says what is trusted)."""
        try:
            listing = self._listing()
        except StoreError:  # no listing: every read as without a session (and fails as such)
            yield
            return
        self._session = Session(self.url, listing, trust=self._trusting())
        try:
            yield
        finally:
            self._session = None

    @hub_errors("list the repos of the org")
    def _listing(self) -> dict[str, State]:
        return self._call(
            f"{self.url}: list repos",
            lambda: read_listing(
                self._api.list_models(author=self.org, expand=LISTING_FIELDS), self.org
            ),
        )

    def _trusting(self) -> bool:
        return self.trust_cache and manifest_cache.trusting()

    def _forget(self, repo: str) -> None:
        if self._session is not None:
            self._session.forget(repo)

    def _listed_names(self) -> list[str] | None:
        """Repo names from this session's listing; None outside a session."""
        if self._session is None:
            return None
        return [r.split("/", 1)[1] for r in self._session.names]

    # ---- refs ----

    def _refs(self, repo: str) -> Refs | None:
        """(branches, tags) as name -> commit, read now; None when the repo does not exist.
        Writers and complete listings use this, never a remembered copy."""
        try:
            refs = self._call(f"{repo}: list refs", lambda: self._api.list_repo_refs(repo))
        except RepositoryNotFoundError:
            found = None
        else:
            branches = {b.name: b.target_commit for b in refs.branches}
            found = branches, {t.name: t.target_commit for t in refs.tags}
        if self._session is not None:
            self._session.remember(repo, found)
        return found

    def _tag_refs(self, repo: str, tag: str) -> Refs | None:
        """Refs for looking up `tag`: within a session, the remembered ones when they hold it
        (a tag never moves), else read now."""
        if self._session is not None:
            known, refs = self._session.known_refs(repo)
            if known and (refs is None or tag in refs[1]):
                return refs
        return self._refs(repo)

    def _main(self, repo: str) -> str | None:
        """The commit of main (the current pointer); None when the repo or main is missing."""
        if self._session is not None:
            sha = self._session.main(repo)
            if sha is not None:
                return sha
            known, refs = self._session.known_refs(repo)
            if known:
                return refs[0].get("main") if refs else None
        refs = self._refs(repo)
        return refs[0].get("main") if refs else None

    # ---- trees and files ----

    def _tree(self, repo: str, rev: str) -> dict[str, Any]:
        """path -> RepoSibling (blob id, LFS sha256) of the files at `rev`, read now."""
        info = self._call(
            f"{repo}: read files at {rev[:12]}",
            lambda: self._api.model_info(
                repo, revision=rev, files_metadata=True, timeout=self.timeout
            ),
        )
        return {s.rfilename: s for s in info.siblings or []}

    def _paths(self, repo: str, commit: str) -> dict[str, str | None]:
        """path -> git blob id of the files at `commit` (immutable: cached by commit). Writers
        use _tree instead, which also reads each file's sha256 fresh."""
        key = f"{repo}@{commit}"
        known = self._session.recall("paths", key) if self._session is not None else None
        if known is not None:
            return known
        paths = manifest_cache.get_paths(self.url, repo, commit, trust=self._trusting())
        if paths is None:
            paths = {p: s.blob_id for p, s in self._tree(repo, commit).items()}
            manifest_cache.put_paths(self.url, repo, commit, paths)
        if self._session is not None:
            self._session.keep("paths", key, paths)
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

    def _manifest(self, repo: str, rev: str, blob: str | None = None) -> Provenance:
        """registry.json at `rev`, read leniently (empty when absent or malformed). At a commit
        id it is immutable: read once, then from the commit-keyed cache (manifest_cache). In a
        session, also by its git blob id when the caller knows it: main holds the current
        version's registry.json, the blob the version's read already fetched (a self-checking
        key). Outside one, a pull keeps its request sequence (tests/test_reliability.py)."""
        key, trust = f"{repo}@{rev}", self._trusting()
        data = self._session.recall("manifest", key) if self._session is not None else None
        if data is None:
            data = manifest_cache.get(self.url, repo, rev, trust=trust)
        if data is None and blob is not None and self._session is not None:
            data = manifest_cache.get_blob(self.url, blob)  # fleet reads only: see the docstring
        if data is None:
            try:
                data = self._read(repo, rev, [REGISTRY_JSON])[REGISTRY_JSON]
            except RemoteEntryNotFoundError:
                data = b""
            manifest_cache.put(self.url, repo, rev, data or None)
        if self._session is not None:
            self._session.keep("manifest", key, data)
        return Provenance.loads(data or None)
