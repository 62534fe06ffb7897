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
    from registry.spec.schema import load_spec

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
    from registry.spec.validate import format_stats
    from registry.spec.validate import validate as run_validate

    targets = [_spec_path(str(p)) for p in paths] or None
    if show_example is not None:
        _show_example(targets, show_example)
        return
    results = run_validate(targets, check_tokens=not no_tokens)
    if not results:
        click.echo("no adapter specs under adapters/*/adapter.yaml (an empty registry)", err=True)
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
    from registry.spec.base_model import load_tokenizer, resolve_base_model
    from registry.spec.data import load_examples, show_example
    from registry.spec.schema import load_spec
    from registry.spec.validate import spec_paths

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
    Example:
      registry schema --out schema/adapter.schema.json
    """
    from registry.spec.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


def _store(url: str | None):
    from registry.store import open_store

    return open_store(url)


@cli.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default: runs/NAME).")
@click.option("--max-steps", type=int, help="Override: stop after N steps (smoke runs).")
@click.option("--seed", type=int, help="Override the spec's seed.")
@click.option("--base-model", "base_model", help="Override the base model ref (smoke runs).")
@click.option("--resume", is_flag=True, help="Continue from the last complete checkpoint.")
@click.option("--nproc", type=int, default=1, show_default=True, help="DDP processes (torchrun).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(name, out, max_steps, seed, base_model, resume, nproc, quiet):
    """Train the adapter NAME (LoRA, QLoRA or DoRA, as its spec says).

    \b
    Writes adapter_model.safetensors, adapter_config.json, registry.json (provenance and
    training metrics), training_log.jsonl and loss.png. A spec whose fingerprint was
    trained before is returned from the cache at once. Overrides are recorded, and an
    output made with overrides cannot be published.
    Examples:
      registry train ticket-json
      registry train ticket-json --max-steps 5 --base-model builtin:tiny-llama   # smoke run
      registry train ticket-json --resume                                        # after a crash
    """
    from registry.train.loop import train as run_train

    spec = _load(name)
    result = run_train(
        spec,
        out or Path("runs") / spec.name,
        max_steps=max_steps,
        seed=seed,
        base_model=base_model,
        resume=resume,
        nproc=nproc,
        progress=not quiet,
    )
    how = "reused from cache" if result.cached else "trained"
    click.echo(f"{spec.name} {spec.version}: {how} -> {result.adapter_dir}")
    click.echo(f"fingerprint {result.fingerprint}")


@cli.command("eval")
@click.argument("name")
@click.option("--adapter", "adapter", required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Report folder (default: --adapter).")
@click.option("--limit", type=int, help="Evaluate the first N items only.")
@click.option("--base-model", "base_model", help="Override the base model ref (smoke runs).")
@click.option("--previous", type=click.Path(path_type=Path), help="Previous version's folder.")
@click.option(
    "--against-current",
    is_flag=True,
    help="Compare with the store's current version too (pulled and verified), as sync does.",
)
@click.option("--store", "store_url", help=STORE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_(name, adapter, out, limit, base_model, previous, against_current, store_url, quiet):
    """Evaluate NAME's adapter vs the base model and the prompt-only baseline, then gate.

    \b
    Writes report.json, report.md (the PR comment), junit.xml and metrics.png.
    Exit 0 when the gate passes, 3 when it fails.
    Examples:
      registry eval ticket-json --adapter runs/ticket-json
      registry eval ticket-json --adapter runs/ticket-json --limit 32 --out /tmp/report
      registry eval ticket-json --adapter runs/ticket-json --against-current   # in CI
    """
    from registry.errors import GateFailed
    from registry.evaluate.run import evaluate

    spec = _load(name)
    if against_current:
        if previous is not None:
            raise click.UsageError("--previous and --against-current exclude each other")
        from registry.gitops.sync import current_version_dir

        if store_url or os.environ.get("REGISTRY_STORE"):
            previous = current_version_dir(spec, _store(store_url))
            click.echo(f"previous version: {previous or 'none published yet'}")
        else:  # a PR job without a configured store compares with base and baseline only
            click.echo("previous version: no store configured (--store / REGISTRY_STORE)")
    report = evaluate(
        spec,
        adapter,
        out=out,
        limit=limit,
        base_model=base_model,
        previous_adapter_dir=previous,
        progress=not quiet,
    )
    click.echo(report.summary())
    if not report.passed:
        raise GateFailed(
            f"{spec.name} {spec.version}: gate failed (see {out or adapter}/report.md)"
        )


@cli.command()
@click.argument("name")
@click.option("--adapter", required=True, type=click.Path(path_type=Path))
@click.option("--store", "store_url", help=STORE_HELP)
def publish(name, adapter, store_url):
    """Publish NAME's evaluated adapter as an immutable version.

    \b
    Needs a passing report from `registry eval` for these exact weights. Exit 0 when published
    or already there with the same content, 3 when the gate did not pass, 4 when the version
    exists with other content (bump the version).
    Example:
      registry publish ticket-json --adapter runs/ticket-json --store hf://my-org
    """
    from registry.store.publish import publish_version

    spec = _load(name)
    result = publish_version(
        spec.name,
        adapter,
        _store(store_url),
        repo_id=spec.publish.repo,
        private=spec.publish.private,
    )
    click.echo(f"{spec.name} {result.version}: {result.status} ({result.commit})")


@cli.command()
@click.option("--store", "store_url", help=STORE_HELP)
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--history",
    type=int,
    default=20,
    show_default=True,
    help="Also publish versions declared by the last N merges (a burst of merges).",
)
@click.option("--json", "as_json", is_flag=True)
def sync(store_url, dry_run, quiet, history, as_json):
    """Make the store match every spec on this checkout (run on main).

    \b
    Publishes declared versions that are missing (train + eval + gate, reusing cached
    weights), moves each adapter's current pointer to the declared version (a revert
    is a rollback: no training), and retires adapters whose spec was deleted.
    Example:
      registry sync --store hf://my-org
    """
    from registry.gitops.sync import sync as run_sync

    actions = run_sync(_store(store_url), dry_run=dry_run, progress=not quiet, history=history)
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in actions], indent=2))
    else:
        for a in actions:
            color = {"failed": "red", "rollback": "yellow"}.get(a.action, "green")
            version = a.declared or "-"
            click.echo(
                f"{a.name:<24} {version:<10} {click.style(a.action, fg=color):<18} "
                f"{a.seconds:6.1f}s  {a.detail}"
            )
    failed = [a for a in actions if a.action == "failed"]
    if failed:
        from registry.errors import GateFailed

        raise GateFailed(
            f"{len(failed)} adapter(s) failed to sync: {', '.join(a.name for a in failed)}"
        )


@cli.command()
@click.argument("ref")
@click.option("--out", type=click.Path(path_type=Path), help="Copy the files here too.")
@click.option("--store", "store_url", help=STORE_HELP)
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

    pulled = run_pull(ref, _store(store_url), out=out, no_cache=no_cache, lock=lock)
    click.echo(f"{pulled.name} {pulled.version} @ {pulled.commit} -> {pulled.path}")


@cli.command()
@click.argument("name")
@click.option("--store", "store_url", help=STORE_HELP)
@click.option("--json", "as_json", is_flag=True)
def versions(name, store_url, as_json):
    """List NAME's published versions (date, commit, fingerprint, gate, current).

    \b
    Example:
      registry versions ticket-json --store file:///srv/adapters
    """
    from registry.store.pull import versions as list_versions

    infos = list_versions(name, _store(store_url))
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


@cli.command()
@click.option(
    "--base", "base_ref", required=True, help="Git ref to compare with (e.g. origin/main)."
)
@click.option("--json", "as_json", is_flag=True, help="JSON with a GitHub Actions matrix.")
@click.option("--store", "store_url", help=STORE_HELP + " Used to recognise rollbacks.")
def plan(base_ref, as_json, store_url):
    """What changed vs BASE: new / retrain / bump / rollback / retire / unchanged.

    \b
    Fails (exit 2) when a spec changed without a version bump, or its version goes
    backwards to a version that was never published.
    Examples:
      registry plan --base origin/main
      registry plan --base origin/main --json    # {"matrix": {"include": [...]}, ...}
    """
    from registry.gitops.plan import plan as run_plan

    published = None
    if store_url or os.environ.get("REGISTRY_STORE"):
        store = _store(store_url)

        def published(name: str) -> set[str]:
            return {v.version for v in store.versions(name)}

    result = run_plan(base_ref, published=published)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.describe())


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
    """The whole story end to end on the embedded SmolLM2-135M model (~14 min on 2 CPU cores).

    \b
    PR adds a spec -> plan -> validate -> train -> eval -> gate -> report -> merge ->
    sync publishes 1.0.0 -> pull by version and generate -> PR to 1.1.0 -> merge, sync ->
    git revert -> sync rolls back to 1.0.0 in seconds -> pull shows 1.0.0.
    Examples:
      registry demo
      registry demo --workdir /tmp/registry-demo
    """
    from registry.demo import run_demo

    run_demo(workdir, eval_limit=eval_limit)


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
