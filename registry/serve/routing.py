"""What a request's `model` names, and which loaded adapter version answers it.

    NAME            the version the store's current pointer holds now (as last seen)
    NAME@VERSION    that exact version, when this server holds it
    <base id>       the base model alone (its Hub id or its registry ref)

Invariants:
- A request resolves once, at admission, and holds a lease on the slot (one loaded adapter
  version) until it ends; switching NAME to another version changes only what later requests
  resolve to. In-flight requests finish on the version they started with.
- A slot is released (and may be unloaded) only when no request holds it and nothing routes
  to it: it is neither NAME's current version nor pinned.
- One lock guards the table; every switch is one assignment under it (atomic for readers).
No model code here: the follower (registry/serve/follower.py) decides what to load and calls
the engine; this table only answers and counts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from registry.store.pull import PulledAdapter


class UnknownModel(LookupError):
    """The `model` of a request is not served here (the app answers 404)."""


@dataclass
class Slot:
    """One adapter version loaded on the shared base, under `key` inside the model."""

    name: str
    version: str
    commit: str
    key: str
    pulled: PulledAdapter
    leases: int = 0

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Target:
    """What one request resolved to: a slot, or the base model (slot None)."""

    model: str  # the name reported back: NAME@VERSION, or the base's id
    slot: Slot | None = None
    released: bool = False

    @property
    def key(self) -> str | None:
        return self.slot.key if self.slot else None


@dataclass
class AdapterState:
    current: str | None = None  # slot ref
    since: float = field(default_factory=time.time)
    retired: bool = False


class Routing:
    def __init__(self, base_ids: list[str]) -> None:
        self.base_ids = list(dict.fromkeys(base_ids))  # first: the name /v1/models shows
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._pinned: set[str] = set()
        self._adapters: dict[str, AdapterState] = {}

    # ---- requests ----

    def resolve(self, model: str) -> Target:
        """Lease what `model` names; UnknownModel with a helpful message otherwise."""
        model = model.strip()
        if model in self.base_ids:
            return Target(model=self.base_ids[0])
        with self._lock:
            if "@" in model:
                slot = self._slots.get(model)
                if slot is None:
                    name = model.split("@", 1)[0]
                    held = sorted(r for r in self._slots if r.startswith(name + "@"))
                    if not held and name not in self._adapters:
                        raise UnknownModel(self._unknown(model))
                    raise UnknownModel(
                        f"The model `{model}` is not loaded here (held: {', '.join(held) or 'none'}); "
                        f"start the server with --adapters {model} to serve that version"
                    )
            else:
                state = self._adapters.get(model)
                if state is None:
                    raise UnknownModel(self._unknown(model))
                if state.current is None:
                    why = "is retired in the store" if state.retired else "has no current version"
                    raise UnknownModel(f"The model `{model}` {why}; pinned versions stay served")
                slot = self._slots[state.current]
            slot.leases += 1
            return Target(model=slot.ref, slot=slot)

    def release(self, target: Target) -> list[Slot]:
        """End a request's lease (idempotent); returns slots that may now be unloaded."""
        if target.slot is None or target.released:
            return []
        with self._lock:
            target.released = True
            target.slot.leases -= 1
            return self._collect()

    def _unknown(self, model: str) -> str:
        served = sorted(self._adapters) + self.base_ids[:1]
        return f"The model `{model}` does not exist here; served: {', '.join(served)}"

    # ---- the follower's side ----

    def add(self, slot: Slot, *, pinned: bool = False, current: bool = False) -> list[Slot]:
        """Hold a loaded version; `current` routes its NAME to it in the same step (a slot
        that is neither routed nor pinned would be collected at the next release)."""
        with self._lock:
            if slot.ref in self._slots:
                raise ValueError(f"{slot.ref} is already held")
            self._slots[slot.ref] = slot
            state = self._adapters.setdefault(slot.name, AdapterState())
            if pinned:
                self._pinned.add(slot.ref)
            if current:
                state.current, state.since, state.retired = slot.ref, time.time(), False
            return self._collect()

    def holds(self, ref: str) -> bool:
        with self._lock:
            return ref in self._slots

    def set_current(self, name: str, version: str) -> list[Slot]:
        """Route NAME to NAME@VERSION (held) in one assignment; returns slots now unused."""
        ref = f"{name}@{version}"
        with self._lock:
            if ref not in self._slots:
                raise ValueError(f"{ref} is not held; load it first")
            state = self._adapters.setdefault(name, AdapterState())
            state.current, state.since, state.retired = ref, time.time(), False
            return self._collect()

    def retire(self, name: str) -> list[Slot]:
        with self._lock:
            state = self._adapters.setdefault(name, AdapterState())
            state.current, state.since, state.retired = None, time.time(), True
            return self._collect()

    def current_version(self, name: str) -> str | None:
        with self._lock:
            state = self._adapters.get(name)
            return self._slots[state.current].version if state and state.current else None

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._adapters)

    def _collect(self) -> list[Slot]:
        routed = {s.current for s in self._adapters.values()} | self._pinned
        free = [s for r, s in self._slots.items() if r not in routed and s.leases == 0]
        for slot in free:
            del self._slots[slot.ref]
        return free

    # ---- views ----

    def models(self) -> list[dict[str, Any]]:
        """The /v1/models entries: NAME (with the version it resolves to), NAME@VERSION."""
        with self._lock:
            rows: list[dict[str, Any]] = []
            for name, state in sorted(self._adapters.items()):
                if state.current is not None:
                    slot = self._slots[state.current]
                    rows.append(
                        {
                            "id": name,
                            "version": slot.version,
                            "commit": slot.commit,
                            "kind": "adapter",
                        }
                    )
            for ref, slot in sorted(self._slots.items()):
                rows.append(
                    {
                        "id": ref,
                        "version": slot.version,
                        "commit": slot.commit,
                        "kind": "pinned" if ref in self._pinned else "version",
                    }
                )
            return rows

    def describe(self) -> dict[str, Any]:
        """Per adapter: current version, versions held, when it last switched."""
        with self._lock:
            out: dict[str, Any] = {}
            for name, state in sorted(self._adapters.items()):
                out[name] = {
                    "current": self._slots[state.current].version if state.current else None,
                    "held": sorted(s.version for s in self._slots.values() if s.name == name),
                    "since": state.since,
                    "retired": state.retired,
                }
            return out
