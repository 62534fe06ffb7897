"""The store semantics, the same tests for both backends: a local directory and the Hub (the real
huggingface_hub client against tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from hub_server import FakeHub, running_hub
from storekit import make_files

from registry.artifact import REGISTRY_JSON
from registry.errors import Conflict, InvalidInput
from registry.store import open_store
from registry.store.base import Store

ORG = "test-org"


@dataclass
class Backend:
    kind: str
    store: Store
    hub: FakeHub | None = None
    root: Path | None = None

    def reopen(self) -> Store:
        """A second client of the same store (another process would have its own)."""
        return open_store(self.store.url)


@pytest.fixture(params=["local", "hub"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "local":
        root = tmp_path / "store"
        yield Backend("local", open_store(f"file://{root}"), root=root)
    else:
        with running_hub(monkeypatch) as hub:
            yield Backend("hub", open_store(f"hf://{ORG}"), hub=hub)


def read_dir(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def leave_untagged_commit(backend: Backend, name: str, version: str, files: dict) -> None:
    """What a publisher killed after writing the version's commit but before its tag leaves."""
    if backend.kind == "local":
        from registry.store.local import commit_id

        commit = backend.root / name / "commits" / commit_id(files)
        commit.mkdir(parents=True)
        for fname, data in files.items():
            (commit / fname).write_bytes(data)
        (backend.root / name / "tags").mkdir()
        half = backend.root / name / ".tmp" / "commit-killed"  # and a half-written staging dir
        half.mkdir(parents=True)
        (half / "adapter_model.safetensors").write_bytes(b"partial")
    else:
        from huggingface_hub import CommitOperationAdd, HfApi

        api = HfApi(endpoint=backend.hub.url, token=False)
        repo = f"{ORG}/{name}"
        api.create_repo(repo)
        api.create_branch(repo, branch=f"registry-staging-v{version}")
        ops = [CommitOperationAdd(fname, data) for fname, data in files.items()]
        api.create_commit(
            repo, ops, commit_message="killed", revision=f"registry-staging-v{version}"
        )


def test_publish_then_versions_then_download_exact_bytes(backend, tmp_path):
    files = make_files("1.0.0")
    result = backend.store.publish("demo", "1.0.0", files)
    assert result.status == "published" and result.version == "1.0.0" and result.commit
    [info] = backend.store.versions("demo")
    assert (info.name, info.version, info.commit) == ("demo", "1.0.0", result.commit)
    assert info.fingerprint == "fp-1" and info.gate_passed is True
    assert info.created_at == "2025-01-02T03:04:05+00:00"
    assert backend.store.download("demo", "1.0.0", tmp_path / "out") == result.commit
    assert read_dir(tmp_path / "out") == files


def test_republish_same_fingerprint_is_exists_even_with_another_card(backend):
    first = backend.store.publish("demo", "1.0.0", make_files("1.0.0"))
    again = make_files("1.0.0")
    again["README.md"] = b"---\nlibrary_name: peft\n---\n# reworded card\n"
    second = backend.reopen().publish("demo", "1.0.0", again)
    assert (second.status, second.commit) == ("exists", first.commit)
    assert [v.commit for v in backend.store.versions("demo")] == [first.commit]


def test_other_fingerprint_is_a_conflict_and_changes_nothing(backend, tmp_path):
    files = make_files("1.0.0")
    backend.store.publish("demo", "1.0.0", files)
    with pytest.raises(Conflict, match="another fingerprint"):
        backend.store.publish("demo", "1.0.0", make_files("1.0.0", "fp-2", b"\x01" * 64))
    backend.store.download("demo", "1.0.0", tmp_path / "out")
    assert read_dir(tmp_path / "out") == files


def test_versions_sort_by_semver(backend):
    for version in ["1.10.0", "1.2.0", "1.2.0-rc.1"]:
        backend.store.publish("demo", version, make_files(version, f"fp-{version}"))
    assert [v.version for v in backend.store.versions("demo")] == ["1.2.0-rc.1", "1.2.0", "1.10.0"]


