"""What the `registry` commands share: the `--store` option, the training flags, and how a
command's NAME argument becomes a spec.

Invariants:
- Every option a library type declares (TrainOptions' flags) is declared there, once, and only
  turned into click options here, so a flag cannot drift between `train` and the library.
- Nothing here imports torch or a store backend at import time: `registry --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

STORE_HELP = "Store URL: hf://ORG or file:///path (default: $REGISTRY_STORE)."


def store_option(more_help: str = ""):
    """`--store URL` (parameter `store_url`), declared once for every command that uses one."""
    return click.option("--store", "store_url", help=STORE_HELP + more_help)


def train_options(command):
    """registry.train.options.TrainOptions as click options (declared there, once)."""
    from registry.train.options import dest, flag_specs

    for spec in reversed(flag_specs()):
        kind, default = spec["kind"], spec["default"]
        given = {"default": default, "show_default": True} if default is not None else {}
        option = click.option(
            spec["flag"],
            dest(spec["flag"]),
            is_flag=kind is None,
            type=kind,
            help=spec["help"],
            **given,
        )
        command = option(command)
    return command


def spec_path(name: str) -> Path:
    """NAME, an adapter folder or a spec file -> the spec path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_dir():
        return candidate
    return Path("adapters") / name / "adapter.yaml"


def load_named(name: str):
    """The spec a command's NAME argument names (see spec_path)."""
    from registry.spec.schema import load_spec

    return load_spec(spec_path(name))


def store_at(url: str | None):
    """The store at `url` (hf://ORG, file:///path), else $REGISTRY_STORE."""
    from registry.store import open_store

    return open_store(url)
