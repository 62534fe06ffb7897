"""`registry init [DIR]`: a new registry repository for a team, its CI pinned to this tool.

The new repository holds no copy of the tool. Its workflows call the reusable workflows of the
tool's GitHub repository (`TOOL_REPO/.github/workflows/registry-{pr,publish}.yml`), pinned by the
same commit they install the tool from (`tool-ref`), so upgrading is that one commit replaced.

Invariants:
- Never loses data: DIR must be absent, empty, or a fresh clone without a commit (only `.git`).
  If a step fails, what init created is removed again (a `.git` that was there stays).
- The pin defaults to the commit of the tool's own git checkout when the running package comes
  from one, else to its version tag `vX.Y.Z`, which works but can move (a warning says so).
- Templates are package resources (resources/init/); every `__KEY__` placeholder is replaced
  (checked), and the values are checked against strict patterns first, so none can break out of
  the YAML or Markdown it lands in.
- The result is one commit on `main`: git and DVC initialised, a local DVC remote (default
  `<DIR>/../<name>-dvc-remote`), `datasets.dvc` tracking an empty `datasets/`, and the JSON
  Schema of the spec generated from the pydantic model (registry.spec.schema.json_schema).
- git and DVC run through registry.core.git (run_git / try_git, run_dvc), never directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from registry import __version__
from registry.core.git import run_dvc, run_git, try_git
from registry.errors import InvalidInput, Problem, RegistryError

# resource under resources/init/ -> path in the new repository (resources carry no dot-names,
# which package-data globs skip)
FILES = {
    "README.md": "README.md",
    "gitignore": ".gitignore",
    "dvcignore": ".dvcignore",
    "gitkeep": "adapters/.gitkeep",
    "github/workflows/pr.yml": ".github/workflows/pr.yml",
    "github/workflows/publish.yml": ".github/workflows/publish.yml",
    "github/workflows/pr-comment.yml": ".github/workflows/pr-comment.yml",
    "github/actionlint.yaml": ".github/actionlint.yaml",
    "github/CODEOWNERS": ".github/CODEOWNERS",
}
SCHEMA_PATH = "schema/adapter.schema.json"
REUSABLE = ("registry-pr.yml", "registry-publish.yml")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_GITHUB_URL = re.compile(
    r"^(?:https://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"(?P<repo>[^/]+/[^/]+?)(?:\.git)?/?$"
)
PLACEHOLDER = re.compile(r"__[A-Z_]+__")


@dataclass(frozen=True)
class ToolCheckout:
    """The git checkout the running `registry` package comes from, if any."""

    root: Path
    commit: str
    dirty: bool  # uncommitted changes to tracked files of the tool
    on_remote: bool  # HEAD is on a remote-tracking branch (so probably pushed)
    github_repo: str | None  # OWNER/NAME of `origin`, when it is on GitHub


@dataclass
class InitResult:
    root: Path
    tool_repo: str
    tool_ref: str
    dvc_remote: Path
    commit: str
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"Initialised the adapter registry {self.root} (commit {self.commit[:12]} on main)\n"
            f"  CI: {self.tool_repo}/.github/workflows/registry-{{pr,publish}}.yml"
            f"@{self.tool_ref}\n"
            f"  DVC remote (local, for trying it out): {self.dvc_remote}\n"
            'Next: push it to GitHub, then README.md, "Set-up (once)": DVC remote, runners,\n'
            "the `publish` environment and its HF_TOKEN, branch protection. Add an adapter:\n"
            f"  cd {self.root} && registry new NAME --data FILE.jsonl"
        )


def parse_github_repo(url: str) -> str | None:
    """OWNER/NAME of a GitHub remote URL (https, ssh or scp-like), else None."""
    match = _GITHUB_URL.match(url.strip())
    if match and GITHUB_REPO.match(match["repo"]):
        return match["repo"]
    return None


def tool_checkout() -> ToolCheckout | None:
    """The checkout holding this very package (an editable install, as `make install` makes)."""
    package = Path(__file__).resolve().parents[1]
    top = try_git(package, "rev-parse", "--show-toplevel")
    if top is None or Path(os.fsdecode(top.strip())).resolve() != package.parent:
        return None
    root = package.parent
    if try_git(root, "ls-files", "--error-unmatch", "registry/__init__.py") is None:
        return None  # a package copied into some other repository, not the tool's checkout
    commit = _text(try_git(root, "rev-parse", "HEAD")).strip()
    if not COMMIT.match(commit):
        return None
    status = _text(try_git(root, "status", "--porcelain", "--untracked-files=no"))
    origin = try_git(root, "remote", "get-url", "origin")
    return ToolCheckout(
        root=root,
        commit=commit,
        dirty=bool(status.strip()),
        on_remote=bool(_text(try_git(root, "branch", "-r", "--contains", commit)).strip()),
        github_repo=parse_github_repo(_text(origin)) if origin is not None else None,
    )


def _text(out: bytes | None) -> str:
    """git's output as text ("" when it failed)."""
    return out.decode(errors="replace") if out is not None else ""


