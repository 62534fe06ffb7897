"""The `registry` command line: parse, call the library, print. No logic lives here.

Exit codes (DESIGN.md): 0 ok, 1 unexpected error, 2 invalid input, 3 gate failed, 4 conflict;
`main` maps the library's errors to them, and nothing a user typed ends in a traceback.

Layout, by pipeline stage (each module's commands listed in its COMMANDS):
- options.py: what the commands share (`--store`, the training flags, NAME -> spec);
- authoring.py: validate, schema, init, new;
- pipeline.py: train, eval, publish;
- gitops.py: plan, take-pr, sync;
- consume.py: pull, versions, export, serve;
- here: the group `cli`, `demo` (the whole story across the stages) and the entry point `main`
  (`registry.cli:main`, the console script; `python -m registry` calls it too).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from registry.cli import authoring, consume, gitops, pipeline
from registry.errors import RegistryError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lora-registry")
def cli() -> None:
    """A GitOps registry for LoRA adapters: validate, train, evaluate, gate, publish, pull.

    \b
    Typical loop:
      registry validate                      # specs + datasets, all errors at once
      registry train ticket-json             # LoRA / QLoRA / DoRA with PEFT
      registry eval ticket-json --adapter runs/ticket-json
      registry publish ticket-json --adapter runs/ticket-json --store file:///srv/adapters
      registry pull ticket-json@^1.2 --store file:///srv/adapters
    """


@cli.command()
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Empty folder (default: a temp dir)."
)
@click.option(
    "--eval-limit",
    type=int,
    default=32,
    show_default=True,
    help="Eval items per version (the spec's eval.limit in the demo).",
)
def demo(workdir, eval_limit):
    """The whole story end to end on the embedded SmolLM2-135M model (~15 min on 2 CPU cores).

    \b
    PR adds a spec -> plan -> validate -> train -> eval -> gate -> report -> merge ->
    sync publishes 1.0.0 -> pull by version and generate -> PR to 1.1.0 -> merge, sync ->
    git revert -> sync rolls back to 1.0.0 in seconds -> pull shows 1.0.0 -> `registry
    serve`, which answered with 1.1.0, answers with 1.0.0 again (no restart).
    Examples:
      registry demo
      registry demo --workdir /tmp/registry-demo
    """
    from registry.demo import run_demo

    run_demo(workdir, eval_limit=eval_limit)


for _command in (*authoring.COMMANDS, *pipeline.COMMANDS, *gitops.COMMANDS, *consume.COMMANDS):
    cli.add_command(_command)  # `registry --help` lists them sorted by name, as click does


def main() -> None:
    """Console entry point: map library errors to exit codes, never a traceback for input."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except RegistryError as exc:
        click.echo(click.style(str(exc), fg="red"), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for REGISTRY_DEBUG
        if os.environ.get("REGISTRY_DEBUG"):
            raise
        click.echo(
            f"unexpected error ({type(exc).__name__}): {exc}\n"
            "This is a bug in registry; rerun with REGISTRY_DEBUG=1 for the traceback.",
            err=True,
        )
        sys.exit(1)
