"""Main's recent history: which versions were declared, and a checkout of any of those commits.

`registry sync` reconciles more than HEAD: when several merges land in a burst, CI queues one
sync and GitHub cancels the pending runs in between, so a version declared by an intermediate
merge would never be published. Sync therefore walks the last N first-parent commits of main
and publishes every declared version the store is missing, from a worktree of the commit that
declared it (data restored by DVC from the shared cache).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from registry.core.git import run_dvc, run_git, try_git
from registry.errors import RegistryError
from registry.spec.loader import load_light


@dataclass(frozen=True)
class Declared:
    commit: str
    name: str
    version: str


def _git(root: Path, *args: str) -> str:
    return run_git(root, *args, error=RegistryError).decode()


def is_git_repo(root: Path) -> bool:
    return (try_git(root, "rev-parse", "--is-inside-work-tree") or b"").strip() == b"true"


def declared_versions(root: Path, max_commits: int) -> list[Declared]:
    """(commit, name, version) declared by the last `max_commits` first-parent commits that
    touched adapters/, oldest first; only the spec files those commits changed are read."""
    if max_commits <= 0 or not is_git_repo(root):
        return []
    log = _git(
        root, "log", "--first-parent", f"-n{max_commits}", "--format=%H", "--", "adapters/"
    ).split()
    found: list[Declared] = []
    for commit in reversed(log):
        changed = _git(
            root,
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "-r",
            "-m",
            "--first-parent",
            commit,
            "--",
            "adapters/",
        ).split()
        for path in sorted(set(changed)):
            if not path.endswith("/adapter.yaml"):
                continue
            text = try_git(root, "show", f"{commit}:{path}")
            if text is None:  # deleted in this commit
                continue
            try:
                data = load_light(text)  # bounded: history may hold any text
                found.append(Declared(commit, str(data["name"]), str(data["version"])))
            except (yaml.YAMLError, KeyError, TypeError):
                continue  # an invalid historical spec was never publishable
    return found


@contextlib.contextmanager
def checkout(root: Path, commit: str) -> Iterator[Path]:
    """A temporary worktree at `commit` with its DVC data restored from root's cache."""
    tmp = Path(tempfile.mkdtemp(prefix="registry-wt-"))
    tree = tmp / "tree"
    _git(root, "worktree", "add", "--detach", "-q", str(tree), commit)
    try:
        if (tree / "datasets.dvc").exists():
            run_dvc(tree, "cache", "dir", "--local", str((root / ".dvc" / "cache").resolve()))
            try:
                run_dvc(tree, "checkout", "-q")
            except RegistryError:
                try:  # not in root's cache: the remote may have it
                    run_dvc(tree, "pull", "-q")
                except RegistryError as exc:
                    raise RegistryError(f"cannot restore data of {commit[:12]}: {exc}") from None
        yield tree
    finally:
        try_git(root, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