def _resolve_tool(
    tool_repo: str | None,
    tool_ref: str | None,
    checkout: ToolCheckout | None,
    warnings: list[str],
) -> tuple[str, str]:
    if tool_repo is None:
        tool_repo = checkout.github_repo if checkout else None
        if tool_repo is None:
            raise InvalidInput(
                [
                    Problem(
                        "--tool-repo",
                        "the tool's GitHub repository is unknown (this copy of lora-registry "
                        "has no GitHub `origin`)",
                        hint="pass --tool-repo OWNER/NAME: the repository whose reusable "
                        "workflows the new registry calls",
                    )
                ]
            )
    if not GITHUB_REPO.match(tool_repo):
        raise InvalidInput([Problem("--tool-repo", f"{tool_repo!r} is not OWNER/NAME")])
    if tool_ref is None:
        tool_ref = checkout.commit if checkout else f"v{__version__}"
        if checkout and checkout.dirty:
            warnings.append(
                f"the tool's checkout {checkout.root} has uncommitted changes; the workflows "
                f"pin its HEAD {tool_ref}, which does not hold them"
            )
        if checkout and not checkout.on_remote:
            warnings.append(
                f"commit {tool_ref} is on no remote-tracking branch of {checkout.root}: push it "
                f"to {tool_repo}, or the workflows cannot find it"
            )
    if not (COMMIT.match(tool_ref) or TAG.match(tool_ref)):
        raise InvalidInput(
            [Problem("--tool-ref", f"{tool_ref!r}: give a 40-hex commit (or a vX.Y.Z tag)")]
        )
    if not COMMIT.match(tool_ref):
        warnings.append(
            f"the workflows are pinned to the tag {tool_ref}, which can be moved; pin the "
            f"commit instead: `git ls-remote https://github.com/{tool_repo} "
            f"refs/tags/{tool_ref}`, then `registry init --tool-ref <commit>`"
        )
    return tool_repo, tool_ref


def _version_at(checkout: ToolCheckout | None, ref: str) -> str | None:
    """`vX.Y.Z` of the tool at commit `ref`, when the running checkout has that commit."""
    if checkout is None or not COMMIT.match(ref):
        return None
    if ref == checkout.commit:
        return f"v{__version__}"
    shown = try_git(checkout.root, "show", f"{ref}:pyproject.toml")
    match = re.search(r'^version\s*=\s*"([^"]+)"', _text(shown), re.M)
    return f"v{match[1]}" if shown is not None and match and TAG.match(match[1]) else None


