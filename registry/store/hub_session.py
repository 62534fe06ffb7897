"""One listing of a Hub org per reconcile run, so an unchanged adapter costs no request.

`registry sync` opens a session on the Hub store (HubStore.session). Its first request pages
through `list_models(author=ORG, expand=["sha", "lastModified"])`: every repo of the org with
`sha`, the head commit of its `main` branch (the current pointer), and `lastModified`. What
moves them, and what does not:
- set_current and retire write a commit on `main`: `sha` changes (and `lastModified` with it);
- publishing does NOT move `main`: the version commit is made on a staging branch and tagged, and
  a tag is a ref, not a commit. huggingface_hub documents `sha` as the commit of the revision
  and `last_modified` as the date of the last commit, and the project's test server reports both
  from `main`'s head; this module relies on neither moving when a tag is created.

So the session answers in three ways, each sound without a signal for tags:
- main (current, retired): the listing's `sha`, exact for the run; what a commit holds (its file
  list, its registry.json) is immutable and comes from the commit-keyed cache (manifest_cache);
- a tag: the repo's refs as last read (kept on disk, registry cache "refs") are used while the
  listing reports the same (`sha`, `lastModified`) as when they were read. A tag found there is
  trusted by contract: tags never move and never disappear (DESIGN.md, store semantics). A tag
  not found there is looked up again (one refs read): it may have been published since without
  moving main. A repo whose listing entry changed, or is absent, is read as without a session;
- everything read during the run (refs, trees, manifests) is kept in memory for the run, so a
  reconcile reads each at most once, even with `sync --full`.
What is not used: a complete list of versions (`versions NAME`, `pull`) and every write read the
refs afresh, always; a write of this process drops what the session knew of that repo. `sync
--full` (trust_cache False) uses nothing from disk: every repo's refs and manifests are read again
(a tag moved against the contract is seen there, by `pull`, which resolves afresh, and by any
run whose listing shows the repo changed). The listing is a snapshot of the run's start: a
write by another process during the run is seen by the next run. A corrupted refs entry (bad
JSON, other key, checksum) is dropped and read again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from registry.core.cache import cache_dir, read_entry
from registry.core.fs import atomic_file

# (branches, tags), each name -> commit; None: the repo does not exist
Refs = tuple[dict[str, str], dict[str, str]]
State = tuple[str | None, str | None]  # (sha of main, lastModified) as the listing reports


def read_listing(models: Any, org: str) -> dict[str, State]:
    """repo id -> State, from the ModelInfo objects of `list_models(author=org, expand=...)`."""
    out: dict[str, State] = {}
    for m in models:
        if not m.id.startswith(f"{org}/"):
            continue
        modified = m.last_modified.isoformat() if m.last_modified is not None else None
        out[m.id] = (m.sha, modified)
    return out


def _entry_path(store_url: str, repo: str):
    key = hashlib.sha256(f"{store_url}\0{repo}".encode()).hexdigest()[:32]
    return cache_dir("refs", f"{key}.json")


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_refs(store_url: str, repo: str, state: State) -> Refs | None:
    """The refs last read of `repo`, if they were read when the listing said `state`."""

    def parse(entry: dict) -> tuple[State, dict[str, str], dict[str, str]]:
        body = entry["body"]
        if entry["sum"] != _checksum(body) or body["store"] != store_url or body["repo"] != repo:
            raise ValueError("entry does not match its key or its checksum")
        branches, tags = dict(body["branches"]), dict(body["tags"])
        if not all(isinstance(v, str) for v in (*branches.values(), *tags.values())):
            raise ValueError("not a refs entry")
        return (body["sha"], body["last_modified"]), branches, tags

    read = read_entry(_entry_path(store_url, repo), parse)
    if read is None:
        return None
    seen, branches, tags = read
    if state[0] is None or seen != state:
        return None
    if branches.get("main") != state[0]:
        return None
    return branches, tags


def save_refs(store_url: str, repo: str, refs: Refs, state: State) -> None:
    """Remember `refs`, read while the listing said `state`. Best effort."""
    body = {
        "store": store_url,
        "repo": repo,
        "sha": state[0],
        "last_modified": state[1],
        "branches": refs[0],
        "tags": refs[1],
    }
    try:
        with atomic_file(_entry_path(store_url, repo)) as tmp:
            tmp.write_text(json.dumps({"sum": _checksum(body), "body": body}), encoding="utf-8")
    except OSError:
        pass  # a read-only cache costs requests, never correctness


class Session:
    """What one reconcile run knows of a Hub org; shared by the prefetch threads."""

    def __init__(self, store_url: str, listing: dict[str, State], trust: bool) -> None:
        self.store_url, self.trust = store_url, trust
        self.listing = listing
        self.names = sorted(listing)  # the org's repos when the run began (writes keep them)
        self.refs: dict[str, Refs | None] = {}  # read during this run
        self.kept: dict[tuple[str, str], Any] = {}  # (kind, key) -> what was read this run
        self._lock = threading.Lock()

    def main(self, repo: str) -> str | None:
        """main's commit per the listing; None: not listed (read the refs)."""
        state = self.listing.get(repo)
        return state[0] if state else None

    def known_refs(self, repo: str) -> tuple[bool, Refs | None]:
        """(known, refs): refs read this run, else (trusting) the ones on disk that match the
        listing; known False: read them."""
        with self._lock:
            if repo in self.refs:
                return True, self.refs[repo]
            state = self.listing.get(repo)
        if not self.trust or state is None:
            return False, None
        refs = load_refs(self.store_url, repo, state)
        return (refs is not None), refs

    def remember(self, repo: str, refs: Refs | None) -> None:
        """Refs just read from the Hub (fresh): kept for the run and, against the listing state
        seen before the read, on disk."""
        with self._lock:
            self.refs[repo] = refs
            state = self.listing.get(repo)
        if refs is not None and state is not None:
            save_refs(self.store_url, repo, refs, state)

    def recall(self, kind: str, key: str) -> Any:
        with self._lock:
            return self.kept.get((kind, key))

    def keep(self, kind: str, key: str, value: Any) -> None:
        with self._lock:
            self.kept[(kind, key)] = value

    def forget(self, repo: str) -> None:
        """This process wrote to `repo`: read it afresh from now on."""
        with self._lock:
            self.listing.pop(repo, None)
            self.refs.pop(repo, None)
