"""The store protocol: where published adapter versions live. Two backends honour it:
`hf://ORG` (the Hugging Face Hub, registry/store/hub.py) and `file:///path` (registry/store/local.py).

Semantics (DESIGN.md, "Store semantics"), the same for both backends:
- one repo per adapter; a version is one atomic commit holding exactly the files given
  (adapter_model.safetensors, adapter_config.json, README.md, registry.json), tagged v<version>;
  a commit without its tag is not a version; tags never move; a version never changes content;
- `publish` is idempotent: the same version with the same fingerprint is a no-op ("exists"),
  the same version with another fingerprint is a Conflict (exit 4). Concurrent publishers of the
  same content: exactly one version, no error for the loser;
- the current version is a pointer (the Hub repo's `main` branch holds a commit whose files equal
  the current version's); `retire` marks the adapter retired, its versions stay pullable.
Transient failures (5xx, 429, resets, timeouts) are retried with backoff inside the backends;
when retries are spent they raise registry.errors.StoreError. A 429 whose Retry-After asks for a
pause is flow control, not a failure: the wait is honoured and costs no retry, up to a budget of
seconds per call (`retry_call`), and every thread of the store holds off together (`Pause`).

A reconcile run (`registry sync`) opens a `fleet_session`: within it a backend may answer reads
from what one listing of the whole store says is unchanged, and `prefetch` warms the reads of
many adapters at once (bounded threads). Neither changes an answer: see each backend.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from registry.artifact import REGISTRY_JSON, VERSION_FILES, Provenance
from registry.core.semver import parse_version
from registry.errors import InvalidInput, StoreError
from registry.spec.schema import NAME_PATTERN

# The names this module's users know (registry.store exports them): the version's files and
# its manifest, registry.json. Defined once, in registry.artifact.
ALLOWED_FILES = VERSION_FILES
MANIFEST = REGISTRY_JSON


@dataclass
class VersionInfo:
    name: str
    version: str
    commit: str
    fingerprint: str | None = None
    created_at: str | None = None  # ISO 8601, UTC
    gate_passed: bool | None = None
    current: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PublishResult:
    status: str  # "published" | "exists"
    version: str
    commit: str


class Store(Protocol):
    url: str

    def list_adapters(self) -> list[str]:
        """Every adapter that has a repo in the store (retired ones included)."""

    def versions(self, name: str) -> list[VersionInfo]:
        """Published versions, sorted by semver ascending; [] when the adapter is unknown."""

    def current(self, name: str) -> str | None:
        """The version the current pointer holds, None when unset or retired."""

    def is_retired(self, name: str) -> bool: ...

    def publish(
        self, name: str, version: str, files: dict[str, bytes], *, private: bool = True
    ) -> PublishResult:
        """Atomically create version `version` holding exactly `files` (name -> bytes).
        files[MANIFEST] is JSON with at least "fingerprint"."""

    def download(self, name: str, version: str, dest: Path) -> str:
        """Write the files of `version` into the empty folder `dest`; return its commit.
        No verification here: registry.store.pull verifies every sha256 before anything is used."""

    def manifest(self, name: str, version: str) -> Provenance | None:
        """The registry.json of a published version (one small file; None when `version` is
        not published). What sync compares with main's spec (registry.gitops.conflicts)."""

    def set_current(self, name: str, version: str) -> bool:
        """Point current at a published version; False when it already was."""

    def retire(self, name: str) -> bool:
        """Mark retired (current unset); False when it already was."""


def manifest_fingerprint(files: dict[str, bytes]) -> str | None:
    return Provenance.loads(files.get(REGISTRY_JSON)).fingerprint


# ---- helpers shared by the backends (validation, manifest reading, retries) ----

NAME_RE = re.compile(NAME_PATTERN)  # the spec's name rule; also safe as a path part


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"{name!r} is not a valid adapter name ([a-z0-9][a-z0-9-]{{1,62}})")
    return name