def _check_destination(dest: Path) -> bool:
    """True when DEST is a fresh clone to reuse; raise unless it is absent or empty."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInput([Problem(str(dest), "exists and is not a folder")])
    entries = sorted(p.name for p in dest.iterdir()) if dest.exists() else []
    if not entries:
        return False
    if entries == [".git"] and try_git(dest, "rev-parse", "--verify", "-q", "HEAD") is None:
        return True  # `git clone` of an empty GitHub repository: nothing to lose
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise InvalidInput(
        [
            Problem(
                str(dest),
                f"is not empty ({shown}); `registry init` makes a new repository and never "
                "writes over files",
                hint="run it in an empty folder, or in a fresh clone of an empty repository",
            )
        ]
    )


def _render(text: str, values: dict[str, str], name: str) -> str:
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    left = PLACEHOLDER.findall(text)
    if left:  # a template bug, not the user's input
        raise RegistryError(f"template {name}: placeholders left unreplaced: {sorted(set(left))}")
    return text


def _remove_created(dest: Path, created_dest: bool, remote: Path, created_remote: bool) -> None:
    if created_dest:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.exists():
        # a fresh clone: only its .git was there before, and it had no commit
        for entry in dest.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    if created_remote and remote.exists():
        shutil.rmtree(remote, ignore_errors=True)


def init_repo(
    dest: str | Path,
    tool_repo: str | None = None,
    tool_ref: str | None = None,
    dvc_remote: str | Path | None = None,
) -> InitResult:
    """Make a new registry repository at `dest` (see the module docstring)."""
    dest = Path(dest).absolute()
    warnings: list[str] = []
    checkout = tool_checkout()
    tool_repo, tool_ref = _resolve_tool(tool_repo, tool_ref, checkout, warnings)
    version = _version_at(checkout, tool_ref)
    reuse_git = _check_destination(dest)
    remote = (
        Path(dvc_remote) if dvc_remote else dest.parent / f"{dest.name}-dvc-remote"
    ).absolute()
    if remote == dest or dest in remote.parents:
        raise InvalidInput(
            [
                Problem(
                    "--dvc-remote", f"{remote} is inside the new repository; use a folder outside"
                )
            ]
        )
    if try_git(Path("."), "var", "GIT_COMMITTER_IDENT") is None:
        raise InvalidInput(
            [
                Problem(
                    "git config",
                    "git does not know who you are: the first commit needs a name and email",
                    hint='git config --global user.name "..." && git config --global '
                    'user.email "..."',
                )
            ]
        )

    values = {
        "NAME": dest.name,
        "TOOL_REPO": tool_repo,
        "TOOL_REF": tool_ref,
        # Dependabot and reviewers read `# vX.Y.Z` after a SHA pin; a tag pin says it already.
        "PIN": tool_ref + (f" # {version}" if version else ""),
        "TOOL_VERSION": version
        or ("a tag: pin its commit instead" if TAG.match(tool_ref) else "given with --tool-ref"),
        "DVC_REMOTE": str(remote),
    }
    created_dest, created_remote = not dest.exists(), not remote.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        remote.mkdir(parents=True, exist_ok=True)
        if reuse_git:
            run_git(dest, "symbolic-ref", "HEAD", "refs/heads/main", error=RegistryError)
        else:
            run_git(dest, "init", "-q", "-b", "main", error=RegistryError)
        run_dvc(dest, "init", "-q")
        run_dvc(dest, "remote", "add", "-d", "local", str(remote))
        templates = resources.files("registry").joinpath("resources/init")
        for source, target in FILES.items():
            path = dest / target
            path.parent.mkdir(parents=True, exist_ok=True)
            text = templates.joinpath(source).read_text("utf-8")
            path.write_text(_render(text, values, source), "utf-8")
        from registry.spec.schema import json_schema

        (dest / SCHEMA_PATH).parent.mkdir(parents=True)
        (dest / SCHEMA_PATH).write_text(json.dumps(json_schema(), indent=2) + "\n", "utf-8")
        (dest / "datasets").mkdir()
        run_dvc(dest, "add", "-q", "datasets")
        run_git(dest, "add", "-A", error=RegistryError)
        message = f"Initialise the adapter registry (registry init, {tool_repo}@{tool_ref})"
        run_git(dest, "commit", "-q", "-m", message, error=RegistryError)
        commit = run_git(dest, "rev-parse", "HEAD", error=RegistryError).decode().strip()
    except BaseException:
        _remove_created(dest, created_dest, remote, created_remote)
        raise
    return InitResult(dest, tool_repo, tool_ref, remote, commit, warnings)


@dataclass(frozen=True)
class Pin:
    """One call of the tool's reusable workflow in a registry repository's workflows."""

    workflow: str  # file name under .github/workflows/
    job: str
    uses_repo: str
    uses_ref: str
    tool_repo: str | None  # the `with: tool-repo` input
    tool_ref: str | None  # the `with: tool-ref` input


def read_pins(root: str | Path) -> list[Pin]:
    """Every call of registry-pr.yml / registry-publish.yml under `root/.github/workflows/`."""
    pins = []
    for path in sorted((Path(root) / ".github" / "workflows").glob("*.y*ml")):
        workflow = yaml.safe_load(path.read_text("utf-8")) or {}
        for job_id, job in (workflow.get("jobs") or {}).items():
            uses = str(job.get("uses", ""))
            target, _, ref = uses.partition("@")
            repo, _, file = target.partition("/.github/workflows/")
            if file not in REUSABLE or not ref:
                continue
            inputs = job.get("with") or {}
            pins.append(
                Pin(path.name, job_id, repo, ref, inputs.get("tool-repo"), inputs.get("tool-ref"))
            )
    return pins
