"""The GitHub Actions workflows: linted (actionlint, zizmor) and held to DESIGN.md's security rules.

GitHub Actions cannot run here, so the workflows are checked statically. The structural rules are
small checker functions over the parsed YAML; each is also fed a deliberately bad snippet, so a
checker that stopped flagging anything would fail its own test. The CLI sequence the steps call
is exercised end to end by the e2e tests (tests/gitops/test_trust_boundary.py runs the PR job's
own step scripts).

Reusable workflows (`on: workflow_call`) are judged by the events that call them: CALLED_FROM
says which, and a test keeps it equal to what this repository's callers declare.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
PR, PUBLISH, COMMENT, TESTS = "pr.yml", "publish.yml", "pr-comment.yml", "tests.yml"
PR_REUSABLE, PUBLISH_REUSABLE = "registry-pr.yml", "registry-publish.yml"
# The events each reusable workflow is written for (its callers here and in adopting repos).
CALLED_FROM = {PR_REUSABLE: {"pull_request"}, PUBLISH_REUSABLE: {"push", "workflow_dispatch"}}
CALLED_ON = "x-called-on"  # where load_file records them in the parsed workflow

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
# Values an outsider chooses: a PR's title, body, branch name, commit messages, comments...
UNTRUSTED = re.compile(
    r"github\.head_ref|github\.event\.(pull_request\.(title|body|head\.ref|head\.label)"
    r"|issue\.(title|body)|comment\.body|review\.body|review_comment\.body|head_commit\.message"
    r"|commits|pages|workflow_run\.(head_branch|display_title|head_commit))"
)
PR_TRIGGERS = {"pull_request", "pull_request_target", "workflow_run"}
SAFE_PIN_REF = "${{ github.event.pull_request.head.sha }}"  # the exact reviewed head commit
BASE_REF = "${{ github.event.pull_request.base.sha }}"
# Refs whose code may run in a PR job: the PR's base commit, or the pinned tool.
TRUSTED_REFS = {BASE_REF, "${{ inputs.tool-ref || github.event.pull_request.base.sha }}"}
HEAD_FOLDER = "pr-head"  # where the head's git objects are fetched; deleted before anything runs
GITHUB_HOSTED = re.compile(r"^(ubuntu|windows|macos)-[\w.-]+$")
ZIZMOR_ALLOWED_IGNORES = {("dangerous-triggers", COMMENT)}  # justified in pr-comment.yml
MEDIUM_OR_ABOVE = {"Medium", "High"}

Workflow = dict[str, Any]
Checker = Callable[[Workflow], list[str]]


# -- reading workflows ---------------------------------------------------------------------------


def load(text: str) -> Workflow:
    return yaml.safe_load(text)


def load_file(name: str) -> Workflow:
    wf = load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if "workflow_call" in triggers(wf):
        wf[CALLED_ON] = sorted(CALLED_FROM.get(name, set()))
    return wf


def own_triggers(wf: Workflow) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def triggers(wf: Workflow) -> dict[str, Any]:
    """The workflow's own events, plus those of its callers when it is a reusable workflow."""
    return {**dict.fromkeys(wf.get(CALLED_ON, [])), **own_triggers(wf)}


def pr_triggered(wf: Workflow) -> bool:
    return bool(PR_TRIGGERS & triggers(wf).keys())


def jobs(wf: Workflow) -> dict[str, dict[str, Any]]:
    return wf.get("jobs") or {}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps") or []


