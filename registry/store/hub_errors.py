"""How the Hugging Face Hub backend reads the client's failures: transient or an answer.

Transient (retried with backoff by registry.store.base.retry_call): 5xx, 408, 429, dropped
connections and timeouts, found anywhere in the exception chain. A 429's Retry-After (seconds)
is read by `retry_after`: a positive one is waited out without spending a retry, within
REGISTRY_HUB_RATE_WAIT seconds per call (registry/store/hub_reads.py).
Not-found errors are answers, never retried. Whatever escapes the retries becomes one
StoreError line naming the store and the operation, never the token.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from registry.errors import InvalidInput, RegistryError, StoreError

try:  # huggingface_hub >= 2 ships its own httpx fork
    from httpx2 import TransportError
except ImportError:  # pragma: no cover
    from httpx import TransportError

# Hub housekeeping files: never part of a version, never deleted
HUB_HOUSEKEEPING = frozenset({".gitattributes"})
NOT_FOUND = (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)

T = TypeVar("T")


def env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise InvalidInput(f"${name} must be a number") from None


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def status_of(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def is_transient(err: BaseException) -> bool:
    if isinstance(err, NOT_FOUND):
        return False
    for e in _chain(err):
        if isinstance(e, TransportError):
            return True
        status = status_of(e) if isinstance(e, HfHubHTTPError) else None
        if status is not None and (status >= 500 or status in (408, 429)):
            return True
    return False


def retry_after(err: BaseException) -> float | None:
    for e in _chain(err):
        if isinstance(e, HfHubHTTPError) and status_of(e) == 429:
            try:
                return float(e.response.headers.get("Retry-After", ""))
            except (ValueError, AttributeError):
                return None
    return None


def hub_errors(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn the client's remaining HTTP errors into one clean StoreError line."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
            try:
                return fn(self, *args, **kwargs)
            except RegistryError:
                raise
            except (HfHubHTTPError, TransportError, OSError) as err:
                detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                subject = f" {args[0]}" if args else ""
                raise StoreError(f"{self.url}: {what}{subject} failed: {detail}") from err

        return wrapper

    return decorate
