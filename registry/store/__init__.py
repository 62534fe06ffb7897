"""Stores of published adapter versions: `hf://ORG` (Hugging Face Hub) or `file:///path`."""

from __future__ import annotations

import os

from registry.errors import InvalidInput
from registry.store.base import ALLOWED_FILES, MANIFEST, PublishResult, Store, VersionInfo

__all__ = ["ALLOWED_FILES", "MANIFEST", "PublishResult", "Store", "VersionInfo", "open_store"]


def open_store(url: str | None = None) -> Store:
    """A store from its URL, or from $REGISTRY_STORE."""
    url = url or os.environ.get("REGISTRY_STORE")
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
