"""The `registry` command line: parse, call the library, print. No logic lives here.

Exit codes (DESIGN.md): 0 ok, 1 unexpected error, 2 invalid input, 3 gate failed, 4 conflict.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from registry.errors import InvalidInput, RegistryError

STORE_HELP = "Store URL: hf://ORG or file:///path (default: $REGISTRY_STORE)."


def _spec_path(name: str) -> Path:
    """NAME, an adapter folder or a spec file -> the spec path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_dir():
        return candidate
    return Path("adapters") / name / "adapter.yaml"


def _load(name: str):
    from registry.spec import load_spec

    return load_spec(_spec_path(name))


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
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--no-tokens", is_flag=True, help="Skip token-length checks (no tokenizer load).")
@click.option(
    "--show-example",
    "show_example",
    type=int,
    metavar="N",
    help="Print training example N (0-based) with the trained tokens marked, then exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate(paths: tuple[Path, ...], no_tokens: bool, show_example: int | None, as_json: bool):
    """Validate specs and their datasets (default: every spec under adapters/).

    \b
    Every problem names the file, line and field. Exit 0 when valid, 2 when not.
    Examples:
      registry validate
      registry validate adapters/ticket-json
      registry validate ticket-json --show-example 0   # see exactly which tokens are trained
    """
    from registry.validate import format_stats
    from registry.validate import validate as run_validate

    targets = [_spec_path(str(p)) for p in paths] or None
    if show_example is not None:
        _show_example(targets, show_example)
        return
    results = run_validate(targets, check_tokens=not no_tokens)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "path": str(r.path),
                        "ok": r.ok,
                        "problems": [p.__dict__ for p in r.problems],
                        "stats": {k: {**v.__dict__, "lengths": None} for k, v in r.stats.items()},
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        for r in results:
            mark = click.style("ok", fg="green") if r.ok else click.style("INVALID", fg="red")
            click.echo(f"{mark}  {r.path}")
            for problem in r.problems:
                color = "red" if problem.severity == "error" else "yellow"
                click.echo(click.style(f"    {problem}", fg=color))
            for split, stats in r.stats.items():
                click.echo(f"    {split}: {format_stats(stats)}")
    if not all(r.ok for r in results):
        sys.exit(2)


def _show_example(targets: list[Path] | None, index: int) -> None:
    from registry.data import load_examples, show_example
    from registry.models import load_tokenizer, resolve_base_model
    from registry.spec import load_spec
    from registry.validate import spec_paths

    for path in spec_paths(targets):
        spec = load_spec(path)
        examples = load_examples(spec.train_path, spec.data.format, spec.data.system_prompt)
        if not 0 <= index < len(examples):
            raise InvalidInput(
                f"--show-example {index}: {spec.data.train} has {len(examples)} examples",
                file=str(path),
            )
        tokenizer = load_tokenizer(resolve_base_model(spec.base_model))
        click.echo(f"== {spec.name} ({spec.data.train}) ==")
        click.echo(
            show_example(
                tokenizer, examples[index], spec.training.max_seq_len, color=sys.stdout.isatty()
            )
        )


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
def schema(out: Path | None) -> None:
    """Print the JSON Schema of adapter.yaml (for editor autocompletion).

    \b
    Put this first line in a spec so VS Code (yaml-language-server) validates it:
      # yaml-language-server: $schema=../../schema/adapter.schema.json
    """
    from registry.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


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
