"""Using published versions: `pull`, `versions`, `export` (for a serving engine, or merged)
and `serve` (OpenAI-compatible, following the store).

Thin: parse, call the library (registry.store.pull, registry.consume, registry.serve), print.
Every version reaches disk sha256-verified by the library; nothing here reads adapter files.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from registry.cli.options import store_at, store_option


@click.command()
@click.argument("ref")
@click.option("--out", type=click.Path(path_type=Path), help="Copy the files here too.")
@store_option()
@click.option("--no-cache", is_flag=True, help="Download again even when cached.")
@click.option("--lock", type=click.Path(path_type=Path), help="Lockfile to write or honour.")
def pull(ref, out, store_url, no_cache, lock):
    """Pull a published adapter: NAME@1.2.0, NAME@^1.2, NAME@~1.2.3, NAME@latest or NAME.

    \b
    A bare NAME is the store's current version (the one main declares). The version is
    resolved to an exact commit and every file's sha256 is verified before it is used.
    Examples:
      registry pull ticket-json@1.2.0
      registry pull ticket-json@^1.2 --out ./adapters/ticket-json
      registry pull ticket-json --lock adapters.lock    # same bytes on every deploy
    """
    from registry.store.pull import pull as run_pull

    pulled = run_pull(ref, store_at(store_url), out=out, no_cache=no_cache, lock=lock)
    click.echo(f"{pulled.name} {pulled.version} @ {pulled.commit} -> {pulled.path}")


@click.command()
@click.argument("name")
@store_option()
@click.option("--json", "as_json", is_flag=True)
def versions(name, store_url, as_json):
    """List NAME's published versions (date, commit, fingerprint, gate, current).

    \b
    Example:
      registry versions ticket-json --store file:///srv/adapters
    """
    from registry.store.pull import versions as list_versions

    infos = list_versions(name, store_at(store_url))
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2, default=str))
        return
    if not infos:
        click.echo(f"{name}: no published versions")
    for i in infos:
        mark = "*" if i.current else " "
        gate = {True: "passed", False: "failed", None: "-"}[i.gate_passed]
        click.echo(
            f"{mark} {i.version:<12} {str(i.created_at)[:19]:<20} {i.commit[:12]}  "
            f"{(i.fingerprint or '')[:19]}  gate {gate}"
        )


@click.command("export")
@click.argument("refs", nargs=-1, metavar="[NAME[@VERSION]]...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["vllm", "tgi"]),
    help="Configuration for a serving engine: vLLM --lora-modules, or TGI's LORA_ADAPTERS.",
)
@click.option("--merged", is_flag=True, help="Fold one adapter into its base (no LoRA support).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the verified copies (--format; default ./exported) or the merged model.",
)
@click.option(
    "--lock",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Export exactly a lockfile's versions (from `registry pull --lock`).",
)
@store_option()
def export_cmd(refs, fmt, merged, out, lock, store_url):
    """Export versions for a serving engine: vLLM, TGI, or merged into the base.

    \b
    Without NAME or --lock: every adapter's current version. Each version is pulled,
    sha256-verified and copied to OUT/NAME@VERSION/, and served under that versioned name
    (a new version is a new name: no reload in place). Configuration on stdout, how to start
    the engine and warnings (rank over vLLM's default 16, DoRA) on stderr.
    Examples:
      registry export --format vllm --lock adapters.lock --out /srv/lora
      registry export ticket-json@1.2.0 --format tgi --out /srv/lora > lora.env
      registry export ticket-json@1.2.0 --merged --out merged/   # engines without LoRA
    """
    if merged == bool(fmt):
        raise click.UsageError("choose one: --format vllm|tgi or --merged")
    if merged:
        if len(refs) != 1 or lock is not None or out is None:
            raise click.UsageError("--merged takes exactly one NAME@VERSION and --out DIR")
        from registry.consume import export_merged

        result = export_merged(refs[0], out, store_at(store_url))
        click.echo(
            f"{refs[0]} merged -> {result['path']} (greedy answers identical on "
            f"{result['matches']}/{result['checked']} check prompts)"
        )
        return
    from registry.serve.export import export_for_engine

    result = export_for_engine(
        fmt, store_at(store_url), refs=list(refs), lock=lock, out=out or Path("exported")
    )
    for warning in result.warnings:
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
    click.echo(result.text, nl=False)
    for hint in result.hints:
        click.echo(hint, err=True)


def _split_refs(values: tuple[str, ...]) -> list[str]:
    return [ref.strip() for value in values for ref in value.split(",") if ref.strip()]


@click.command()
@store_option()
@click.option(
    "--lock",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Serve exactly a lockfile's versions (from `registry pull --lock`); follow nothing.",
)
@click.option(
    "--adapters",
    multiple=True,
    metavar="REF",
    help="NAME (follows the store's current version) or NAME@VERSION (pinned); repeat or "
    "comma-separate. Default: every adapter with a current version, new ones included.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between reads of the store's current pointers.",
)
@click.option("--max-batch-size", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1024),
    default=1_000_000,
    show_default=True,
    help="Larger request bodies get 413.",
)
@click.option("--device", help="torch device (default: cuda when available, else cpu).")
def serve(store_url, lock, adapters, host, port, poll_interval, max_batch_size,
          max_request_bytes, device):  # fmt: skip
    """OpenAI-compatible HTTP serving of the registry's adapters on one base model.

    \b
    model=NAME is the store's current version, NAME@VERSION a pinned one, the base
    model's id the base alone. The server polls the store's current pointers and switches
    to a new current version once it is pulled and verified (in-flight requests finish on
    theirs): a revert + sync on main is served within one poll interval, no restart.
    Endpoints: /v1/chat/completions, /v1/completions (stream too), /v1/models, /health.
    Examples:
      registry serve --store file:///srv/adapters --port 8000
      registry serve --adapters ticket-json --adapters ticket-json@1.0.0 --poll-interval 2
      registry serve --lock adapters.lock --host 0.0.0.0     # exactly these versions
    """
    from registry.serve.server import ServeOptions, run

    run(
        ServeOptions(
            store=store_url,
            lock=lock,
            adapters=_split_refs(adapters),
            host=host,
            port=port,
            poll_interval=poll_interval,
            max_batch=max_batch_size,
            max_request_bytes=max_request_bytes,
            device=device,
        ),
        say=lambda line: click.echo(line, err=line.startswith("warning")),
    )


COMMANDS = [pull, versions, export_cmd, serve]