def test_current_pointer_moves_forward_and_back(backend):
    store = backend.store
    store.publish("demo", "1.0.0", make_files("1.0.0"))
    store.publish("demo", "1.1.0", make_files("1.1.0", "fp-b"))
    assert store.current("demo") is None  # publishing alone never moves the pointer
    assert store.set_current("demo", "1.1.0") is True
    assert store.set_current("demo", "1.1.0") is False
    assert backend.reopen().current("demo") == "1.1.0"
    assert store.set_current("demo", "1.0.0") is True  # a rollback
    assert store.current("demo") == "1.0.0"
    with pytest.raises(InvalidInput, match="not published"):
        store.set_current("demo", "9.9.9")
    assert store.current("demo") == "1.0.0"


def test_retire_keeps_versions_pullable(backend, tmp_path):
    store = backend.store
    files = make_files("1.0.0")
    store.publish("demo", "1.0.0", files)
    store.set_current("demo", "1.0.0")
    assert store.list_adapters() == ["demo"] and store.is_retired("demo") is False
    assert store.retire("demo") is True
    assert store.retire("demo") is False
    assert store.is_retired("demo") and store.current("demo") is None
    assert store.list_adapters() == ["demo"]  # retired adapters are still listed
    store.download("demo", "1.0.0", tmp_path / "out")
    assert read_dir(tmp_path / "out") == files
    assert store.set_current("demo", "1.0.0") is True  # declaring it again un-retires
    assert not store.is_retired("demo") and store.current("demo") == "1.0.0"


def test_unknown_adapter(backend, tmp_path):
    store = backend.store
    assert store.list_adapters() == [] and store.versions("nope") == []
    assert store.current("nope") is None and store.is_retired("nope") is False
    assert store.retire("nope") is False
    with pytest.raises(InvalidInput, match="not published"):
        store.download("nope", "1.0.0", tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "version", "change"),
    [
        ("../escape", "1.0.0", None),
        ("demo", "1.0", None),
        ("demo", "1.0.0/../../x", None),
        ("demo", "1.0.0", {"adapter_model.bin": b"pickle"}),
        ("demo", "1.0.0", {REGISTRY_JSON: b'{"no": "fingerprint"}'}),
    ],
)
def test_bad_input_is_refused_before_any_write(backend, name, version, change):
    files = {**make_files("1.0.0"), **(change or {})}
    with pytest.raises(InvalidInput):
        backend.store.publish(name, version, files)
    assert backend.store.list_adapters() == []


def test_a_commit_without_its_tag_is_invisible_and_a_rerun_completes(backend, tmp_path):
    files = make_files("1.0.0")
    leave_untagged_commit(backend, "demo", "1.0.0", files)
    assert backend.store.versions("demo") == []
    with pytest.raises(InvalidInput, match="not published"):
        backend.store.download("demo", "1.0.0", tmp_path / "out")
    assert backend.store.publish("demo", "1.0.0", files).status == "published"
    backend.store.download("demo", "1.0.0", tmp_path / "out")
    assert read_dir(tmp_path / "out") == files
    if backend.kind == "local":  # the killed writer's staging leftovers are cleaned
        assert list((backend.root / "demo" / ".tmp").iterdir()) == []


def _race(backend: Backend, payloads: list[dict]) -> list:
    """Publish each payload from its own thread and client, all released at once."""
    barrier = threading.Barrier(len(payloads))
    outcomes: list = [None] * len(payloads)

    def run(i: int) -> None:
        store = backend.reopen()
        barrier.wait()
        try:
            outcomes[i] = store.publish("demo", "1.0.0", payloads[i]).status
        except Exception as err:  # noqa: BLE001  (the outcome is what the test checks)
            outcomes[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_concurrent_publishers_of_the_same_content_make_one_version(backend, tmp_path):
    files = make_files("1.0.0")
    outcomes = _race(backend, [files] * 4)
    assert sorted(outcomes) == ["exists", "exists", "exists", "published"], outcomes
    [info] = backend.store.versions("demo")
    assert backend.store.download("demo", "1.0.0", tmp_path / "out") == info.commit
    assert read_dir(tmp_path / "out") == files


def test_concurrent_publishers_of_other_content_one_wins_the_rest_conflict(backend, tmp_path):
    payloads = [make_files("1.0.0", f"fp-{i}", bytes([i]) * 64) for i in range(3)]
    outcomes = _race(backend, payloads)
    winners = [i for i, o in enumerate(outcomes) if o == "published"]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, Conflict) for i, o in enumerate(outcomes) if i != winners[0])
    backend.store.download("demo", "1.0.0", tmp_path / "out")
    assert read_dir(tmp_path / "out") == payloads[winners[0]]


