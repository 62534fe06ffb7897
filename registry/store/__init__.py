"""Stores of published adapter versions: `hf://ORG` (Hugging Face Hub) or `file:///path`.

Which store a command uses: the URL it is given, else $REGISTRY_STORE (`configured_store`);
`open_store` insists there is one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from registry.errors import InvalidInput
from registry.store.base import ALLOWED_FILES, MANIFEST, PublishResult, Store, VersionInfo

__all__ = [
    "ALLOWED_FILES",
    "MANIFEST",
    "STORE_ENV",
    "PublishResult",
    "Store",
    "VersionInfo",
    "configured_store",
    "open_store",
    "published_versions",
]

STORE_ENV = "REGISTRY_STORE"


def configured_store(url: str | None = None) -> Store | None:
    """The store `url` names, else the one $REGISTRY_STORE names, else None (none configured:
    a pull-request job may have no store; then there is nothing published to compare with)."""
    url = url or os.environ.get(STORE_ENV)
    return open_store(url) if url else None


def published_versions(store: Store) -> Callable[[str], set[str]]:
    """name -> the versions `store` holds of it (what `registry.gitops.plan.plan` asks)."""
    return lambda name: {v.version for v in store.versions(name)}


def open_store(url: str | None = None) -> Store:
    """A store from its URL, or from $REGISTRY_STORE."""
    url = url or os.environ.get(STORE_ENV)
    if not url:
        raise InvalidInput("no store: pass --store hf://ORG or file:///path, or set REGISTRY_STORE")
    if url.startswith("hf://"):
        from registry.store.hub import HubStore

        org = url.removeprefix("hf://").strip("/")
        if not org or "/" in org:
            raise InvalidInput(f"bad store URL {url!r}: expected hf://ORG")
        return HubStore(org)
    if url.startswith("file://"):
        from registry.store.local import LocalStore

        path = url.removeprefix("file://")
        if not path.startswith("/"):
            raise InvalidInput(f"bad store URL {url!r}: expected file:///absolute/path")
        return LocalStore(path)
    raise InvalidInput(f"bad store URL {url!r}: expected hf://ORG or file:///path")
