"""A GitOps registry and CI workflow for LoRA adapters.

Everything the `registry` CLI does is callable from Python, so CI, tests and users share one
path. Heavy modules (torch, transformers) are imported lazily on first use.
"""

from __future__ import annotations

import logging
import warnings
from importlib import import_module
from typing import Any

# peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` on every PeftModel it
# builds; the FutureWarning is about neither our code nor the user's. Silence only that one.
warnings.filterwarnings(
    "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

# bitsandbytes' CPU backend (imported by peft, so by every model load) logs on AVX512-BF16 CPUs
# that it could not fetch an optional kernel from the Hub through the `kernels` package. Its own
# C kernel is the fallback, runners cannot reach the Hub, and `kernels` would download and run
# code at run time; so the line is noise. Drop only that record; the logger stays live.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "kernels-community" not in str(record.msg)
)

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "Spec": "registry.spec.schema",
    "load_spec": "registry.spec.schema",
    "parse_spec": "registry.spec.schema",
    "json_schema": "registry.spec.schema",
    "validate": "registry.spec.validate",
    "resolve_base_model": "registry.spec.base_model",
    "fingerprint": "registry.spec.fingerprint",
    "InvalidInput": "registry.errors",
    "GateFailed": "registry.errors",
    "Conflict": "registry.errors",
    "RegistryError": "registry.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
