"""Authoring commands: `validate`, `schema`, `new` and `init` (a registry and its specs).

Thin like every command module: parse, call the library, print. Exit 2 on invalid input comes
from the library's InvalidInput (mapped in registry.cli.main), or from `validate` itself when a
spec is invalid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from registry.cli.options import spec_path


@click.command()
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
    from registry.spec.validate import format_stats
    from registry.spec.validate import validate as run_validate

    targets = [spec_path(str(p)) for p in paths] or None
    if show_example is not None:
        from registry.spec.preview import preview_examples

        for heading, rendering in preview_examples(
            targets, show_example, color=sys.stdout.isatty()
        ):
            click.echo(heading)
            click.echo(rendering)
        return
    results = run_validate(targets, check_tokens=not no_tokens)
    if not results:
        click.echo("no adapter specs under adapters/*/adapter.yaml (an empty registry)", err=True)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2))
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


@click.command()
@click.option("--out", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
def schema(out: Path | None) -> None:
    """Print the JSON Schema of adapter.yaml (for editor autocompletion).

    \b
    Put this first line in a spec so VS Code (yaml-language-server) validates it:
      # yaml-language-server: $schema=../../schema/adapter.schema.json
    Example:
      registry schema --out schema/adapter.schema.json
    """
    from registry.spec.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


@click.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@click.option(
    "--tool-repo",
    help="OWNER/NAME of lora-registry on GitHub, whose reusable workflows the new repo calls "
    "(default: this checkout's GitHub origin).",
)
@click.option(
    "--tool-ref",
    help="Commit of the tool to pin (default: this checkout's HEAD, else the version tag).",
)
@click.option(
    "--dvc-remote",
    type=click.Path(path_type=Path),
    help="Local DVC remote folder to start with (default: DIR/../<name>-dvc-remote).",
)
def init_cmd(directory, tool_repo, tool_ref, dvc_remote):
    """Make a new registry repository for a team in DIR (absent or empty; default: here).

    \b
    git (branch main) and DVC with a local remote, adapters/, datasets.dvc, the spec's
    JSON Schema, a README (user stories, set-up, upgrading, trust boundary), and
    workflows that call this tool's reusable workflows pinned by one commit. One commit.
    Examples:
      registry init ../team-adapters --tool-repo my-org/lora-registry
      registry init --tool-repo my-org/lora-registry --tool-ref 0123...cdef   # 40 hex
    """
    from registry.gitops.init import init_repo

    result = init_repo(directory, tool_repo=tool_repo, tool_ref=tool_ref, dvc_remote=dvc_remote)
    for warning in result.warnings:
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
    click.echo(result.describe())


@click.command("new")
@click.argument("name")
@click.option("--data", "data_file", required=True, type=click.Path(path_type=Path))
@click.option(
    "--eval",
    "eval_file",
    type=click.Path(path_type=Path),
    help="Eval set (default: split off from --data, deterministically).",
)
@click.option(
    "--base-model", "base_model", default="builtin:smollm2-135m-instruct", show_default=True
)
@click.option(
    "--method", type=click.Choice(["lora", "qlora", "dora"]), default="lora", show_default=True
)
@click.option("--no-tokens", is_flag=True, help="Skip token-length checks (no tokenizer load).")
def new_cmd(name, data_file, eval_file, base_model, method, no_tokens):
    """Scaffold adapters/NAME from a JSONL dataset, validated, with the data added to DVC.

    \b
    The format (chat, alpaca, completion) is detected; the spec starts small (LoRA r=8)
    with a starter gate vs the base model and the prompt baseline, a comment per key.
    Nothing is committed. Exit 2 (file, line, field) on bad data or a taken name.
    Examples:
      registry new ticket-json --data ~/tickets.jsonl
      registry new sql --data train.jsonl --eval eval.jsonl --method qlora
    """
    from registry.spec.scaffold import new_spec

    made = new_spec(
        Path("."),
        name,
        data_file,
        eval_file=eval_file,
        base_model=base_model,
        method=method,
        check_tokens=not no_tokens,
    )
    for problem in made.warnings:
        click.echo(click.style(f"    {problem}", fg="yellow"), err=True)
    click.echo(made.describe())
    click.echo(
        f"Next: edit {made.spec_path} (system prompt, gate), then `registry validate {name}`, "
        f'`dvc push` and `git commit -m "Add {name} 1.0.0"` on a branch, and open a PR.'
    )


COMMANDS = [validate, schema, init_cmd, new_cmd]
