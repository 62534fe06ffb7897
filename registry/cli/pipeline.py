"""The pipeline of one adapter: `train`, `eval` (with the gate) and `publish`.

Thin: parse, call the library, print. Exit codes come from the library's errors (mapped in
registry.cli.main): 2 invalid input, 3 gate failed (GateFailed), 4 the version exists with
other content (Conflict).
"""

from __future__ import annotations

from pathlib import Path

import click

from registry.cli.options import load_named, store_at, store_option, train_options


@click.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default: runs/NAME).")
@click.option(
    "--dry-run", is_flag=True, help="Print the memory plan (no weights loaded); exit 2 if too big."
)
@click.option("--gpu-memory", type=float, help="With --dry-run: plan for a CUDA device of N GB.")
@train_options
def train(name, out, dry_run, gpu_memory, **options):
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
      registry train ticket-json --dry-run --gpu-memory 24 --base-model builtin:random-llama-8b
    """
    from registry.train import train as run_train
    from registry.train.options import TrainOptions

    spec = load_named(name)
    if dry_run:
        from registry.train.memory import dry_run as plan_memory

        nproc = options.get("nproc") or 1
        _, lines, check = plan_memory(spec, gpu_memory, options.get("base_model"), nproc=nproc)
        click.echo("\n".join(lines))
        check()  # a plan that does not fit: exit 2 with a hint
        return
    result = run_train(spec, out or Path("runs") / spec.name, TrainOptions.from_values(options))
    how = "reused from cache" if result.cached else "trained"
    click.echo(f"{spec.name} {spec.version}: {how} -> {result.adapter_dir}")
    click.echo(f"fingerprint {result.fingerprint}")


@click.command("eval")
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
@store_option()
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

    spec = load_named(name)
    if against_current:
        if previous is not None:
            raise click.UsageError("--previous and --against-current exclude each other")
        from registry.store.pull import current_for_comparison

        previous, what = current_for_comparison(spec, store_url)
        click.echo(f"previous version: {what}")
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


@click.command()
@click.argument("name")
@click.option("--adapter", required=True, type=click.Path(path_type=Path))
@store_option()
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

    spec = load_named(name)
    result = publish_version(
        spec.name,
        adapter,
        store_at(store_url),
        repo_id=spec.publish.repo,
        private=spec.publish.private,
    )
    click.echo(f"{spec.name} {result.version}: {result.status} ({result.commit})")


COMMANDS = [train, eval_, publish]
