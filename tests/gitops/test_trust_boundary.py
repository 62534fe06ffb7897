"""The trust boundary, driven as the workflows drive it, in temporary git + DVC repos.

Layout as on a runner: the tool checked out at the workspace root, the registry repo in
`repo/`, the PR head's commit in `pr-head/`. The tool is this project's interpreter (.venv,
linked as `<workspace>/.venv`) with the workspace root's `registry/` first on PYTHONPATH, which
is what `make install`'s editable install amounts to: whichever checkout holds `registry/` is
the code that runs. The registry repo carries a copy of this project's `registry/` (as this
repository does), so a PR can edit the gate in it.

The step scripts are read from .github/workflows/registry-pr.yml and registry-publish.yml and
run with bash in each step's working directory, with the job's environment; only `make
install`, the actions (checkout, artifacts) and conditional steps are done by the test itself.

Each attack is first shown to work against the old arrangement (the PR head's own tool; one
cache shared by PR jobs and publishing), so every assertion here can fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import TOY_SPEC, toy_records, write_jsonl
from safetensors.numpy import load_file, save_file

from registry.core.fs import sha256_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
VENV = Path(sys.executable).parent.parent
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
FORGED_GATE = "return GateVerdict(True, results)  # the PR's 'fix': every gate passes"
TRUSTED_REMOTE_CONFIG = "trusted"


@dataclass
class Step:
    name: str
    returncode: int
    output: str


def job(workflow: str, name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][name]


def run_job(
    workflow: str,
    name: str,
    ws: Path,
    env: dict[str, str],
    values: dict[str, str],
    *,
    stop: str | None = None,
) -> list[Step]:
    """Run the job's `run:` steps (not the tool install, not conditional ones) until one fails.

    `values` resolves the `${{ }}` expressions the steps' env uses; an unknown one fails the
    test, so a workflow change that this test does not model cannot pass unnoticed.
    """
    spec = job(workflow, name)
    default_dir = spec.get("defaults", {}).get("run", {}).get("working-directory", ".")
    done = []
    for step in spec["steps"]:
        if "run" not in step or step["run"].startswith("make install") or "if" in step:
            continue
        step_env = {}
        for key, value in (step.get("env") or {}).items():
            if value not in values:
                pytest.fail(f"{workflow} {name} / {step['name']}: unknown value {value}")
            step_env[key] = values[value]
        cwd = ws / step.get("working-directory", default_dir)
        proc = subprocess.run(
            [*BASH, step["run"]],
            cwd=cwd,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        done.append(Step(step["name"], proc.returncode, proc.stdout + proc.stderr))
        if proc.returncode != 0 or step["name"] == stop:
            break
    return done


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def tool(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cwd / ".venv" / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


class World:
    """An origin repo with a base commit (tool + DVC config) and PR branches off it."""

    def __init__(self, root: Path, models: Path) -> None:
        self.root, self.models = root, models
        self.origin = root / "origin"
        self.trusted_remote, self.attacker_remote = root / "dvc-remote", root / "attacker-remote"
        self.origin.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "HF_"))},
            "HF_HOME": str(root / "hf-home"),
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        g = self.origin
        git(g, "init", "-q", "-b", "main")
        git(g, "config", "user.email", "ci@example.com")
        git(g, "config", "user.name", "CI")
        self.dvc(g, "init", "-q")
        self.dvc(g, "remote", "add", "-d", TRUSTED_REMOTE_CONFIG, str(self.trusted_remote))
        shutil.copytree(
            ROOT / "registry", g / "registry", ignore=shutil.ignore_patterns("__pycache__")
        )
        (g / ".gitignore").write_text("/out/\n/runs/\n/.venv\n")
        git(g, "add", "-A")
        git(g, "commit", "-q", "-m", "base: the tool and the DVC remote")
        self.base = git(g, "rev-parse", "HEAD")

    def dvc(self, cwd: Path, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}{proc.stderr}"

    def pr(self, branch: str, spec: str, change=None) -> str:
        """A PR branch off the base adding adapters/toy and its data (pushed to the remote)."""
        g = self.origin
        git(g, "checkout", "-q", "-b", branch, self.base)
        (g / "adapters" / "toy").mkdir(parents=True)
        (g / "adapters" / "toy" / "adapter.yaml").write_text(spec)
        write_jsonl(g / "datasets/toy/train.jsonl", toy_records(64, seed=1))
        write_jsonl(g / "datasets/toy/eval.jsonl", toy_records(16, seed=2, offset=1000))
        self.dvc(g, "add", "-q", "datasets")
        self.dvc(g, "push", "-q")
        if change:
            change(g)
        git(g, "add", "-A")
        git(g, "commit", "-q", "-m", f"PR {branch}")
        head = git(g, "rev-parse", "HEAD")
        git(g, "checkout", "-q", "main")
        shutil.rmtree(g / "datasets", ignore_errors=True)
        return head

    def merge(self, branch: str) -> str:
        git(self.origin, "merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}")
        return git(self.origin, "rev-parse", "HEAD")

    def clone(self, dest: Path, rev: str, branch: str = "main") -> Path:
        """A checkout of `rev` holding only `branch`'s history (as actions/checkout makes it)."""
        subprocess.run(
            ["git", "clone", "-q", "--single-branch", "-b", branch, str(self.origin), str(dest)],
            check=True,
        )
        git(dest, "checkout", "-q", "--detach", rev)
        return dest

    def workspace(self, name: str, tool_rev: str, repo_rev: str, head: tuple[str, str] | None):
        """The runner's workspace: tool at the root, registry in repo/, the head in pr-head/."""
        ws = self.clone(self.root / name, tool_rev)
        (ws / ".venv").symlink_to(VENV)
        self.clone(ws / "repo", repo_rev)
        if head:
            self.clone(ws / "pr-head", head[1], branch=head[0])
        return ws

    def cache(self, name: str) -> Path:
        """A REGISTRY_CACHE of its own, sharing only the converted tiny model."""
        cache = self.root / f"cache-{name}"
        cache.mkdir()
        (cache / "models").symlink_to(self.models)
        return cache

    def job_env(self, ws: Path, cache: Path) -> dict[str, str]:
        return {
            **self.env,
            "PYTHONPATH": str(ws),  # the tool's registry/, as its editable install would
            "REGISTRY_CACHE": str(cache),
            "RUNNER_TEMP": str(ws / "_temp"),
            "ADAPTER": "toy",
        }

    def pr_job(self, name: str, head: tuple[str, str], cache: Path) -> tuple[Path, list[Step]]:
        ws = self.workspace(name, self.base, self.base, head)
        values = {"${{ github.event.pull_request.head.sha }}": head[1], "${{ inputs.store }}": ""}
        return ws, run_job("registry-pr.yml", "train-eval", ws, self.job_env(ws, cache), values)

    def publish_job(self, name: str, cache: Path, adopt: Path | None = None) -> tuple[str, str]:
        """registry-publish.yml's sync job on main; returns (sync output, published sha256)."""
        main = git(self.origin, "rev-parse", "main")
        ws = self.workspace(name, main, main, None)
        (ws / "_temp").mkdir()
        if adopt:
            shutil.copytree(adopt, ws / "_temp" / "adopt")
        store = f"file://{self.root / f'store-{name}'}"
        values = {"${{ secrets.HF_TOKEN }}": "", "${{ inputs.store }}": store}
        env = self.job_env(ws, cache)
        steps = run_job("registry-publish.yml", "sync", ws, env, values)
        assert [s.name for s in steps] == ["dvc pull", "registry validate", "registry sync"]
        assert all(s.returncode == 0 for s in steps), steps[-1].output
        # Pulled through a cache of its own: the publish cache then holds only what sync made.
        env["REGISTRY_CACHE"] = str(self.cache(f"{name}-pull"))
        pulled = tool(ws, env, "registry", "pull", "toy@1.0.0", "--store", store, "--out", "pulled")
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        return steps[-1].output, sha256_file(ws / "pulled" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, registry_cache: Path, tiny_model) -> World:
    return World(tmp_path_factory.mktemp("trust"), registry_cache / "models")