def check_version(version: str) -> str:
    """A semver string, which is also safe as a path part and a git ref name."""
    if not isinstance(version, str) or version != version.strip():
        raise InvalidInput(f"{version!r} is not a semantic version (e.g. 1.2.0)")
    parse_version(version)
    return version


def is_valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(NAME_RE.match(name))


def is_valid_version(version: str) -> bool:
    try:
        check_version(version)
    except InvalidInput:
        return False
    return True


def check_files(files: dict[str, bytes]) -> str:
    """Refuse anything but the allowed files; return the manifest's fingerprint."""
    unexpected = sorted(set(files) - ALLOWED_FILES)
    if unexpected:
        raise InvalidInput(f"refusing to publish unexpected files {unexpected}")
    if not all(isinstance(data, bytes) for data in files.values()):
        raise InvalidInput("file contents must be bytes")
    fingerprint = manifest_fingerprint(files)
    if not fingerprint:
        raise InvalidInput(f"{REGISTRY_JSON} is missing or has no 'fingerprint'")
    return fingerprint


def version_info(name: str, version: str, commit: str, manifest: Provenance) -> VersionInfo:
    """VersionInfo from a version's registry.json (keys written by registry.store.publish)."""
    return VersionInfo(
        name=name,
        version=version,
        commit=commit,
        fingerprint=manifest.fingerprint,
        created_at=manifest.published_at,
        gate_passed=manifest.gate_passed,
    )


def sort_versions(infos: list[VersionInfo]) -> list[VersionInfo]:
    return sorted(infos, key=lambda info: parse_version(info.version))


T = TypeVar("T")


class Pause:
    """A not-before time shared by every thread of one store: a 429's Retry-After holds back all
    of its requests, not only the one that was refused."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        delay = self._until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def retry_call(
    fn: Callable[[], T],
    *,
    what: str,
    is_transient: Callable[[BaseException], bool],
    retries: int,
    backoff: float,
    max_wait: float,
    retry_after: Callable[[BaseException], float | None] = lambda err: None,
    rate_budget: float = 0.0,
    pause: Pause | None = None,
) -> T:
    """Call `fn`, retrying transient failures with exponential backoff and jitter.

    Jitter spreads concurrent publishers apart. A refusal that names a positive Retry-After
    (a 429: "slow down", not "broken") is waited out as asked without spending a retry, while
    the hinted waits of this call stay within `rate_budget` seconds; past it, and for every
    other transient failure, a retry is spent and a hint is honoured up to `max_wait`. `pause`
    makes the other threads of the store wait too. When the retries are spent: StoreError, one
    line, naming what failed.
    """
    attempt, rate_waited = 0, 0.0
    while True:
        if pause is not None:
            pause.wait()
        try:
            return fn()
        except Exception as err:
            if not is_transient(err):
                raise
            hinted = retry_after(err)
            if hinted is not None and hinted > 0 and rate_waited + hinted <= rate_budget:
                rate_waited += hinted
                if pause is not None:
                    pause.hold(hinted)
                else:
                    time.sleep(hinted)
                continue
            if attempt == retries:
                detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise StoreError(
                    f"{what} failed after {retries + 1} attempts ({type(err).__name__}: {detail})"
                ) from err
            delay = min(max_wait, backoff * 2**attempt)
            delay = delay / 2 + random.uniform(0, delay / 2)
            if hinted is not None:
                delay = max(delay, min(hinted, max_wait))
            attempt += 1
            time.sleep(delay)


# ---- a reconcile run: one listing, warmed reads (optional for a backend) ----


def fleet_session(store: Store) -> AbstractContextManager[object]:
    """The store's `session()` (one reconcile run), or nothing for a store without one."""
    session = getattr(store, "session", None)
    return session() if session is not None else nullcontext()


def prefetch(store: Store, wanted: Iterable[tuple[str, str]]) -> None:
    """Warm the reads a reconcile makes of each (name, declared version), where the store can
    (in parallel, bounded); answers come later from the same calls, so this changes none."""
    warm = getattr(store, "prefetch", None)
    if warm is not None:
        warm(list(wanted))
