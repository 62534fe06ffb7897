"""Rollback by `git revert` + `registry sync` vs retraining the version rolled back to.

In a temporary registry (real git, real DVC with a local remote, a file:// store, the `registry`
CLI in subprocesses as the publish workflow runs it): merge toy 1.0.0 and sync (trains,
evaluates, gates, publishes), merge toy 1.1.0 (other LoRA rank: retrained) and sync, then
`git revert` that merge and time the sync that rolls the store back to 1.0.0.

Compared with what a registry without immutable versions pays to go back: retraining 1.0.0
(its training wall time, recorded in the published registry.json) and, as CI would also
re-evaluate and re-gate it, the whole sync that first published it. The rollback's time does
not depend on the training budget, the retrain's grows with it: with the default tiny model
and a few steps the ratio is small; --model smollm2 makes the retrain realistic (still only a
few steps here; a real adapter trains for minutes to hours). Checked, not only timed: the
rollback's action is "rollback", current is 1.0.0 again, and no adapter was trained.

    python bench/rollback_vs_retrain.py [--model tiny|smollm2] [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import (
    BASE_MODELS,
    GIT_ENV,
    isolated_cache,
    parse_args,
    ratio,
    toy_spec,
    write_toy_data,
)


class Registry:
    """A throwaway registry repository and the commands CI runs in it."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env

    def sh(self, *cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def git(self, *args: str) -> str:
        return self.sh("git", *args).strip()

    def dvc(self, *args: str) -> None:
        self.sh(sys.executable, "-m", "dvc", *args)

    def commit_on_branch(self, branch: str, message: str, write) -> str:
        """A PR with one commit, merged with a merge commit (as GitHub does); returns the merge."""
        self.git("checkout", "-q", "-b", branch, "main")
        write()
        self.dvc("add", "-q", "datasets")
        self.dvc("push", "-q")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}")
        return self.git("rev-parse", "HEAD")

    def sync(self) -> tuple[list[dict], float]:
        """`registry sync` as the publish workflow runs it: (actions, wall seconds)."""
        start = time.perf_counter()
        out = self.sh(sys.executable, "-m", "registry", "sync", "--quiet", "--json")
        return json.loads(out), time.perf_counter() - start


def make_registry(tmp: Path, store_url: str, cache: Path) -> Registry:
    root = tmp / "registry"
    root.mkdir()
    env = {**os.environ, **GIT_ENV, "REGISTRY_STORE": store_url, "REGISTRY_CACHE": str(cache)}
    repo = Registry(root, env)
    repo.git("init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    repo.dvc("remote", "add", "-d", "local", str(tmp / "dvc-remote"))
    (root / ".gitignore").write_text("/out/\n/runs/\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "init")
    return repo


def one(actions: list[dict], want: str) -> dict:
    """The toy adapter's action, which must be `want`: a wrong action fails the bench."""
    mine = [a for a in actions if a["name"] == "toy"]
    if [a["action"] for a in mine] != [want]:
        sys.exit(f"expected one {want!r} action for toy, sync did: {json.dumps(mine)}")
    return mine[0]


def trained_artifacts(cache: Path) -> set[str]:
    folder = cache / "artifacts"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(BASE_MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=12, help="training steps of each version")
    args = parse_args(parser, {"model": "tiny", "steps": 6})
    base = BASE_MODELS[args.model]

    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as name:
        tmp = Path(name)
        cache = isolated_cache(tmp)
        store_url = (tmp / "store").as_uri()
        repo = make_registry(tmp, store_url, cache)
        spec_file = repo.root / "adapters" / "toy" / "adapter.yaml"

        def add_toy() -> None:
            spec_file.parent.mkdir(parents=True)
            spec_file.write_text(toy_spec(base, args.steps))
            write_toy_data(repo.root)

        def bump() -> None:  # another LoRA rank: new weights, so 1.1.0 is trained
            spec_file.write_text(toy_spec(base, args.steps, version="1.1.0", r=4))

        repo.commit_on_branch("add-toy", "Add toy 1.0.0", add_toy)
        publish_10, publish_10_s = repo.sync()
        publish_10 = one(publish_10, "published")
        print(f"sync published 1.0.0 in {publish_10_s:.1f} s: {publish_10['detail']}")
        merge_11 = repo.commit_on_branch("toy-r4", "toy 1.1.0", bump)
        publish_11, publish_11_s = repo.sync()
        print(f"sync published 1.1.0 in {publish_11_s:.1f} s: {one(publish_11, 'published')['detail']}")  # fmt: skip

        trained_before = trained_artifacts(cache)
        repo.git("revert", "--no-edit", "-m", "1", merge_11)
        rollback, rollback_s = repo.sync()
        rollback = one(rollback, "rollback")
        if trained_artifacts(cache) != trained_before:
            sys.exit("the rollback trained an adapter: it must only move the current pointer")
        print(f"sync after git revert: {rollback['detail']} in {rollback_s:.2f} s "
              f"({rollback['seconds']:.2f} s inside sync, the rest is interpreter start)")  # fmt: skip

        os.environ["REGISTRY_CACHE"] = str(cache)  # the library below reads the same cache
        from registry.store import open_store
        from registry.store.pull import pull

        store = open_store(store_url)
        if store.current("toy") != "1.0.0":
            sys.exit(f"after the rollback current is {store.current('toy')}, not 1.0.0")
        manifest = json.loads((pull("toy@1.0.0", store).path / "registry.json").read_text())
        train_s = manifest["training"]["wall_s"]

    print(f"\n| {base}, {args.steps} steps | seconds |")
    print("|---|---:|")
    print(f"| retrain 1.0.0 (training wall time, from its registry.json) | {train_s:.1f} |")
    print(f"| retrain + eval + gate + publish (the sync that published 1.0.0) | {publish_10_s:.1f} |")  # fmt: skip
    print(f"| rollback: sync after git revert (CLI, interpreter start included) | {rollback_s:.2f} |")  # fmt: skip
    where = f"{base.removeprefix('builtin:')}, {args.steps} training steps"
    ratio("rollback vs retrain (training only)", f"{train_s / rollback_s:.1f}x", "> 1x",
          f"training wall of 1.0.0 / `registry sync` after git revert; {where}; the retrain grows "
          "with the training budget, the rollback does not")  # fmt: skip
    ratio("rollback vs retrain + eval + publish", f"{publish_10_s / rollback_s:.1f}x", "> 1x",
          f"the sync that first published 1.0.0 / the rollback sync; {where}")  # fmt: skip


if __name__ == "__main__":
    main()