def is_checkout(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("actions/checkout@")


def checkouts(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (s for s in steps(job) if is_checkout(s))


def with_(step: dict[str, Any]) -> dict[str, Any]:
    return step.get("with") or {}


def write_scopes(permissions: Any) -> list[str]:
    """Scopes granted write; a missing block counts as the (possibly write) default token."""
    if permissions is None:
        return ["<default token permissions>"]
    if isinstance(permissions, str):
        return [] if permissions == "read-all" else [permissions]
    return [scope for scope, level in permissions.items() if level == "write"]


def effective_permissions(wf: Workflow, job: dict[str, Any]) -> Any:
    return job["permissions"] if "permissions" in job else wf.get("permissions")


def mentions_secret(node: Any) -> bool:
    return "secrets." in json.dumps(node)


def runs_on(job: dict[str, Any]) -> list[str]:
    labels = job.get("runs-on", [])
    return [labels] if isinstance(labels, str) else list(labels)


def github_hosted(job: dict[str, Any]) -> bool:
    """Only literal GitHub-hosted labels count; an expression may pick a self-hosted runner."""
    labels = runs_on(job)
    return bool(labels) and all(GITHUB_HOSTED.match(label) for label in labels)


def runs_pr_code(step: dict[str, Any]) -> bool:
    """A checkout whose files may run: anything but a trusted ref or the head's side folder."""
    ref, path = with_(step).get("ref"), with_(step).get("path")
    return ref not in TRUSTED_REFS and path != HEAD_FOLDER


# -- checkers: each returns a list of problems, empty when the workflow follows the rule ---------


def check_pinned(wf: Workflow) -> list[str]:
    """Every action and reusable workflow is pinned by a full 40-hex commit SHA."""
    found = []
    for job_id, job in jobs(wf).items():
        refs = [job["uses"]] if "uses" in job else []
        refs += [s["uses"] for s in steps(job) if "uses" in s]
        for ref in refs:
            if not (ref.startswith("./") or SHA_PIN.match(ref)):
                found.append(f"{job_id}: {ref} is not pinned to a commit SHA")
    return found


def check_timeouts(wf: Workflow) -> list[str]:
    # A job calling a reusable workflow cannot set one: the called jobs carry their own.
    return [
        f"{j}: no timeout-minutes"
        for j, job in jobs(wf).items()
        if "timeout-minutes" not in job and "uses" not in job
    ]


def check_run_expressions(wf: Workflow) -> list[str]:
    """No `${{ }}` inside `run:` at all (values go through env:), untrusted ones named first."""
    found = []
    for job_id, job in jobs(wf).items():
        for step in steps(job):
            for expr in EXPRESSION.findall(str(step.get("run", ""))):
                kind = "untrusted input" if UNTRUSTED.search(expr) else "expression"
                found.append(f"{job_id}: {kind} ${{{{{expr}}}}} expanded inside run:")
    return found


def check_checkout_credentials(wf: Workflow) -> list[str]:
    found = []
    for job_id, job in jobs(wf).items():
        for step in checkouts(job):
            if str(with_(step).get("persist-credentials")).lower() != "false":
                found.append(f"{job_id}: checkout without persist-credentials: false")
    return found


def check_top_permissions(wf: Workflow) -> list[str]:
    if "permissions" not in wf:
        return ["no top-level permissions: the default token may be read-write"]
    return [f"top-level permissions grant {s}" for s in write_scopes(wf["permissions"])]


def check_pr_code_jobs(wf: Workflow) -> list[str]:
    """In PR-triggered workflows, a job that checks out code (or calls a reusable workflow)
    holds no secret and no write scope."""
    if not pr_triggered(wf):
        return []
    found = []
    for job_id, job in jobs(wf).items():
        if not any(checkouts(job)) and "uses" not in job:
            continue
        if mentions_secret(job) or "secrets" in job:
            found.append(f"{job_id}: checks out PR code and references a secret")
        for scope in write_scopes(effective_permissions(wf, job)):
            found.append(f"{job_id}: checks out PR code with write permission {scope}")
    return found


def check_pull_request_target(wf: Workflow) -> list[str]:
    """Never `pull_request_target` (or `workflow_run`) together with a checkout of the PR head."""
    privileged = {"pull_request_target", "workflow_run"} & triggers(wf).keys()
    if not privileged:
        return []
    head = re.compile(r"pull_request\.head|head_ref|refs/pull/|workflow_run\.head")
    found = []
    for job_id, job in jobs(wf).items():
        for step in checkouts(job):
            if head.search(str(with_(step).get("ref", ""))):
                found.append(f"{job_id}: {sorted(privileged)} workflow checks out the PR head")
    return found


def check_trust_boundary(wf: Workflow) -> list[str]:
    """PR code runs only where it can decide nothing: a GitHub-hosted job without outputs.

    Every other PR job runs code of a trusted ref; the head's commit may only be fetched into
    the side folder `pr-head`, at the exact reviewed SHA, which a step deletes and no step runs
    in; its specs and data then arrive through `registry take-pr` of that SHA.
    """
    if not pr_triggered(wf):
        return []
    found = []
    for job_id, job in jobs(wf).items():
        untrusted = [s for s in checkouts(job) if runs_pr_code(s)]
        if untrusted and not github_hosted(job):
            found.append(f"{job_id}: runs PR code on a self-hosted runner")
        if untrusted and job.get("outputs"):
            found.append(f"{job_id}: runs PR code and its outputs decide other jobs")
        head = [s for s in checkouts(job) if with_(s).get("path") == HEAD_FOLDER]
        if not head:
            continue
        if any(with_(s).get("ref") != SAFE_PIN_REF for s in head):
            found.append(f"{job_id}: {HEAD_FOLDER} is not the reviewed head {SAFE_PIN_REF}")
        scripts = [str(s.get("run", "")) for s in steps(job)]
        if not any(f"rm -rf ../{HEAD_FOLDER}" in script for script in scripts):
            found.append(f"{job_id}: {HEAD_FOLDER} is never deleted")
        for step in steps(job):
            if str(step.get("working-directory", "")).startswith(HEAD_FOLDER):
                found.append(f"{job_id}: a step runs inside {HEAD_FOLDER}")
    return found


def check_self_hosted_gated(wf: Workflow) -> list[str]:
    """PR jobs on self-hosted runners: same-repo or labelled only, taking the reviewed head SHA."""
    if "pull_request" not in triggers(wf):
        return []
    found = []
    for job_id, job in jobs(wf).items():
        if github_hosted(job) or "uses" in job:
            continue
        condition = str(job.get("if", ""))
        if "github.event.pull_request.head.repo.full_name == github.repository" not in condition:
            found.append(f"{job_id}: self-hosted job not limited to same-repo PRs")
        if "github.event.label.name == 'safe-to-train'" not in condition:
            found.append(f"{job_id}: self-hosted job has no maintainer-label gate for forks")
        takes = [
            s
            for s in steps(job)
            if 'bin/registry take-pr "$HEAD_SHA"' in str(s.get("run", ""))
            and (s.get("env") or {}).get("HEAD_SHA") == SAFE_PIN_REF
        ]
        if not takes:
            found.append(f"{job_id}: self-hosted job does not take-pr {SAFE_PIN_REF}")
    return found


def check_secret_jobs_guarded(wf: Workflow) -> list[str]:
    """A job holding a secret: main only, protected environment, one uncancelled publish queue.

    A job that calls a reusable workflow only forwards secrets, by name (never `inherit`); the
    called workflow's job is held to the rule when its own file is checked."""
    found = []
    for job_id, job in jobs(wf).items():
        if not mentions_secret(job) and "secrets" not in job:
            continue
        if pr_triggered(wf):
            found.append(f"{job_id}: a secret in a PR-triggered workflow")
        if "uses" in job:
            if job.get("secrets") == "inherit":
                found.append(f"{job_id}: `secrets: inherit` hands every secret to the callee")
            continue
        environment = job.get("environment")
        if isinstance(environment, dict):
            environment = environment.get("name")
        if environment != "publish":
            found.append(f"{job_id}: a secret outside the protected `publish` environment")
        concurrency = job.get("concurrency") or wf.get("concurrency") or {}
        if not isinstance(concurrency, dict) or concurrency.get("group") != "registry-publish":
            found.append(f"{job_id}: a secret outside the registry-publish concurrency group")
        elif concurrency.get("cancel-in-progress") is not False:
            found.append(f"{job_id}: the publish queue may cancel a publish in progress")
    return found


CHECKERS: list[Checker] = [
    check_pinned,
    check_timeouts,
    check_run_expressions,
    check_checkout_credentials,
    check_top_permissions,
    check_pr_code_jobs,
    check_pull_request_target,
    check_trust_boundary,
    check_self_hosted_gated,
    check_secret_jobs_guarded,
]


def all_problems(wf: Workflow) -> list[str]:
    return [problem for checker in CHECKERS for problem in checker(wf)]


# -- the project's workflows follow every rule ---------------------------------------------------


def test_the_workflows_exist():
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {PR, PUBLISH, COMMENT, TESTS, PR_REUSABLE, PUBLISH_REUSABLE} <= names


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_workflow_follows_the_security_rules(path: Path):
    assert all_problems(load_file(path.name)) == []


def callers() -> dict[str, set[str]]:
    """Reusable workflow file -> the events of this repository's workflows that call it."""
    found: dict[str, set[str]] = {}
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        wf = load_file(path.name)
        for job in jobs(wf).values():
            if str(job.get("uses", "")).startswith("./.github/workflows/"):
                name = job["uses"].rsplit("/", 1)[-1]
                found.setdefault(name, set()).update(own_triggers(wf))
    return found


def test_reusable_workflows_are_called_as_declared():
    # CALLED_FROM decides which rules a reusable workflow is held to: it must say the truth.
    assert callers() == CALLED_FROM
    for name in CALLED_FROM:
        assert set(own_triggers(load_file(name))) == {"workflow_call"}


def reusable_inputs(name: str) -> dict[str, Any]:
    return own_triggers(load_file(name))["workflow_call"]["inputs"]


def test_reusable_inputs_are_documented_at_the_top():
    for name in CALLED_FROM:
        header = (WORKFLOWS / name).read_text(encoding="utf-8").split("\nname:", 1)[0]
        for key in reusable_inputs(name):
            assert re.search(rf"^#\s+{re.escape(key)}\s", header, re.M), f"{name}: {key}"


def test_pr_callers_are_thin():
    (job,) = jobs(load_file(PR)).values()
    assert job["uses"] == f"./.github/workflows/{PR_REUSABLE}"
    assert job["permissions"] == {"contents": "read"} and "secrets" not in job
    assert set(own_triggers(load_file(PR))) == {"pull_request"}
    assert load_file(PR)["concurrency"]["cancel-in-progress"] is True


def test_pr_workflow_shape():
    wf = load_file(PR_REUSABLE)
    plan, train, gate = (jobs(wf)[j] for j in ("validate-plan", "train-eval", "gate"))

    # validate-plan: every PR, forks too, on a GitHub-hosted runner, read-only, trusted code.
    assert plan["runs-on"] == "ubuntu-latest"
    assert plan["permissions"] == {"contents": "read"}
    assert set(plan["outputs"]) == {"matrix", "has_work"}
    tool, repo, head = checkouts(plan)
    assert with_(tool)["ref"] in TRUSTED_REFS and "path" not in with_(tool)
    assert with_(repo)["ref"] == BASE_REF and with_(repo)["path"] == "repo"
    assert with_(head)["ref"] == SAFE_PIN_REF and with_(head)["path"] == HEAD_FOLDER
    runs = "\n".join(s.get("run", "") for s in steps(plan))
    assert 'registry plan --base "$BASE_SHA" --head "$HEAD_SHA" --json' in runs
    assert runs.index("rm -rf ../pr-head") < runs.index("bin/registry plan")

    # train-eval: the matrix of changed adapters on the GPU runners; no secret, no write.
    assert runs_on(train) == ["${{ fromJSON(inputs.gpu-runner) }}"]
    assert json.loads(reusable_inputs(PR_REUSABLE)["gpu-runner"]["default"]) == [
        "self-hosted",
        "gpu",
    ]
    assert train["strategy"]["matrix"] == "${{ fromJSON(needs.validate-plan.outputs.matrix) }}"
    assert train["permissions"] == {"contents": "read"} and not mentions_secret(train)
    assert "needs.validate-plan.outputs.has_work == 'true'" in train["if"]
    assert train["defaults"]["run"]["working-directory"] == "repo"
    commands = [s["run"] for s in steps(train) if "run" in s]
    assert commands[0] == "make install TORCH=cuda"  # the tool's lock, at the workspace root
    assert commands[1].splitlines() == [
        'git fetch --quiet --no-tags --depth=1 ../pr-head "$HEAD_SHA"',
        "rm -rf ../pr-head",
        '../.venv/bin/registry take-pr "$HEAD_SHA"',
    ]
    assert commands[2:] == [
        "../.venv/bin/dvc pull",
        '../.venv/bin/registry validate "adapters/${ADAPTER}"',
        '../.venv/bin/registry train "${ADAPTER}" --out "out/${ADAPTER}" --quiet',
        '../.venv/bin/registry eval "${ADAPTER}" --adapter "out/${ADAPTER}" --out "out/${ADAPTER}"'
        " --quiet --against-current",
    ]
    # Nothing runs before the trusted checkouts are in place and the head's folder is gone.
    names = [s["name"] for s in steps(train)]
    assert names.index("registry take-pr") < names.index("dvc pull")
    report, adopt = steps(train)[-2:]
    assert report["uses"].startswith("actions/upload-artifact@")
    assert report["if"] == "${{ !cancelled() }}"  # a failed gate still gets its report out
    assert adopt["uses"].startswith("actions/upload-artifact@") and "if" not in adopt
    assert with_(adopt)["name"] == "adopt-${{ matrix.name }}"
    assert with_(adopt)["path"].split() == [
        f"repo/out/*/{f}"
        for f in (
            "adapter_model.safetensors",
            "adapter_config.json",
            "registry.json",
            "report.json",
        )
    ]
    assert train["env"]["HF_HOME"] and train["env"]["REGISTRY_CACHE"]

    # gate: the single required check, run whatever the matrix did.
    assert set(gate["needs"]) == {"validate-plan", "train-eval"}
    assert gate["if"] == "${{ !cancelled() }}" and gate["permissions"] == {}


def test_publish_workflow_shape():
    caller = load_file(PUBLISH)
    on = own_triggers(caller)
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]
    assert set(on["push"]["paths"]) == {"adapters/**", "datasets.dvc"}
    assert caller["permissions"] == {}
    (call,) = jobs(caller).values()
    assert call["uses"] == f"./.github/workflows/{PUBLISH_REUSABLE}"
    assert call["secrets"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"}

    wf = load_file(PUBLISH_REUSABLE)
    find, job = jobs(wf)["find-pr-run"], jobs(wf)["sync"]
    assert job["environment"] == "publish"
    assert job["concurrency"] == {"group": "registry-publish", "cancel-in-progress": False}
    assert "github.ref == 'refs/heads/main'" in job["if"] and "!cancelled()" in job["if"]
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    commands = [s["run"] for s in steps(job) if "run" in s]
    assert commands[-2:] == [
        "../.venv/bin/registry validate",
        '../.venv/bin/registry sync --store "$STORE" --quiet --adopt "$RUNNER_TEMP/adopt"',
    ]
    # The Hub token reaches the sync step only, not the job's other steps.
    holders = [s for s in steps(job) if mentions_secret(s)]
    assert [s["name"] for s in holders] == ["registry sync"]
    assert holders[0]["env"] == {
        "HF_TOKEN": "${{ secrets.HF_TOKEN }}",
        "STORE": "${{ inputs.store }}",
    }

    # Adoption: only the merged PR's own successful run, digest checked, else sync trains.
    (download,) = [s for s in steps(job) if str(s.get("uses", "")).startswith("actions/download")]
    assert with_(download)["run-id"] == "${{ needs.find-pr-run.outputs.run-id }}"
    assert with_(download)["digest-mismatch"] == "error"
    assert with_(download)["pattern"] == "adopt-*" and download["continue-on-error"] is True
    assert "rm -rf" in next(
        s["run"] for s in steps(job) if s.get("name") == "Drop a failed download"
    )
    script = steps(find)[-1]["run"]
    assert "git diff --quiet HEAD^1 HEAD -- .github" in script
    assert "status=success" in script and "head_sha=$head" in script
    assert find["runs-on"] == "ubuntu-latest" and not mentions_secret(find)


def test_publishing_never_reads_the_pr_jobs_caches():
    pr, publish = reusable_inputs(PR_REUSABLE), reusable_inputs(PUBLISH_REUSABLE)
    for key in ("registry-cache", "hf-home"):
        assert pr[key]["default"] != publish[key]["default"], key
    assert publish["registry-cache"]["default"] == "/opt/cache/registry-publish"


def test_the_tool_tests_run_pr_code_only_where_it_decides_nothing():
    wf = load_file(TESTS)
    (job,) = jobs(wf).values()
    assert github_hosted(job) and not job.get("outputs") and not mentions_secret(job)
    assert job["permissions"] == {"contents": "read"}
    assert not any("cache" in with_(s) for s in steps(job))  # no cache a later job could read


def test_only_the_publish_job_holds_a_secret():
    holders = [
        (path.name, job_id)
        for path in sorted(WORKFLOWS.glob("*.y*ml"))
        for job_id, job in jobs(load_file(path.name)).items()
        if mentions_secret(job)
    ]
    assert holders == [(PUBLISH, "publish"), (PUBLISH_REUSABLE, "sync")]


def test_comment_workflow_never_touches_pr_code():
    wf = load_file(COMMENT)
    assert set(triggers(wf)) == {"workflow_run"}
    assert triggers(wf)["workflow_run"]["workflows"] == [load_file(PR)["name"]]
    (job,) = jobs(wf).values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any(checkouts(job))
    script = "\n".join(s.get("run", "") for s in steps(job))
    # Nothing that would install or run code: no such command at the start of a command.
    runner = re.compile(
        r"(^|\$\(|[;&|]\s*)\s*(make|pip3?|\S*registry|python3?|eval|source|\.|bash|sh|npm|npx)\s",
        re.M,
    )
    assert not runner.search(script), runner.search(script)
    assert "<!-- adapter-registry-report -->" in script
    # The report travels as a request field (PATCH or POST), never on a command line.
    assert script.count('-F "body=@$body"') == 2
    assert "$HEAD_SHA" in script and "pulls/$pr" in script  # the PR number is verified


PIN_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+\.\d+\.\d+\s*$")


def check_pin_comments(text: str) -> list[str]:
    """Each SHA pin says which release it is (`# vX.Y.Z`), for reviewers and Dependabot."""
    return [
        f"line {n}: {line.strip()} has no # vX.Y.Z comment"
        for n, line in enumerate(text.splitlines(), start=1)
        if re.search(r"uses:\s*\S+@[0-9a-f]{40}", line) and not PIN_COMMENT.search(line)
    ]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_pins_name_their_release(path: Path):
    assert check_pin_comments(path.read_text(encoding="utf-8")) == []


def registry_commands() -> list[tuple[str, list[str]]]:
    """Every `registry ...` command line of every workflow, with $VARS filled with a stand-in."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for job in jobs(load(path.read_text(encoding="utf-8"))).values():
            for step in steps(job):
                for line in str(step.get("run", "")).splitlines():
                    if "bin/registry " not in line:
                        continue
                    words = shlex.split(re.sub(r"\$\{?(\w+)\}?", r"\1", line), comments=True)
                    if not words or not words[0].endswith("bin/registry"):
                        continue
                    stop = next((i for i, w in enumerate(words) if w in {">", ">>", "|"}), None)
                    found.append((path.name, words[1:stop]))
    return found


def test_workflow_commands_match_the_cli():
    """The options the workflows pass exist in the CLI (catches drift when the CLI changes)."""
    import click

    from registry.cli import cli

    commands = registry_commands()
    expected = {"plan", "take-pr", "validate", "train", "eval", "sync"}
    assert {args[0] for _, args in commands} >= expected
    for workflow, (name, *args) in commands:
        try:  # raises on an unknown command or option, or a missing value
            cli.commands[name].make_context(name, list(args))
        except (KeyError, click.UsageError) as exc:
            pytest.fail(f"{workflow}: registry {name} {' '.join(args)}: {exc}")


# -- each checker flags what it exists to catch --------------------------------------------------

# A pinned checkout that keeps no credentials: the bad snippets differ from good in one thing.
CHECKOUT = "{uses: actions/checkout@" + "0" * 40 + ", with: {persist-credentials: false}}"
HEAD_CHECKOUT = (
    "{uses: actions/checkout@" + "0" * 40 + ", with: {persist-credentials: false, "
    "ref: '${{ github.event.pull_request.head.sha }}'}}"
)
GATED = (
    "github.event.pull_request.head.repo.full_name == github.repository"
    " || github.event.label.name == 'safe-to-train'"
)
TAKE_PR = (
    "{run: '../.venv/bin/registry take-pr \"$HEAD_SHA\"', "
    "env: {HEAD_SHA: '${{ github.event.pull_request.head.sha }}'}}"
)


def snippet(text: str) -> str:
    return (
        textwrap.dedent(text)
        .replace("HEAD_CHECKOUT", HEAD_CHECKOUT)
        .replace("CHECKOUT", CHECKOUT)
        .replace("GATED", GATED)
        .replace("TAKE_PR", TAKE_PR)
    )


BAD_WORKFLOWS: list[tuple[Checker, str]] = [
    (check_pinned, "on: push\njobs: {a: {steps: [{uses: actions/checkout@v4}]}}"),
    (check_pinned, "on: push\njobs: {a: {uses: org/repo/.github/workflows/w.yml@main}}"),
    (check_timeouts, "on: push\njobs: {a: {runs-on: x, steps: [{run: echo}]}}"),
    (
        check_run_expressions,
        "on: pull_request\n"
        "jobs: {a: {steps: [{run: 'echo ${{ github.event.pull_request.title }}'}]}}",
    ),
    (
        check_run_expressions,
        "on: pull_request\njobs: {a: {steps: [{run: 'git push ${{ github.head_ref }}'}]}}",
    ),
    (check_checkout_credentials, "on: push\njobs: {a: {steps: [{uses: actions/checkout@x}]}}"),
    (check_top_permissions, "on: push\njobs: {}"),
    (check_top_permissions, "on: push\npermissions: write-all\njobs: {}"),
    (check_top_permissions, "on: push\npermissions: {contents: write}\njobs: {}"),
    (
        check_pr_code_jobs,  # PR code next to a secret
        snippet(
            """\
            on: pull_request
            permissions: {}
            jobs:
              a: {permissions: {}, env: {T: "${{ secrets.HF_TOKEN }}"}, steps: [CHECKOUT]}
            """
        ),
    ),
    (
        check_pr_code_jobs,  # PR code with a token that can write
        snippet(
            """\
            on: pull_request
            permissions: {}
            jobs:
              a: {permissions: {pull-requests: write}, steps: [CHECKOUT]}
            """
        ),
    ),
    (
        check_pr_code_jobs,  # no permissions anywhere: the default token may write
        snippet("on: pull_request\njobs: {a: {steps: [CHECKOUT]}}"),
    ),
    (
        check_pr_code_jobs,  # a PR workflow handing secrets to a reusable workflow
        "on: pull_request\npermissions: {}\n"
        "jobs: {a: {uses: ./.github/workflows/w.yml, permissions: {}, secrets: inherit}}",
    ),
    (
        check_pull_request_target,
        snippet(
            """\
            on: pull_request_target
            jobs:
              a:
                steps:
                  - uses: actions/checkout@x
                    with: {ref: "${{ github.event.pull_request.head.sha }}"}
            """
        ),
    ),
    (
        check_trust_boundary,  # the old train-eval: the head checked out where it runs
        snippet(
            """\
            on: pull_request
            jobs:
              a: {runs-on: [self-hosted, gpu], if: GATED, steps: [HEAD_CHECKOUT, TAKE_PR]}
            """
        ),
    ),
    (
        check_trust_boundary,  # the old validate-plan: PR code deciding what trains
        snippet(
            """\
            on: pull_request
            jobs:
              a: {runs-on: ubuntu-latest, outputs: {m: x}, steps: [HEAD_CHECKOUT]}
            """
        ),
    ),
    (
        check_trust_boundary,  # the side folder holds the moving merge commit, not the head
        snippet(
            """\
            on: pull_request
            jobs:
              a:
                runs-on: ubuntu-latest
                steps:
                  - {uses: actions/checkout@x, with: {path: pr-head, persist-credentials: false}}
                  - {run: rm -rf ../pr-head}
            """
        ),
    ),
    (
        check_trust_boundary,  # the head's folder stays on disk while the tool runs
        snippet(
            """\
            on: pull_request
            jobs:
              a:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@x
                    with:
                      path: pr-head
                      ref: "${{ github.event.pull_request.head.sha }}"
                      persist-credentials: false
            """
        ),
    ),
    (
        check_trust_boundary,  # a reusable workflow is judged by the events that call it
        snippet(
            """\
            on: workflow_call
            x-called-on: [pull_request]
            jobs:
              a: {runs-on: "${{ fromJSON(inputs.runner) }}", if: GATED, steps: [CHECKOUT]}
            """
        ),
    ),
    (
        check_self_hosted_gated,  # a fork's PR straight onto the GPU runner
        snippet("on: pull_request\njobs: {a: {runs-on: [self-hosted, gpu], steps: [TAKE_PR]}}"),
    ),
    (
        check_self_hosted_gated,  # gated, but takes the merge commit rather than the reviewed SHA
        snippet(
            """\
            on: pull_request
            jobs:
              a:
                runs-on: [self-hosted, gpu]
                if: GATED
                steps:
                  - run: '../.venv/bin/registry take-pr "$HEAD_SHA"'
                    env: {HEAD_SHA: "${{ github.sha }}"}
            """
        ),
    ),
    (
        check_self_hosted_gated,  # a runner chosen by an expression counts as self-hosted
        snippet(
            """\
            on: workflow_call
            x-called-on: [pull_request]
            jobs:
              a: {runs-on: "${{ fromJSON(inputs.runner) }}", steps: [TAKE_PR]}
            """
        ),
    ),
    (
        check_secret_jobs_guarded,  # the publish queue may cancel a publish half-way
        snippet(
            """\
            on: {push: {branches: [main]}}
            jobs:
              p:
                environment: publish
                concurrency: {group: registry-publish, cancel-in-progress: true}
                env: {T: "${{ secrets.HF_TOKEN }}"}
            """
        ),
    ),
    (
        check_secret_jobs_guarded,  # no protected environment
        snippet(
            """\
            on: {push: {branches: [main]}}
            jobs:
              p:
                concurrency: {group: registry-publish, cancel-in-progress: false}
                env: {T: "${{ secrets.HF_TOKEN }}"}
            """
        ),
    ),
    (
        check_secret_jobs_guarded,  # no concurrency group: two publishers race
        snippet(
            """\
            on: {push: {branches: [main]}}
            jobs:
              p: {environment: {name: publish}, env: {T: "${{ secrets.HF_TOKEN }}"}}
            """
        ),
    ),
    (
        check_secret_jobs_guarded,  # every secret handed to a reusable workflow
        "on: {push: {branches: [main]}}\n"
        "jobs: {p: {uses: ./.github/workflows/w.yml, secrets: inherit}}",
    ),
    (
        check_secret_jobs_guarded,  # a reusable workflow with a secret, called from PRs
        snippet(
            """\
            on: workflow_call
            x-called-on: [pull_request]
            jobs:
              p:
                environment: publish
                concurrency: {group: registry-publish, cancel-in-progress: false}
                env: {T: "${{ secrets.HF_TOKEN }}"}
            """
        ),
    ),
]


@pytest.mark.parametrize(
    ("checker", "snippet"), BAD_WORKFLOWS, ids=lambda v: v.__name__ if callable(v) else ""
)
def test_checker_flags_a_bad_workflow(checker: Checker, snippet: str):
    assert checker(load(snippet)), snippet


def test_pin_comment_check_flags_a_bare_sha():
    bare = "      - uses: actions/checkout@" + "0" * 40 + "\n"
    assert check_pin_comments(bare)
    assert check_pin_comments(bare.rstrip() + " # v4\n")  # a major tag is not a release
    assert check_pin_comments(bare.rstrip() + " # v4.2.2\n") == []


def test_checker_accepts_a_good_variant():
    # The same shape as the bad snippets, done right: no checker complains.
    good = load(
        textwrap.dedent(
            f"""\
            on: pull_request
            permissions: {{}}
            jobs:
              a:
                runs-on: [self-hosted, gpu]
                if: >-
                  github.event.pull_request.head.repo.full_name == github.repository
                  || github.event.label.name == 'safe-to-train'
                timeout-minutes: 5
                permissions: {{contents: read}}
                steps:
                  - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683
                    with: {{ref: '{BASE_REF}', persist-credentials: false}}
                  - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683
                    with: {{ref: '{SAFE_PIN_REF}', path: pr-head, persist-credentials: false}}
                  - run: |
                      rm -rf ../pr-head
                      ../.venv/bin/registry take-pr "$HEAD_SHA"
                    env: {{HEAD_SHA: '{SAFE_PIN_REF}'}}
                  - run: echo "$TITLE"
                    env: {{TITLE: '${{{{ github.event.pull_request.title }}}}'}}
              call:
                uses: ./.github/workflows/w.yml
                permissions: {{contents: read}}
            """
        )
    )
    assert all_problems(good) == []


# -- linters -------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """The venv's copy of a linter binary, else PATH's; missing fails under CI, skips elsewhere."""
    found = shutil.which(name, path=SEARCH_PATH)
    if found:
        return found
    reason = f"{name} is not installed (pip install -e '.[dev]' brings it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# The venv's bin first: the dev extras ship actionlint, zizmor and shellcheck there.
SEARCH_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=SEARCH_PATH)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # actionlint runs shellcheck on every `run:` script when it finds it on PATH; without it
    # the scripts go unchecked, so its absence is the same failure as a missing linter.
    tool("shellcheck")
    args = [tool("actionlint"), "-no-color", "-config-file", str(GITHUB / "actionlint.yaml")]
    return run([*args, *map(str, paths)])


def zizmor(*paths: Path, no_ignores: bool = False) -> list[dict[str, Any]]:
    args = [tool("zizmor"), "--offline", "--no-exit-codes", "--format", "json"]
    proc = run([*args, *(["--no-ignores"] if no_ignores else []), *map(str, paths)])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def severe(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted(
        (f["ident"], Path(f["locations"][0]["symbolic"]["key"]["Local"]["verbatim_path"]).name)
        for f in findings
        if f["determinations"]["severity"] in MEDIUM_OR_ABOVE
    )


def test_actionlint_passes():
    proc = actionlint(*sorted(WORKFLOWS.glob("*.y*ml")))
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_actionlint_flags_a_bad_workflow(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, gpux]\n    needs: missing\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - run: cat $REPORT\n"
    )
    proc = actionlint(bad)
    assert proc.returncode == 1
    assert "gpux" in proc.stdout and "missing" in proc.stdout  # unknown label, unknown job
    assert "github.event.pull_request.title" in proc.stdout  # untrusted input in a script
    assert "SC2086" in proc.stdout  # shellcheck ran: unquoted variable


def test_zizmor_finds_nothing_of_medium_severity_or_above():
    assert severe(zizmor(GITHUB)) == []


def test_zizmor_ignores_only_what_is_justified():
    # Without inline ignores, the one finding left is the workflow_run trigger of the comment
    # workflow, which is safe by construction (test_comment_workflow_never_touches_pr_code).
    assert set(severe(zizmor(GITHUB, no_ignores=True))) == ZIZMOR_ALLOWED_IGNORES


def test_zizmor_flags_a_bad_workflow(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\npermissions: write-all\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
        "        with: {ref: '${{ github.event.pull_request.head.sha }}'}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    found = {ident for ident, _ in severe(zizmor(bad))}
    assert {"template-injection", "unpinned-uses", "dangerous-triggers"} <= found


# -- the comment script, run for real against a stand-in `gh` ------------------------------------

FAKE_GH = """\
#!{python}
# Stand-in for the GitHub CLI: answers the two reads, records the writes.
import json, os, sys
from pathlib import Path
state = Path(os.environ["FAKE_GH_STATE"])
args = sys.argv[1:]
if "--method" in args:
    method = args[args.index("--method") + 1]
    path = next(a for a in args if a.startswith("repos/"))
    field = args[args.index("-F") + 1]
    assert field.startswith("body=@"), field
    body = Path(field[len("body=@"):]).read_text()
    with (state / "calls.jsonl").open("a") as f:
        f.write(json.dumps([method, path, body]) + "\\n")
    print("{{}}")
elif "--paginate" in args:
    sys.stdout.write((state / "comment_ids").read_text())
else:
    print((state / "head_sha").read_text())
"""


def comment_script() -> str:
    (job,) = jobs(load_file(COMMENT)).values()
    return steps(job)[-1]["run"]


def run_comment(
    tmp_path: Path,
    *,
    pr_number: str = "7",
    pr_head: str = "a" * 40,
    comment_ids: str = "",
    reports: dict[str, str] | None = None,
    linked_reports: dict[str, Path] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    state, bin_dir, temp = tmp_path / "state", tmp_path / "bin", tmp_path / "runner-temp"
    for d in (state, bin_dir, temp / "artifacts" / "pr-meta"):
        d.mkdir(parents=True)
    (state / "head_sha").write_text(pr_head)
    (state / "comment_ids").write_text(comment_ids)
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(0o755)
    (temp / "artifacts" / "pr-meta" / "pr-number").write_text(pr_number)
    for name, text in (reports or {}).items():
        (temp / "artifacts" / f"report-{name}").mkdir()
        (temp / "artifacts" / f"report-{name}" / "report.md").write_text(text)
    for name, target in (linked_reports or {}).items():
        (temp / "artifacts" / f"report-{name}").mkdir()
        (temp / "artifacts" / f"report-{name}" / "report.md").symlink_to(target)
    script = tmp_path / "step.sh"
    script.write_text(comment_script())
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GH_STATE": str(state),
        "RUNNER_TEMP": str(temp),
        "GH_TOKEN": "unused",
        "REPO": "org/repo",
        "HEAD_SHA": "a" * 40,
        "RUN_URL": "https://example.invalid/run/1",
        "CONCLUSION": "failure",
    }
    # The shell GitHub uses for `run:` on Linux runners.
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls_file = state / "calls.jsonl"
    calls = (
        [json.loads(x) for x in calls_file.read_text().splitlines()] if calls_file.exists() else []
    )
    return proc, calls


HOSTILE = "## ticket-json\n$(touch pwned) `touch pwned2` ${HOME} '; rm -rf / #\n"


def test_comment_is_created_once_with_the_reports_as_plain_data(tmp_path: Path):
    proc, calls = run_comment(tmp_path, reports={"ticket-json": HOSTILE, "other": "## other\n"})
    assert proc.returncode == 0, proc.stderr
    ((method, path, body),) = calls
    assert (method, path) == ("POST", "repos/org/repo/issues/7/comments")
    assert body.startswith("<!-- adapter-registry-report -->\n")
    assert HOSTILE in body and "## other" in body  # verbatim: nothing expanded
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_comment_updates_the_existing_one(tmp_path: Path):
    proc, calls = run_comment(tmp_path, comment_ids="123\n456\n", reports={"a": "## a\n"})
    assert proc.returncode == 0, proc.stderr
    assert [c[:2] for c in calls] == [["PATCH", "repos/org/repo/issues/comments/123"]]


def test_comment_is_capped_below_githubs_limit(tmp_path: Path):
    proc, calls = run_comment(tmp_path, reports={f"a{i}": "x" * 40_000 for i in range(3)})
    assert proc.returncode == 0, proc.stderr
    assert len(calls[0][2].encode()) <= 60_000


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("a newer push moved the PR head", {"pr_head": "b" * 40}),
        ("no report in the run", {"reports": {}}),
    ],
)
def test_comment_stays_silent(tmp_path: Path, case: str, kwargs: dict[str, Any]):
    kwargs.setdefault("reports", {"a": "## a\n"})
    proc, calls = run_comment(tmp_path, **kwargs)
    assert proc.returncode == 0, (case, proc.stderr)
    assert calls == [], case


def test_comment_rejects_a_forged_pr_number(tmp_path: Path):
    proc, calls = run_comment(tmp_path, pr_number="7/../../x", reports={"a": "## a\n"})
    assert proc.returncode == 1 and "does not hold a PR number" in proc.stdout
    assert calls == []


def test_comment_skips_a_symlinked_report(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not post me")
    proc, calls = run_comment(tmp_path, reports={"a": "## a\n"}, linked_reports={"b": secret})
    assert proc.returncode == 0, proc.stderr
    ((_, _, body),) = calls
    assert "## a" in body and "do not post me" not in body