PUBLISH_IN_PROCESS = """
import json, os, sys, time
from pathlib import Path
from registry.store.local import LocalStore
root, go, hang_at, payload = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
files = {k: v.encode("latin-1") for k, v in payload.items()}
if hang_at:  # stop for good at this system call, where a kill -9 will find the publisher
    def hang(*args):
        print("at", hang_at, flush=True)
        time.sleep(120)
    setattr(os, hang_at, hang)
while not go.exists():
    time.sleep(0.005)
print(LocalStore(root).publish("demo", "1.0.0", files).status)
"""


def start_publisher(root: Path, go: Path, files: dict, hang_at: str = "") -> subprocess.Popen:
    payload = json.dumps({k: v.decode("latin-1") for k, v in files.items()})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISH_IN_PROCESS, str(root), str(go), hang_at, payload],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_local_concurrent_processes_make_one_version(tmp_path):
    root, go = tmp_path / "store", tmp_path / "go"
    procs = [start_publisher(root, go, make_files("1.0.0")) for _ in range(4)]
    go.touch()
    statuses = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert statuses == ["exists", "exists", "exists", "published"]
    [info] = open_store(f"file://{root}").versions("demo")
    assert info.fingerprint == "fp-1"


@pytest.mark.parametrize("hang_at", ["fsync", "replace", "link"])
def test_local_publisher_killed_mid_publish_leaves_no_version(tmp_path, hang_at):
    """kill -9 while staging files (fsync), before the commit's rename (os.replace), before the
    tag's link."""
    root, go, files = tmp_path / "store", tmp_path / "go", make_files("1.0.0")
    go.touch()
    proc = start_publisher(root, go, files, hang_at)
    assert proc.stdout.readline().strip() == f"at {hang_at}"
    proc.kill()
    proc.wait(timeout=10)
    store = open_store(f"file://{root}")
    assert store.versions("demo") == []
    with pytest.raises(InvalidInput, match="not published"):
        store.download("demo", "1.0.0", tmp_path / "out")
    assert store.publish("demo", "1.0.0", files).status == "published"
    store.download("demo", "1.0.0", tmp_path / "out")
    assert read_dir(tmp_path / "out") == files
    assert list((root / "demo" / ".tmp").iterdir()) == []  # the killed writer's leftovers


def test_hub_version_commits_never_move_main_and_current_is_main(tmp_path, monkeypatch):
    """`main` is the pointer: from_pretrained("org/name") must get exactly the current files."""
    with running_hub(monkeypatch) as hub:
        store = open_store(f"hf://{ORG}")
        files = make_files("1.0.0")
        store.publish("demo", "1.0.0", files)
        repo = hub.repos[f"{ORG}/demo"]
        assert set(repo.commits[repo.branches["main"]].files) == {".gitattributes"}
        assert set(repo.branches) == {"main"}  # the staging branch is gone
        store.set_current("demo", "1.0.0")
        main_files = repo.commits[repo.branches["main"]].files
        assert {k: v for k, v in main_files.items() if k != ".gitattributes"} == files
        assert repo.tags == {"v1.0.0": repo.tags["v1.0.0"]}  # the tag did not move
        store.retire("demo")
        assert set(repo.commits[repo.branches["main"]].files) == {".gitattributes", "RETIRED.md"}
