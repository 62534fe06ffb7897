"""The GitOps loop end to end: the workflows' command sequence in a temporary git + DVC repo.

Every step runs the real `registry` CLI in a subprocess, as the PR and publish workflows do:
PR: plan --json -> dvc pull -> validate -> train -> eval (the gate); main: validate -> sync.
Covered: publish on merge, pull by version, rollback by `git revert` (no training), a burst of
three merges synced once (all three versions published), and retirement of a deleted spec,
against the local store and against the Hub test server with the real huggingface_hub client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TOY_SPEC, toy_records, write_jsonl

pytestmark = pytest.mark.slow


class Repo:
    def __init__(self, root: Path, store_url: str, env: dict[str, str]) -> None:
        self.root, self.store_url = root, store_url
        base = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
        self.env = {**base, **env, "REGISTRY_STORE": store_url}
        self.transcript: list[str] = []  # everything every command printed

    def sh(self, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True)
        self.transcript += [proc.stdout, proc.stderr]
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def git(self, *args: str) -> str:
        return self.sh("git", *args).stdout.strip()

    def dvc(self, *args: str) -> None:
        self.sh(sys.executable, "-m", "dvc", *args)

    def registry(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        return self.sh(sys.executable, "-m", "registry", *args, ok=ok)

    def spec(self, name: str = "toy") -> dict:
        return yaml.safe_load((self.root / "adapters" / name / "adapter.yaml").read_text())

    def write_spec(self, data: dict, name: str = "toy") -> None:
        path = self.root / "adapters" / name / "adapter.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def pr(self, branch: str, title: str, change) -> None:
        """Open a PR: a branch with one commit; CI's PR job runs on it."""
        self.git("checkout", "-q", "-b", branch, "main")
        change()
        self.dvc("add", "-q", "datasets")
        self.dvc("push", "-q")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", title)

    def pr_ci(self) -> list[dict]:
        """The PR workflow: plan -> (per matrix entry) validate, train, eval."""
        plan = json.loads(self.registry("plan", "--base", "main", "--json").stdout)
        for entry in plan["matrix"]["include"]:
            name = entry["name"]
            self.dvc("pull", "-q")
            self.registry("validate", f"adapters/{name}")
            self.registry("train", name, "--out", f"out/{name}", "--quiet")
            gate = self.registry(
                "eval", name, "--adapter", f"out/{name}", "--quiet", "--against-current", ok=False
            )
            assert gate.returncode == 0, gate.stdout + gate.stderr
        return plan["adapters"]

    def merge(self, branch: str) -> str:
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}")
        return self.git("rev-parse", "HEAD")

    def sync(self) -> list[dict]:
        """The publish workflow: validate, then sync."""
        self.registry("validate", "--no-tokens")
        proc = self.registry("sync", "--quiet", "--json")
        return json.loads(proc.stdout)

    def versions(self, name: str = "toy") -> list[dict]:
        return json.loads(self.registry("versions", name, "--json").stdout)