def impossible_gate() -> str:
    spec = TOY_SPEC.format(max_steps=12)
    assert "min_delta_vs_base: 0.1}" in spec
    return spec.replace("min_delta_vs_base: 0.1}", "min_delta_vs_base: 50.0}")  # nats of loss


def test_a_pr_that_rewrites_the_gate_still_fails_it(world: World):
    def attack(repo: Path) -> None:
        gate = repo / "registry" / "evaluate" / "gate.py"
        text = gate.read_text()
        honest = re.compile(r"return GateVerdict\(all\(r\.passed for r in results\), results\)")
        assert honest.search(text), "gate.py changed: update this test's forged gate"
        gate.write_text(honest.sub(FORGED_GATE, text))
        # ... and send `dvc pull` (with the runner's credentials) to a remote of its own.
        world.dvc(repo, "remote", "add", "-f", "-d", "attacker", str(world.attacker_remote))
        world.dvc(repo, "push", "-q")

    head = ("pr-gate", world.pr("pr-gate", impossible_gate(), attack))

    # Before: the job ran the PR head's own checkout (`make install` of its registry/): passes.
    old = world.clone(world.root / "old", head[1], branch="pr-gate")
    (old / ".venv").symlink_to(VENV)
    env = world.job_env(old, world.cache("old"))
    for args in (
        ("dvc", "pull"),
        ("registry", "validate", "adapters/toy"),
        ("registry", "train", "toy", "--out", "out/toy", "--quiet"),
    ):
        proc = tool(old, env, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    forged = tool(old, env, "registry", "eval", "toy", "--adapter", "out/toy", "--quiet")
    assert forged.returncode == 0, "the forged gate should pass: " + forged.stdout + forged.stderr
    assert "attacker" in (old / ".dvc" / "config").read_text()

    # Now: the base commit's tool and .dvc/config judge it; only specs and data came over.
    shutil.rmtree(world.attacker_remote)  # so `dvc pull` can only succeed from the trusted one
    ws, steps = world.pr_job("new", head, world.cache("pr-new"))
    assert [(s.name, s.returncode) for s in steps] == [
        ("registry take-pr", 0),
        ("dvc pull", 0),
        ("registry validate", 0),
        ("registry train", 0),
        ("registry eval", 3),
    ], steps[-1].output
    assert "gate failed" in steps[-1].output
    assert not (ws / "pr-head").exists()  # deleted before anything ran
    repo = ws / "repo"
    assert git(repo, "status", "--porcelain", "--", "registry", ".dvc") == ""
    assert "attacker" not in (repo / ".dvc" / "config").read_text()
    assert (repo / "adapters" / "toy" / "adapter.yaml").read_text() == impossible_gate()


@pytest.fixture(scope="module")
def honest(world: World) -> tuple[World, Path, Path]:
    """An honest PR trained and evaluated by the PR job, then merged: (world, PR cache, out)."""
    head = ("pr-honest", world.pr("pr-honest", TOY_SPEC.format(max_steps=12)))
    pr_cache = world.cache("pr")
    ws, steps = world.pr_job("honest", head, pr_cache)
    assert all(s.returncode == 0 for s in steps), steps[-1].output
    assert [s.name for s in steps][-1] == "registry eval"
    world.merge("pr-honest")
    return world, pr_cache, ws / "repo" / "out" / "toy"


def artifact(out: Path, dest: Path) -> Path:
    """What the PR job uploads as adopt-toy (its upload step's paths), downloaded to dest/toy."""
    paths = job("registry-pr.yml", "train-eval")["steps"][-1]["with"]["path"].split()
    (dest / "toy").mkdir(parents=True)
    for pattern in paths:
        shutil.copy2(out / Path(pattern).name, dest / "toy" / Path(pattern).name)
    return dest


def test_forged_weights_in_the_pr_cache_are_not_published(honest):
    world, pr_cache, out = honest
    fingerprint = json.loads((out / "registry.json").read_text())["fingerprint"]
    # PR code wrote into its own jobs' cache: weights of its choosing under the fingerprint
    # main's spec will have, with the honest run's passing report beside them.
    (entry,) = [
        p.parent
        for p in pr_cache.rglob("registry.json")
        if json.loads(p.read_text()).get("fingerprint") == fingerprint and "artifacts" in p.parts
    ]
    tensors = load_file(str(entry / "adapter_model.safetensors"))
    save_file(
        {k: v * 0 + 3.0 for k, v in tensors.items()}, str(entry / "adapter_model.safetensors")
    )
    shutil.copy2(out / "report.json", entry / "report.json")
    forged = sha256_file(entry / "adapter_model.safetensors")

    # Before: publishing read the PR jobs' cache, and shipped the forged weights.
    output, published = world.publish_job("shared-cache", pr_cache)
    assert published == forged, output

    # Now: the publish job's own cache; it trains and evaluates itself.
    output, published = world.publish_job("own-cache", world.cache("publish"))
    assert published != forged
    assert "trained" in output and "reused" not in output, output


def test_a_genuine_pr_artifact_is_adopted_without_training(honest, tmp_path: Path):
    world, _, out = honest
    cache = world.cache("adopt-genuine")
    output, published = world.publish_job("adopt-genuine", cache, artifact(out, tmp_path))
    assert "adopted the PR run's weights and evaluation" in output, output
    assert published == sha256_file(out / "adapter_model.safetensors")
    assert not any(cache.rglob("adapter_model.safetensors"))  # nothing was trained


def flip_a_byte(folder: Path) -> None:
    weights = folder / "toy" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # in the tensor data: the header stays valid
    weights.write_bytes(bytes(data))


def wrong_fingerprint(folder: Path) -> None:
    for name in ("registry.json", "report.json"):  # consistently: the two agree with each other
        path = folder / "toy" / name
        doc = json.loads(path.read_text())
        doc["fingerprint"] = "sha256:" + "0" * 64
        path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (flip_a_byte, "its files are not the ones its report judged (sha256)"),
        (wrong_fingerprint, "its fingerprint is not the one main's spec and data give"),
    ],
    ids=["flipped-byte", "wrong-fingerprint"],
)
def test_a_tampered_pr_artifact_is_trained_again(honest, tmp_path: Path, tamper, reason: str):
    world, _, out = honest
    adopt = artifact(out, tmp_path)
    tamper(adopt)
    tampered = sha256_file(adopt / "toy" / "adapter_model.safetensors")
    name = f"adopt-{tamper.__name__}"
    output, published = world.publish_job(name, world.cache(name), adopt)
    assert f"not adopted ({reason}); trained" in output, output
    if tamper is flip_a_byte:
        assert published != tampered
