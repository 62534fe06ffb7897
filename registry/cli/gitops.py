"""The GitOps commands CI runs: `plan` (what a PR changes), `take-pr` (a PR's specs and data
into a trusted checkout) and `sync` (the store made to match main).

Thin: parse, call the library, print. `plan` exits 2 on a spec change without a version bump;
`sync` exits 4 on a conflict with the store and 3 on a failure (registry.gitops.sync.outcome).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from registry.cli.options import store_at, store_option


@click.command()
@click.option(
    "--base", "base_ref", required=True, help="Git ref to compare with (e.g. origin/main)."
)
@click.option("--json", "as_json", is_flag=True, help="JSON with a GitHub Actions matrix.")
@store_option(
    " Used to recognise rollbacks, and to refuse a published version"
    " whose weights differ from the head's spec (a conflict, as sync reports it)."
)
@click.option(
    "--head",
    "head_ref",
    default="HEAD",
    show_default=True,
    help="Commit to plan, read from git objects (CI: the PR head, planned by trusted code).",
)
def plan(base_ref, as_json, store_url, head_ref):
    """What changed vs BASE: new / retrain / bump / rollback / retire / unchanged.

    \b
    Fails (exit 2) when a spec changed without a version bump, its version goes
    backwards to a version that was never published, or (with a store) it declares a
    published version whose weights differ from its spec and data.
    Examples:
      registry plan --base origin/main
      registry plan --base origin/main --json    # {"matrix": {"include": [...]}, ...}
      registry plan --base "$BASE_SHA" --head "$HEAD_SHA" --json   # in CI
    """
    from registry.gitops.plan import plan as run_plan
    from registry.store import configured_store, published_versions

    store = configured_store(store_url)  # none: rollbacks are recognised from git history
    published = published_versions(store) if store else None
    held = store.manifest if store else None
    result = run_plan(base_ref, head_ref=head_ref, published=published, held=held)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.describe())


@click.command("take-pr")
@click.argument("head_rev")
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The trusted checkout (the PR's base commit).",
)
def take_pr(head_rev, repo):
    """Take only specs and data pointers from the PR head HEAD_REV into a trusted checkout.

    \b
    adapters/, datasets.dvc and regression/ become exactly HEAD_REV's (read from git
    objects; HEAD_REV must be fetched); the code, Makefile, pyproject.toml, .dvc/ and
    .github/ stay the checkout's. Exit 2, naming each path, on a symlink, a submodule,
    an odd name, an oversized file or a DVC pointer leaving the data; nothing is written.
    Example (CI, in the base commit's checkout):
      registry take-pr "$HEAD_SHA" && dvc pull
    """
    from registry.gitops.untrusted import take_pr_content

    changed = take_pr_content(repo, head_rev)
    for path in changed:
        click.echo(path)
    click.echo(f"took {len(changed)} changed path(s) from {head_rev[:12]}", err=True)


@click.command()
@store_option()
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
@click.option(
    "--adopt",
    type=click.Path(path_type=Path),
    help="Folder of PR-run adapters (DIR/NAME/): published without retraining only when they "
    "match main's spec, data and report; otherwise trained here. Absent: nothing to adopt.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Trust no cache: re-read every version's manifest from the store (a periodic check).",
)
def sync(store_url, dry_run, quiet, history, as_json, adopt, full):
    """Make the store match every spec on this checkout (run on main).

    \b
    Publishes declared versions that are missing (train + eval + gate, reusing cached
    weights), moves each adapter's current pointer to the declared version (a revert
    is a rollback: no training), and retires adapters whose spec was deleted.
    Examples:
      registry sync --store hf://my-org
      registry sync --store hf://my-org --adopt "$RUNNER_TEMP/adopt"   # the PR run's adapters
    """
    from registry.gitops.sync import outcome
    from registry.gitops.sync import sync as run_sync

    store = store_at(store_url)
    if full and hasattr(store, "trust_cache"):  # every manifest read goes to the store
        store.trust_cache = False
    actions = run_sync(store, dry_run=dry_run, progress=not quiet, history=history, adopt=adopt)
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in actions], indent=2))
    else:
        for a in actions:
            color = {"failed": "red", "conflict": "red", "rollback": "yellow"}.get(
                a.action, "green"
            )
            version = a.declared or "-"
            click.echo(
                f"{a.name:<24} {version:<10} {click.style(a.action, fg=color):<18} "
                f"{a.seconds:6.1f}s  {a.detail}"
            )
    error = outcome(actions)  # exit 4 on a conflict with the store, 3 on a failure
    if error is not None:
        raise error


COMMANDS = [plan, take_pr, sync]
