"""The adapter spec: its pydantic schema (the one source of truth), the generated docs, validation
of a spec and its data, the datasets' parsing, the base model it names, and its fingerprint.

`from registry.spec import load_spec` keeps working; the names live in `registry.spec.schema`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {"Spec", "load_spec", "parse_spec", "json_schema", "find_specs", "SPEC_FILENAME"}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module("registry.spec.schema"), name)
    raise AttributeError(f"module 'registry.spec' has no attribute {name!r}")