def make_repo(tmp_path: Path, store_url: str, env: dict[str, str]) -> Repo:
    root = tmp_path / "registry"
    root.mkdir()
    repo = Repo(root, store_url, env)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "ci@example.com")
    repo.git("config", "user.name", "CI")
    repo.dvc("init", "-q")
    repo.dvc("remote", "add", "-d", "local", str(tmp_path / "dvc-remote"))
    (root / ".gitignore").write_text("/out/\n/runs/\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "init")
    return repo


def add_toy(repo: Repo, steps: int = 12) -> None:
    (repo.root / "adapters" / "toy").mkdir(parents=True)
    (repo.root / "adapters" / "toy" / "adapter.yaml").write_text(TOY_SPEC.format(max_steps=steps))
    write_jsonl(repo.root / "datasets/toy/train.jsonl", toy_records(64, seed=1))
    write_jsonl(repo.root / "datasets/toy/eval.jsonl", toy_records(16, seed=2, offset=1000))


def bump(repo: Repo, version: str, **lora) -> None:
    spec = repo.spec()
    spec["version"] = version
    spec["lora"].update(lora)
    repo.write_spec(spec)


def actions(result: list[dict]) -> dict[tuple[str, str | None], str]:
    return {(a["name"], a["declared"]): a["action"] for a in result}


def test_pr_merge_publish_pull_revert_burst_retire(tmp_path: Path):
    repo = make_repo(tmp_path, (tmp_path / "store").as_uri(), {})

    # PR 1: a new adapter. CI trains and gates it; merge; sync publishes it.
    repo.pr("add-toy", "Add toy 1.0.0", lambda: add_toy(repo))
    (entry,) = repo.pr_ci()
    assert entry["action"] == "new"
    repo.merge("add-toy")
    result = repo.sync()
    assert actions(result) == {("toy", "1.0.0"): "published"}
    # the PR's evaluation (same weights, eval config, previous version) is reused, not redone
    assert "reused cached weights and their evaluation" in result[0]["detail"]
    assert [v["version"] for v in repo.versions()] == ["1.0.0"]
    pulled = repo.registry("pull", "toy@1.0.0", "--out", str(tmp_path / "pulled"))
    assert "toy 1.0.0 @" in pulled.stdout

    # Re-running sync is a no-op.
    assert actions(repo.sync()) == {("toy", "1.0.0"): "current"}

    # PR 2: retrain as 1.1.0; merge; sync publishes and moves current.
    repo.pr("toy-r4", "toy 1.1.0", lambda: bump(repo, "1.1.0", r=4, alpha=8))
    assert repo.pr_ci()[0]["action"] == "retrain"
    merge_2 = repo.merge("toy-r4")
    result = repo.sync()
    assert actions(result) == {("toy", "1.1.0"): "published"}
    assert "and their evaluation" in result[0]["detail"]  # PR 2 compared against 1.0.0 too
    report = json.loads((repo.root / "out" / "toy" / "report.json").read_text())
    assert report["contenders"] == ["base", "adapter", "previous"]

    # Roll back by reverting the merge: no training, seconds.
    repo.git("revert", "--no-edit", "-m", "1", merge_2)
    start = time.perf_counter()
    result = repo.sync()
    assert actions(result) == {("toy", "1.0.0"): "rollback"}
    assert time.perf_counter() - start < 60
    assert [v["version"] for v in repo.versions() if v["current"]] == ["1.0.0"]
    current = repo.registry("pull", "toy", "--out", str(tmp_path / "current")).stdout
    assert current.startswith("toy 1.0.0 @")

    # A burst: three merges land before any sync runs (GitHub cancels the pending runs in
    # between); one sync publishes all three. Description-only bumps keep it fast: the
    # weights are reused by fingerprint, the versions are new.
    for i, version in enumerate(["1.2.0", "1.3.0", "1.4.0"]):

        def change(v=version):
            bump(repo, v)
            spec = repo.spec()
            spec["description"] = f"toy {v}"
            repo.write_spec(spec)

        repo.pr(f"burst-{i}", f"toy {version}", change)
        repo.merge(f"burst-{i}")
    result = actions(repo.sync())
    assert {k: v for k, v in result.items() if v == "published"} == {
        ("toy", "1.2.0"): "published",
        ("toy", "1.3.0"): "published",
        ("toy", "1.4.0"): "published",
    }
    infos = repo.versions()
    assert [v["version"] for v in infos] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
    assert [v["version"] for v in infos if v["current"]] == ["1.4.0"]

    # Deleting the spec retires the adapter; its versions stay pullable by exact version.
    repo.git("rm", "-q", "-r", "adapters/toy")
    repo.git("commit", "-q", "-m", "Retire toy")
    assert actions(repo.sync()) == {("toy", None): "retired"}
    assert repo.registry("pull", "toy", ok=False).returncode == 2
    assert repo.registry("pull", "toy@1.2.0").returncode == 0


def test_publish_and_rollback_on_the_hub_test_server(tmp_path: Path, monkeypatch):
    from hub_server import running_hub

    with running_hub(monkeypatch) as hub:
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": "hf_test_token_never_printed",
            "REGISTRY_HUB_RETRIES": "2",
            "REGISTRY_HUB_BACKOFF": "0.01",
        }
        repo = make_repo(tmp_path, "hf://acme", env)
        repo.pr("add-toy", "Add toy 1.0.0", lambda: add_toy(repo))
        repo.pr_ci()
        repo.merge("add-toy")
        assert actions(repo.sync()) == {("toy", "1.0.0"): "published"}
        # a version bump without retraining: same weights, new version, no training
        repo.pr("toy-110", "toy 1.1.0", lambda: bump(repo, "1.1.0"))
        merge = repo.merge("toy-110")
        assert actions(repo.sync()) == {("toy", "1.1.0"): "published"}
        repo.git("revert", "--no-edit", "-m", "1", merge)
        assert actions(repo.sync()) == {("toy", "1.0.0"): "rollback"}
        assert [v["version"] for v in repo.versions() if v["current"]] == ["1.0.0"]
        out = repo.registry("pull", "toy", "--out", str(tmp_path / "pulled"))
        assert out.stdout.startswith("toy 1.0.0 @")
        # the token reached every Hub call, and no command printed it
        writes = [r for r in hub.log if r.method in ("POST", "DELETE")]
        assert writes and all(
            r.authorization == "Bearer hf_test_token_never_printed" for r in writes
        )
        assert repo.transcript and not any(
            "hf_test_token_never_printed" in t for t in repo.transcript
        )
