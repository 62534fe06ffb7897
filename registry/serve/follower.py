"""What the server holds, and keeping it in step with the registry.

At start, `initial_set` decides the versions to load: with `--lock FILE` exactly the locked
versions (pulled against the lock's commits and hashes; nothing is followed afterwards);
otherwise each `--adapters` reference (a bare NAME follows the store's current version, a
NAME@VERSION or @RANGE is pinned to the version it resolves to now), or every adapter of the
store that has a current version.

While serving, `Follower` polls the store's current pointers every `poll_interval` seconds.
When NAME's pointer names another version, that version is pulled and sha256-verified exactly
as `registry pull` does, attached to the base on the generation thread (between batches), and
only then is NAME switched to it: one assignment in the routing table. Requests in flight keep
the version they resolved; the old version is unloaded once the last of them ends, unless it
is pinned. A revert + `registry sync` on main is therefore served within one poll interval plus
one (small) adapter load, with no restart and no failed request.

Failure policy: a store that cannot be read (outage, 5xx, a vanished folder) changes nothing:
what is loaded keeps serving and the health endpoint says `degraded` with the error. A version
that fails to pull or verify is not switched to; the adapter keeps its version and reports the
error. A retired adapter (its spec deleted on main) stops answering by bare NAME; its pinned
versions stay.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.artifact import read_provenance
from registry.errors import InvalidInput, StoreError
from registry.serve.routing import Routing, Slot
from registry.store import Store
from registry.store.pull import PulledAdapter, parse_ref, pull, read_lock, resolve

if TYPE_CHECKING:
    from registry.serve.engine import Engine

log = logging.getLogger("registry.serve")
_KEYS = itertools.count()
LOAD_TIMEOUT_S = 600.0  # attaching one adapter on the generation thread (after pending batches)


def slot_key(name: str) -> str:
    """A fresh adapter name inside the model (PEFT names: no dots); two versions never share."""
    return f"{name}--{next(_KEYS)}"


def base_sha(pulled: PulledAdapter) -> str:
    return read_provenance(pulled.path).base_model["sha256"]


class OtherBase(InvalidInput):
    """An adapter version trained on another base than the one this server holds."""


@dataclass
class Wanted:
    """One version to load at start."""

    name: str
    version: str
    pulled: PulledAdapter
    current: bool = False  # NAME routes here
    pinned: bool = False  # NAME@VERSION stays loaded


def initial_set(
    store: Store, *, adapters: list[str], lock: Path | None
) -> tuple[list[Wanted], list[str], list[str]]:
    """(versions to load, names to follow, warnings). Every version pulled and verified."""
    if lock is not None:
        if adapters:
            raise InvalidInput("--lock serves exactly the lockfile's versions: drop --adapters")
        locked = read_lock(lock)
        if not locked:
            raise InvalidInput(f"{lock}: the lockfile pins no adapters")
        wanted = [
            Wanted(name, p.version, p, current=True, pinned=True)
            for name in sorted(locked)
            for p in [pull(name, store, lock=lock)]
        ]
        return _one_base(wanted, explicit=True)[0], [], []
    explicit = bool(adapters)
    refs = adapters or [n for n in store.list_adapters() if store.current(n) is not None]
    if not refs:
        raise InvalidInput(f"{store.url}: no adapter has a current version; nothing to serve")
    by_ref: dict[tuple[str, str], Wanted] = {}
    followed: list[str] = []
    for ref in refs:
        name, selector = parse_ref(ref)
        info = resolve(ref, store)
        item = by_ref.get((name, info.version))
        if item is None:
            item = by_ref[(name, info.version)] = Wanted(
                name, info.version, pull(f"{name}@{info.version}", store)
            )
        if selector is None:
            item.current = True
            followed.append(name)
        else:
            item.pinned = True
    wanted, warnings = _one_base(list(by_ref.values()), explicit=explicit)
    kept = {w.name for w in wanted}
    return wanted, [n for n in dict.fromkeys(followed) if n in kept], warnings


def _one_base(wanted: list[Wanted], *, explicit: bool) -> tuple[list[Wanted], list[str]]:
    """One server, one base: the first adapter's. Others are an error when named explicitly,
    else skipped with a warning (serve them from another `registry serve`)."""
    first = base_sha(wanted[0].pulled)
    other = [w for w in wanted if base_sha(w.pulled) != first]
    if not other:
        return wanted, []
    names = ", ".join(f"{w.name}@{w.version}" for w in other)
    if explicit:
        raise InvalidInput(
            f"{names}: trained on another base model than {wanted[0].name}; one server serves "
            "one base (run another `registry serve` for them)"
        )
    return [w for w in wanted if w not in other], [
        f"skipped {names}: another base model than {wanted[0].name}'s (serve them separately)"
    ]


@dataclass
class Health:
    mode: str  # "follow" | "lock"
    store_url: str
    poll_interval: float
    last_poll: float | None = None
    last_success: float | None = None
    failures: int = 0  # consecutive polls that could not read the store
    last_error: str | None = None
    adapter_errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # another base: not served here
    switches: int = 0

    def view(self) -> dict[str, Any]:
        degraded = self.failures > 0 or bool(self.adapter_errors)
        return {
            "status": "degraded" if degraded else "ok",
            "mode": self.mode,
            "store": {
                "url": self.store_url,
                "reachable": self.failures == 0,
                "following": self.mode == "follow",
                "poll_interval_s": self.poll_interval,
                "last_poll": self.last_poll,
                "last_success": self.last_success,
                "consecutive_failures": self.failures,
                "last_error": self.last_error,
            },
            "adapter_errors": dict(self.adapter_errors),
            "skipped": dict(self.skipped),
            "switches": self.switches,
        }


class Follower:
    def __init__(
        self,
        store: Store,
        routing: Routing,
        engine: Engine,
        *,
        base: str,
        followed: list[str] | None,
        health: Health,
    ) -> None:
        """`followed` None: every adapter of the store (new ones are picked up too)."""
        self.store, self.routing, self.engine, self.base = store, routing, engine, base
        self.followed, self.health = followed, health
        self.skipped: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="registry-serve-follow", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.health.poll_interval):
            self.poll_once()

    def free(self, slots: list[Slot]) -> None:
        """Unload versions nothing routes to or uses any more (on the generation thread)."""
        for slot in slots:
            self.engine.detach(slot.key)

    def poll_once(self) -> None:
        """Read every followed pointer; switch those that moved. Never raises."""
        self.health.last_poll = time.time()
        try:
            names = self.followed if self.followed is not None else self.store.list_adapters()
            moves = []
            for name in names:
                version = self.store.current(name)
                if version is None:
                    if self.store.is_retired(name) and self.routing.current_version(name):
                        moves.append((name, None))
                elif version != self.routing.current_version(name):
                    if (name, version) not in self.skipped:
                        moves.append((name, version))
        except Exception as exc:  # an outage: keep serving what is loaded, say so
            self._store_failed(exc)
            return
        for name, version in moves:
            try:
                self._move(name, version)
            except (StoreError, OSError) as exc:
                self._store_failed(exc)
                return
            except OtherBase as exc:  # not ours to serve: said once, not retried
                self.skipped[(name, version)] = str(exc)
                self.health.skipped[name] = str(exc)
            except Exception as exc:  # this version cannot be served; the others go on
                self.health.adapter_errors[name] = f"{version}: {exc}"
                log.warning("not switching %s to %s: %s", name, version, exc)
        if self.health.failures:
            log.warning("store %s readable again", self.store.url)
        self.health.failures, self.health.last_error = 0, None
        self.health.last_success = time.time()

    def _store_failed(self, exc: BaseException) -> None:
        self.health.failures += 1
        self.health.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if self.health.failures == 1:  # once per outage, not once per poll
            log.warning("store %s unreadable (%s); serving what is loaded", self.store.url, exc)

    def _move(self, name: str, version: str | None) -> None:
        if version is None:
            self.free(self.routing.retire(name))
            log.warning("%s is retired in the store: no longer served by bare name", name)
            return
        ref = f"{name}@{version}"
        start = time.monotonic()
        if self.routing.holds(ref):  # pinned, or still held: a switch without a load
            self.free(self.routing.set_current(name, version))
        else:
            log.info("%s: the store's current is %s; loading it", name, version)
            self.free(self.routing.add(self.load(name, version), current=True))
        self.health.adapter_errors.pop(name, None)
        self.health.switches += 1
        log.info("%s now serves %s (%.2f s after the pointer was read)", name, version,
                 time.monotonic() - start)  # fmt: skip

    def load(self, name: str, version: str) -> Slot:
        """Pull (verified), check the base, attach between batches; the slot is not routed yet."""
        pulled = pull(f"{name}@{version}", self.store)
        if base_sha(pulled) != self.base:
            raise OtherBase(f"{name} {version} was trained on another base model; not served")
        key = slot_key(name)
        self.engine.attach(pulled, key).result(timeout=LOAD_TIMEOUT_S)
        return Slot(name, version, pulled.commit, key, pulled)
