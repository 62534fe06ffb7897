"""The `registry` command line: parse, call the library, print. No logic lives here.

Exit codes (DESIGN.md): 0 ok, 1 unexpected error, 2 invalid input, 3 gate failed, 4 conflict.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from registry.errors import RegistryError

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

    spec = _load(name)
    if dry_run:
        from registry.train.memory import dry_run as plan_memory

        _, lines, check = plan_memory(spec, gpu_memory, options.get("base_model"))
        click.echo("\n".join(lines))
        check()  # a plan that does not fit: exit 2 with a hint
        return
    result = run_train(spec, out or Path("runs") / spec.name, TrainOptions.from_values(options))
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

    spec = _load(name)
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


@cli.command()
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

    store = _store(store_url)
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


@cli.command()
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

    pulled = run_pull(ref, _store(store_url), out=out, no_cache=no_cache, lock=lock)
    click.echo(f"{pulled.name} {pulled.version} @ {pulled.commit} -> {pulled.path}")


@cli.command()
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


@cli.command("export")
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

        result = export_merged(refs[0], out, _store(store_url))
        click.echo(
            f"{refs[0]} merged -> {result['path']} (greedy answers identical on "
            f"{result['matches']}/{result['checked']} check prompts)"
        )
        return
    from registry.serve.export import export_for_engine

    result = export_for_engine(
        fmt, _store(store_url), refs=list(refs), lock=lock, out=out or Path("exported")
    )
    for warning in result.warnings:
        click.echo(click.style(f"warning: {warning}", fg="yellow"), err=True)
    click.echo(result.text, nl=False)
    for hint in result.hints:
        click.echo(hint, err=True)


def _split_refs(values: tuple[str, ...]) -> list[str]:
    return [ref.strip() for value in values for ref in value.split(",") if ref.strip()]


@cli.command()
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


@cli.command()
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


@cli.command("take-pr")
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


@cli.command("init")
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


@cli.command("new")
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
    git revert -> sync rolls back to 1.0.0 in seconds -> pull shows 1.0.0 -> `registry
    serve`, which answered with 1.1.0, answers with 1.0.0 again (no restart).
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
