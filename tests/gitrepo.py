"""A temporary registry repo (real git + DVC with a local remote) driven by the real CLI in
subprocesses, as the workflows drive it; shared by the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import TOY_SPEC, toy_records, write_jsonl


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


def hub_env(url: str) -> dict[str, str]:
    """The environment of a registry CLI run against the Hub test server at `url`: quick
    retries, no Xet, and a token the tests check is never printed."""
    return {
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": "hf_test_token_never_printed",
        "REGISTRY_HUB_RETRIES": "2",
        "REGISTRY_HUB_BACKOFF": "0.01",
    }


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
