"""`registry serve`: build what one server process holds, then run it under uvicorn.

    build(options) -> Server     pull + verify the initial set, load the base once, attach
                                 every version (an AdapterFleet), fill the routing table
    run(options)                 build, bind host:port, serve until interrupted

Invariants: nothing listens before every initial version is loaded and verified (a health
check that answers means the server can answer); the generation thread and the follower
start in the app's lifespan and stop with it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput
from registry.serve.batching import Batcher
from registry.serve.follower import Follower, Health, base_sha, initial_set, slot_key
from registry.serve.routing import Routing, Slot

if TYPE_CHECKING:  # torch-heavy; imported when a server is built
    from registry.serve.engine import Engine

log = logging.getLogger("registry.serve")


@dataclass
class ServeOptions:
    store: str | None = None
    lock: Path | None = None
    adapters: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    poll_interval: float = 5.0
    max_batch: int = 8
    max_pending: int = 256
    max_request_bytes: int = 1_000_000
    default_max_tokens: int = 128  # AdapterFleet.generate's default
    max_tokens_limit: int = 2048
    device: str | None = None


@dataclass
class Server:
    options: ServeOptions
    routing: Routing
    engine: Engine
    follower: Follower | None
    health: Health
    warnings: list[str]
    started: float = field(default_factory=time.time)

    def start(self) -> None:
        self.engine.start()
        if self.follower is not None:
            self.follower.start()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.engine.stop()

    def free(self, slots: list[Slot]) -> None:
        for slot in slots:
            self.engine.detach(slot.key)

    def health_view(self) -> dict[str, Any]:
        view = self.health.view()
        view["adapters"] = self.routing.describe()
        view["base_model"] = self.routing.base_ids[0]
        view["batching"] = {
            **self.engine.batcher.stats.as_dict(),
            "waiting": self.engine.batcher.pending(),
        }
        view["uptime_s"] = round(time.time() - self.started, 1)
        return view


def build(options: ServeOptions) -> Server:
    from registry.consume import AdapterFleet
    from registry.serve.engine import Engine
    from registry.store import open_store

    store = open_store(options.store)
    wanted, followed, warnings = initial_set(store, adapters=options.adapters, lock=options.lock)
    keys = [slot_key(w.name) for w in wanted]
    fleet = AdapterFleet([w.pulled for w in wanted], device=options.device, keys=keys)
    base = fleet.base
    routing = Routing([base.model_id, base.ref])
    for w, key in zip(wanted, keys, strict=True):
        slot = Slot(w.name, w.version, w.pulled.commit, key, w.pulled)
        routing.add(slot, pinned=w.pinned, current=w.current)
    engine = Engine(fleet, Batcher(options.max_batch, options.max_pending))
    mode = "lock" if options.lock is not None else "follow"
    health = Health(mode, store.url, options.poll_interval)
    follower = None
    if mode == "follow" and (followed or not options.adapters):
        follower = Follower(
            store,
            routing,
            engine,
            base=base_sha(wanted[0].pulled),
            followed=followed if options.adapters else None,
            health=health,
        )
    return Server(options, routing, engine, follower, health, warnings)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free port; read it back from getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(options: ServeOptions, *, say: Callable[[str], None] = print) -> None:
    import uvicorn

    from registry.serve.app import create_app

    handler = logging.StreamHandler()  # switches and store trouble, timestamped, on stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    server = build(options)
    for warning in server.warnings:
        say(f"warning: {warning}")
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    served = ", ".join(f"{r['id']}" for r in server.routing.models())
    say(f"serving {served} on base {server.routing.base_ids[0]}")
    mode = server.health.mode
    if mode == "follow" and server.follower is not None:
        say(f"following {server.health.store_url} every {options.poll_interval:g} s")
    elif mode == "lock":
        say(f"serving exactly {options.lock}; following nothing")
    shown = f"[{host}]" if ":" in host else host
    say(f"listening on http://{shown}:{port}/v1")
    config = uvicorn.Config(
        create_app(server), log_level="warning", access_log=False, timeout_graceful_shutdown=10
    )
    uvicorn.Server(config).run(sockets=[sock])
