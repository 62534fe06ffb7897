"""How to run a training, declared once: the smoke-run overrides and the run's switches.

`TrainOptions` is what `registry train` parses, what `train()` takes, what the distributed
launcher passes to every rank and what the per-rank entry point parses back; each field's flag
and help text live here, in its metadata, so adding an option is one line. What is trained
(the recipe) is the spec, never an option: an override (`--max-steps`, `--seed`,
`--base-model`) is recorded in the output's provenance and such output is not publishable.

No torch here: the CLI builds its options from this module at import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _flag(flag: str, help: str, kind: type | None = None, inverted: bool = False) -> Any:
    """Field metadata: the command-line flag, its help, and the value type (None: a switch;
    `inverted`: the switch clears the field)."""
    return {"flag": flag, "help": help, "kind": kind, "inverted": inverted}


@dataclass(frozen=True)
class TrainOptions:
    max_steps: int | None = field(
        default=None,
        metadata=_flag("--max-steps", "Override: stop after N steps (smoke runs).", int),
    )
    seed: int | None = field(
        default=None, metadata=_flag("--seed", "Override the spec's seed.", int)
    )
    base_model: str | None = field(
        default=None,
        metadata=_flag("--base-model", "Override the base model ref (smoke runs).", str),
    )
    resume: bool = field(
        default=False, metadata=_flag("--resume", "Continue from the last complete checkpoint.")
    )
    nproc: int = field(
        default=1,
        metadata=_flag(
            "--nproc", "Data-parallel processes (torchrun; DDP or FSDP: training.distributed).", int
        ),
    )
    progress: bool = field(
        default=True, metadata=_flag("--quiet", "No progress bar.", inverted=True)
    )

    def overrides(self) -> dict[str, Any]:
        """The spec overrides, for registry.train.planning.plan_training."""
        return {"max_steps": self.max_steps, "seed": self.seed, "base_model": self.base_model}

    def for_rank(self) -> TrainOptions:
        """What each of the `nproc` ranks runs: the same options, as one process each."""
        return replace(self, nproc=1)

    def to_argv(self) -> list[str]:
        """These options as flags, parsed back by `add_arguments` + `from_values`."""
        argv: list[str] = []
        for f, spec in _flags():
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if spec["kind"] is None:  # a switch, set (or, inverted, cleared) away from its default
                argv.append(spec["flag"])
            else:
                argv += [spec["flag"], str(value)]
        return argv

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        for _, spec in _flags():
            if spec["kind"] is None:
                parser.add_argument(spec["flag"], action="store_true", help=spec["help"])
            else:
                parser.add_argument(spec["flag"], type=spec["kind"], help=spec["help"])

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> TrainOptions:
        """From parsed flags keyed by flag name (`max_steps`, `quiet`, ...: argparse's dests and
        click's parameter names); a flag left unset (None) keeps the field's default."""
        kwargs: dict[str, Any] = {}
        for f, spec in _flags():
            value = values.get(dest(spec["flag"]))
            if value is None:
                continue
            kwargs[f.name] = (not value) if spec["inverted"] else value
        return cls(**kwargs)


def dest(flag: str) -> str:
    """`--max-steps` -> `max_steps`: the parameter name argparse and click give a flag."""
    return flag.lstrip("-").replace("-", "_")


def _flags() -> Iterator[tuple[Any, dict[str, Any]]]:
    for f in fields(TrainOptions):
        yield f, f.metadata


def flag_specs() -> list[dict[str, Any]]:
    """[{flag, help, kind, default}] in declaration order: what a CLI needs to declare them."""
    out = []
    for f, spec in _flags():
        default = None if spec["kind"] is None else f.default
        out.append(
            {"flag": spec["flag"], "help": spec["help"], "kind": spec["kind"], "default": default}
        )
    return out
