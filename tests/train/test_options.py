"""TrainOptions is the one declaration of training's options: the CLI, train(), the launcher
and the per-rank parser all read it, and what the launcher writes the ranks parse back."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from registry.cli import cli
from registry.spec.schema import parse_spec
from registry.train.launch import worker_argv
from registry.train.options import TrainOptions, dest, flag_specs

SPEC = """\
name: toy
version: 1.0.0
base_model: builtin:tiny-llama
data: {format: chat, train: datasets/toy/train.jsonl}
"""


def _rank_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for flag in ("--spec-json", "--root", "--spec-path"):
        parser.add_argument(flag)
    TrainOptions.add_arguments(parser)
    return parser


@pytest.mark.parametrize(
    "options",
    [
        TrainOptions(),
        TrainOptions(max_steps=5, seed=3, base_model="builtin:tiny-llama", resume=True),
        TrainOptions(progress=False, nproc=4),
    ],
)
def test_what_the_launcher_passes_each_rank_parses_back(options: TrainOptions, tmp_path: Path):
    spec = parse_spec(SPEC)
    spec._root = tmp_path
    args = _rank_parser().parse_args(worker_argv(tmp_path / "spec.json", spec, options))
    assert args.root == str(tmp_path)
    assert TrainOptions.from_values(vars(args)) == options.for_rank()


def test_the_cli_declares_exactly_the_options_fields():
    params = {p.name: p for p in cli.commands["train"].params}
    for spec in flag_specs():
        param = params[dest(spec["flag"])]
        assert param.opts == [spec["flag"]] and param.help == spec["help"]
    # --dry-run and --gpu-memory are the CLI's own: a plan, not a run a rank repeats
    assert {dest(s["flag"]) for s in flag_specs()} == set(params) - {
        "name",
        "out",
        "dry_run",
        "gpu_memory",
    }
    assert len(flag_specs()) == len(fields(TrainOptions))


def test_cli_values_become_options():
    values = {"max_steps": None, "seed": 7, "base_model": None, "resume": False, "nproc": 1,
              "quiet": True}  # fmt: skip
    assert TrainOptions.from_values(values) == TrainOptions(seed=7, progress=False)


def test_train_takes_options_or_their_fields_not_both():
    from registry.train import train

    with pytest.raises(TypeError, match="not both"):
        train(parse_spec(SPEC), None, TrainOptions(), seed=1)
