"""The registry's cache: one root and every folder under it, named in one table.

The root is $REGISTRY_CACHE, else ~/.cache/registry. Everything in it can be deleted at any
time: it is rebuilt (converted, trained, pulled, computed) on the next use. Entries are keyed by
content (fingerprints, weights hashes, commits), so a stale entry is never a wrong one; each is
written atomically (registry.core.fs), so processes may share one cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CACHE_ENV = "REGISTRY_CACHE"

# folder -> what it holds; cache_dir() refuses a name that is not here
FOLDERS: dict[str, str] = {
    "models": "base models converted to safetensors (the builtins), one folder per source",
    "hashes": "sha256 of large files (GGUF source, base weights), keyed by path, inode, size, m/ctime",
    "artifacts": "trained adapters by fingerprint (a retrain of equal inputs is a cache hit)",
    "work": "checkpoints of trainings in progress, by fingerprint (resume)",
    "prefix": "frozen-prefix activations by base weights, layer and examples",
    "val-loss": "base-model validation losses by weights, numerics and rows",
    "generations": "greedy generations by weights, settings and prompt",
    "reports": "evaluation reports by fingerprint, eval config and previous version",
    "adapters": "pulled adapter versions by store, name and commit (re-verified on every pull)",
    "manifests": "registry.json of published versions by store, repo and commit (immutable)",
    "refs": "tags and main of each Hub store repo as last read, used while the org listing "
    "shows the repo unchanged (sync)",
    "plan-index": "spec texts of an adapters/ tree by its git tree id (plan: data -> specs)",
    "data-sha256": "sha256 of data files by DVC md5 or git blob id (checks against the store)",
}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "registry")


def cache_dir(folder: str, *parts: str) -> Path:
    """cache_root()/folder/parts...; `folder` must be one of FOLDERS."""
    if folder not in FOLDERS:
        raise KeyError(f"unknown cache folder {folder!r}; add it to registry.core.cache.FOLDERS")
    return cache_root().joinpath(folder, *parts)


def read_entry(path: Path, parse: Callable[[Any], T]) -> T | None:
    """`parse` of the JSON entry at `path`, or None: absent, or corrupted. `parse` checks the
    entry against its key (raising ValueError, or a KeyError/TypeError/AttributeError on a wrong
    shape); a corrupted entry is deleted, so the next use reads the source again."""
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # UnicodeError included
        path.unlink(missing_ok=True)
        return None
