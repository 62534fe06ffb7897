"""Reliability beyond the single faults of test_store_faults.py: kill -9 at every request of a Hub
publish, faults at every request of a pull, several `registry sync` processes at once, and
hostile folders at scale (thousands of files, files bigger than the limits, sparse so they cost
no disk). The Hub is tests/hub_server.py driven by the real huggingface_hub client.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import hub_server
import pytest
from gitrepo import Repo, add_toy
from hub_server import FakeHub, Fault, Request, running_hub
from storekit import PUBLISH_SEQUENCE, SHA, STEPS, make_adapter_dir, normalized

from registry.artifact import MAX_FILE_BYTES, MAX_FILES, check_safetensors, verify_folder
from registry.errors import InvalidInput, StoreError
from registry.store import open_store
from registry.store.hub import HubStore
from registry.store.publish import build_version_files, check_publishable, publish_version
from registry.store.pull import pull

pytestmark = pytest.mark.reliability

ORG, NAME, REPO = "test-org", "demo", "test-org/demo"
SECRET = "hf_reliabilitySECRETtoken"
ROOT = Path(__file__).resolve().parents[1]


class ScriptedHub(FakeHub):
    """The test server acting on requests by *number* (1-based since the last clear_log).
    FakeHub.inject matches paths, but a pull asks for registry.json at two commits and a kill
    must land at one exact request, so counting is the precise way to say "the k-th request".

    fault_at/kind: request k fails with `kind`; sticky: so does every retry of it (same method
    and path), until the retries are spent. fault_each: every distinct request fails once, the
    first time it is made. stall_at: request k is held until `release` is set, then meets `fate`
    ("lost": applied, the reply dropped; "reset": dropped unapplied). hold: (method, path regex,
    barrier): the first `parties` matching requests wait for each other, so that many clients
    race from the same point (later ones, e.g. retries, pass).
    """

    def __init__(self) -> None:
        super().__init__()
        self.script()
        self.hold: tuple[str, str, threading.Barrier] | None = None
        self.held = 0
        self.reached, self.release = threading.Event(), threading.Event()
        self.stalled: threading.Thread | None = None

    def script(self, **settings: object) -> None:
        self.fault_at, self.kind, self.sticky, self.fault_each = None, None, False, None
        self.stall_at, self.fate, self.delay = None, "lost", 0.1
        self.__dict__.update(settings)
        self.sticky_key: tuple[str, str] | None = None
        self.seen: set[tuple[str, str]] = set()
        self.faulted: list[tuple[str, str]] = []

    def _fault_for(self, entry: Request) -> Fault | None:
        with self._lock:
            injected = super()._fault_for(entry)
            number, key = len(self.log), (entry.method, entry.path)
            kind = None
            if number == self.fault_at or key == self.sticky_key:
                kind = self.kind
                self.sticky_key = key if self.sticky else None
            elif self.fault_each and key not in self.seen:
                kind = self.fault_each
            self.seen.add(key)
            if kind:
                self.faulted.append(key)
            hold = (
                self.hold and self.hold[0] == entry.method and re.search(self.hold[1], entry.path)
            )
            if hold:
                self.held += 1
                hold = self.held <= self.hold[2].parties
        if hold:
            with suppress(threading.BrokenBarrierError):
                self.hold[2].wait()
        if number == self.stall_at:
            self.stalled = threading.current_thread()
            self.reached.set()
            self.release.wait(60)
            kind = self.fate
        if injected or kind is None:
            return injected
        return Fault(entry.method, re.compile(""), kind, 1, 0, self.delay, 0)


@contextmanager
def scripted_hub(mp: pytest.MonkeyPatch) -> Iterator[ScriptedHub]:
    """running_hub with a ScriptedHub; huggingface_hub's 1 s pause before it resumes a dropped
    download is shortened like its other backoffs (running_hub's fast clock)."""
    import huggingface_hub.file_download as hf_download

    mp.setattr(hub_server, "FakeHub", ScriptedHub)  # the class running_hub starts
    mp.setattr(hf_download, "time", hub_server._FastClock())
    with running_hub(mp) as hub:
        yield hub


@pytest.fixture
def hub(monkeypatch):
    with scripted_hub(monkeypatch) as hub:
        yield hub


@pytest.fixture(scope="module")
def version_files(tmp_path_factory) -> dict[str, bytes]:
    """The exact bytes `registry publish` sends for a real (tiny) adapter: built once, so a
    killed publish and its rerun send the same files (published_at is in registry.json)."""
    adapter = make_adapter_dir(tmp_path_factory.mktemp("adapter"), name=NAME)
    provenance, report = check_publishable(NAME, adapter)
    return build_version_files(provenance, report, adapter, REPO)


def tagged_state(hub: FakeHub, repo_id: str) -> dict:
    """What a reader can see in a repo: the files of every tag, the branches, main's files."""
    repo = hub.repos[repo_id]

    def files(oid: str) -> dict[str, bytes]:
        return {k: v for k, v in repo.commits[oid].files.items() if k != ".gitattributes"}

    return {
        "tags": {tag: files(oid) for tag, oid in repo.tags.items()},
        "branches": set(repo.branches),
        "main": files(repo.branches["main"]),
    }


def pull_every_version(store, files: dict[str, bytes], tmp_path: Path) -> list[str]:
    """Every listed version downloads and verifies (sha256 against its manifest) to `files`."""
    listed = [info.version for info in store.versions(NAME)]
    for version in listed:
        out = tmp_path / f"pulled-{version}-{time.monotonic_ns()}"
        pulled = pull(f"{NAME}@{version}", store, out=out, no_cache=True)
        assert {p.name: p.read_bytes() for p in pulled.path.iterdir()} == files
    return listed


# ---- 1. kill -9 of a Hub publisher at each of its requests ----

# One process pays for the imports; each publish is a fork of it, killed by its pid. The files
# come from a folder so the killed run and the rerun send the same bytes.
PUBLISHER = """
import json, os, sys
from pathlib import Path
from registry.store.hub import HubStore
for line in sys.stdin:
    job = json.loads(line)
    files = {p.name: p.read_bytes() for p in Path(job["files"]).iterdir()}
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            store = HubStore(job["org"], endpoint=job["endpoint"])
            store.publish(job["name"], "1.0.0", files)
            code = 0
        finally:
            os._exit(code)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_XET": "1", **extra}


@pytest.fixture(scope="module")
def publisher(tmp_path_factory, version_files):
    folder = tmp_path_factory.mktemp("version")
    for fname, data in version_files.items():
        (folder / fname).write_bytes(data)
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    yield proc, folder
    proc.stdin.close()
    proc.wait(timeout=30)


# Killing while request k is held, then letting the server apply it ("lost"), leaves the state
# after requests 1..k; a kill before request 1 ("reset" at 1) leaves nothing. Together: the
# state after every prefix of the publish, each time with the publisher gone for good.
KILL_POINTS = [(k, "lost") for k in range(1, len(STEPS) + 1)] + [(1, "reset")]


@pytest.mark.parametrize(
    ("k", "fate"), KILL_POINTS, ids=[f"{STEPS[k - 1]}-{fate}" for k, fate in KILL_POINTS]
)
def test_kill_9_at_each_request_of_a_hub_publish(
    hub, publisher, version_files, tmp_path, monkeypatch, k, fate
):
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    proc, folder = publisher
    hub.script(stall_at=k, fate=fate)
    job = {"org": ORG, "name": NAME, "endpoint": hub.url, "files": str(folder)}
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.flush()
    pid = int(proc.stdout.readline())
    try:
        assert hub.reached.wait(60), "the publisher never reached the request to kill it at"
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        status = int(proc.stdout.readline())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    hub.release.set()
    hub.stalled.join(10)
    _, method, path = PUBLISH_SEQUENCE[k - 1]
    assert normalized(hub)[k - 1] == (method, path)  # the kill landed at the named step

    store = open_store(f"hf://{ORG}")
    tag_k = STEPS.index("tag") + 1  # the version exists once the tag request was applied
    tagged = k > tag_k or (k == tag_k and fate == "lost")
    assert pull_every_version(store, version_files, tmp_path) == (["1.0.0"] if tagged else [])
    if REPO in hub.repos:  # never a tag over partial files, main never touched by a version
        state = tagged_state(hub, REPO)
        assert all(files == version_files for files in state["tags"].values())
        assert state["main"] == {}

    rerun = store.publish(NAME, "1.0.0", version_files)
    assert rerun.status == ("exists" if tagged else "published")
    open_store("hf://clean-org").publish(NAME, "1.0.0", version_files)
    final, clean = tagged_state(hub, REPO), tagged_state(hub, "clean-org/demo")
    assert final == clean == {"tags": {"v1.0.0": version_files}, "branches": {"main"}, "main": {}}
    assert pull_every_version(store, version_files, tmp_path) == ["1.0.0"]


# ---- 2. faults at every request of a Hub pull ----

# The requests of `pull("demo")` (the current version): resolve (versions, current), download.
PULL_SEQUENCE = [
    ("versions:refs", "GET", f"/api/models/{REPO}/refs"),
    ("versions:manifest-head", "HEAD", f"/{REPO}/resolve/{SHA}/registry.json"),
    ("versions:manifest-get", "GET", f"/{REPO}/resolve/{SHA}/registry.json"),
    ("current:refs", "GET", f"/api/models/{REPO}/refs"),
    ("current:main-tree", "GET", f"/api/models/{REPO}/revision/{SHA}"),
    ("current:manifest-head", "HEAD", f"/{REPO}/resolve/{SHA}/registry.json"),
    ("current:manifest-get", "GET", f"/{REPO}/resolve/{SHA}/registry.json"),
    ("download:refs", "GET", f"/api/models/{REPO}/refs"),
    ("download:tree", "GET", f"/api/models/{REPO}/revision/{SHA}"),
] + [
    (f"download:{fname}-{method.lower()}", method, f"/{REPO}/resolve/{SHA}/{fname}")
    for fname in ["README.md", "adapter_config.json", "adapter_model.safetensors", "registry.json"]
    for method in ["HEAD", "GET"]
]
PULL_STEPS = [step for step, _, _ in PULL_SEQUENCE]


@pytest.fixture(scope="module")
def published_hub(version_files):
    """One Hub holding demo 1.0.0 as the current version; pulls only read it."""
    with pytest.MonkeyPatch.context() as mp:
        with scripted_hub(mp) as hub:
            store = open_store(f"hf://{ORG}")
            store.publish(NAME, "1.0.0", version_files)
            store.set_current(NAME, "1.0.0")
            yield hub


@pytest.fixture
def pull_hub(published_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))  # every test pulls cold
    monkeypatch.setenv("HF_TOKEN", SECRET)
    published_hub.script()
    published_hub.clear_faults()
    published_hub.clear_log()
    return published_hub


def check_pulled(pulled, files: dict[str, bytes]) -> None:
    assert pulled.version == "1.0.0"
    assert {p.name: p.read_bytes() for p in pulled.path.iterdir()} == files


def test_pull_request_sequence(pull_hub, version_files):
    check_pulled(pull(NAME, HubStore(ORG)), version_files)
    assert normalized(pull_hub) == [(m, p) for _, m, p in PULL_SEQUENCE]
    assert all(r.authorization == f"Bearer {SECRET}" for r in pull_hub.log)


@pytest.mark.parametrize("kind", ["500", "reset", "lost", "429", "slow"])
def test_a_transient_fault_at_every_request_of_a_pull_is_retried(pull_hub, version_files, kind):
    """Every distinct request fails (or is slow) the first time: all are retried, bytes verify."""
    pull_hub.script(fault_each=kind)
    check_pulled(pull(NAME, HubStore(ORG)), version_files)
    clean = {(m, p) for _, m, p in PULL_SEQUENCE}
    assert {(m, re.sub(r"[0-9a-f]{40}", SHA, p)) for m, p in pull_hub.faulted} == clean


PERSISTENT = [(k, kind) for k in range(1, len(PULL_STEPS) + 1) for kind in ("500", "reset")]
PERSISTENT += [(k, kind) for k in (1, 5, 10, 15) for kind in ("lost", "429")]


@pytest.mark.parametrize(
    ("k", "kind"), PERSISTENT, ids=[f"{PULL_STEPS[k - 1]}-{kind}" for k, kind in PERSISTENT]
)
def test_spent_retries_in_a_pull_fail_cleanly_and_leave_no_cache_entry(
    pull_hub, version_files, k, kind
):
    from registry.store.pull import _cache_path

    store = HubStore(ORG)
    pull_hub.script(fault_at=k, kind=kind, sticky=True)
    with pytest.raises(StoreError) as caught:
        pull(NAME, store)
    message = str(caught.value)
    assert "\n" not in message and "failed" in message and SECRET not in message
    # retried (by us, and on downloads by huggingface_hub too), then given up
    # file downloads get one retry of ours (huggingface_hub resumes transfers itself)
    (request,) = set(pull_hub.faulted)
    tries = min(store.retries, 1) + 1 if "/resolve/" in request[1] else store.retries + 1
    assert len(pull_hub.faulted) >= tries
    commit = pull_hub.repos[REPO].tags["v1.0.0"]
    entry = _cache_path(store, NAME, commit)
    assert not entry.exists()  # nothing a later pull could trust
    assert not entry.parent.exists() or list(entry.parent.iterdir()) == []  # no temp leftovers
    pull_hub.script()
    check_pulled(pull(NAME, store), version_files)


def test_cli_pull_with_spent_retries_is_one_line_and_exit_1(pull_hub, tmp_path):
    pull_hub.inject("GET", r"/refs$", "500", times=None)  # by path: the CLI makes other calls
    env = child_env(
        HF_ENDPOINT=pull_hub.url,
        HF_TOKEN=SECRET,
        REGISTRY_CACHE=str(tmp_path / "cache"),
        REGISTRY_HUB_RETRIES="2",
        REGISTRY_HUB_BACKOFF="0.001",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "registry", "pull", NAME, "--store", f"hf://{ORG}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "list refs failed after 3 attempts" in proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stderr
    refs = [r for r in pull_hub.log if r.path.endswith("/refs")]
    assert len(refs) == 3 and refs[0].authorization == f"Bearer {SECRET}"  # the token was sent


# ---- 3. several `registry sync` processes at once ----


@pytest.fixture(scope="module")
def synced_repo(tmp_path_factory, tiny_model, registry_cache):
    """A git registry declaring toy 1.0.0, its adapter trained and evaluated once, in a cache of
    its own (sharing the converted models) so every sync reuses weights and report."""
    import torch

    from registry.evaluate.run import evaluate
    from registry.spec.schema import load_spec
    from registry.train import train

    tmp = tmp_path_factory.mktemp("sync")
    cache = tmp / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(registry_cache / "models")
    repo = Repo(tmp / "registry", "", {"REGISTRY_CACHE": str(cache)})
    repo.root.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "ci@example.com")
    repo.git("config", "user.name", "CI")
    add_toy(repo, steps=12)
    (repo.root / ".gitignore").write_text("/runs/\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "Add toy 1.0.0")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGISTRY_CACHE", str(cache))
        # One thread: on two busy cores, torch's second thread spins and doubles the CPU bill.
        torch.set_num_threads(1)
        try:
            spec = load_spec(repo.root / "adapters" / "toy" / "adapter.yaml")
            result = train(spec, progress=False)  # the shared cache entry: sync copies it
            assert evaluate(spec, result.adapter_dir, progress=False).passed
        finally:
            torch.set_num_threads(threads)
    return repo


def run_syncs(repo: Repo, url: str, n: int = 3, **env: str) -> list[list[dict]]:
    """n `registry sync` processes started together; each one's JSON actions."""
    cmd = [sys.executable, "-m", "registry", "sync", "--store", url, "--quiet", "--json"]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=repo.root,
            env={**repo.env, "PYTHONPATH": str(ROOT), **env},  # this checkout's registry
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "Traceback" not in err, f"{proc.returncode}\n{out}\n{err}"
        assert SECRET not in out + err
        results.append(json.loads(out))
    return results


def check_one_winner(results: list[list[dict]]) -> None:
    """Every process reconciled toy 1.0.0; exactly one made the version, the rest found it."""
    details = []
    for actions in results:
        [action] = actions
        assert (action["name"], action["declared"]) == ("toy", "1.0.0")
        assert action["action"] in ("published", "current", "promote"), action
        details.append(action["detail"])
    assert sum(", published at " in d for d in details) == 1, details


def check_store(store, tmp_path: Path) -> None:
    [info] = store.versions("toy")
    assert info.version == "1.0.0" and store.current("toy") == "1.0.0"
    pulled = pull("toy", store, out=tmp_path / "pulled", no_cache=True)  # verifies every sha256
    assert (pulled.version, pulled.commit) == ("1.0.0", info.commit)


@pytest.mark.slow
def test_three_syncs_at_once_on_a_local_store(synced_repo, tmp_path):
    url = (tmp_path / "store").as_uri()
    check_one_winner(run_syncs(synced_repo, url))
    check_store(open_store(url), tmp_path)


@pytest.mark.slow
def test_three_syncs_at_once_on_the_hub(synced_repo, hub, tmp_path):
    hub.hold = ("POST", r"^/api/repos/create$", threading.Barrier(3, timeout=120))
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": SECRET, "HF_HUB_DISABLE_XET": "1"}
    env |= {"REGISTRY_HUB_RETRIES": "2", "REGISTRY_HUB_BACKOFF": "0.01"}
    check_one_winner(run_syncs(synced_repo, f"hf://{ORG}", **env))
    assert not hub.hold[2].broken  # the three really raced from create_repo on
    check_store(open_store(f"hf://{ORG}"), tmp_path)
    state = tagged_state(hub, f"{ORG}/toy")
    assert set(state["tags"]) == {"v1.0.0"} and state["branches"] == {"main"}
    assert state["main"] == state["tags"]["v1.0.0"]  # main holds the current version's files


# ---- 4. hostile folders at scale ----

MEMORY_BOUND = 16 << 20  # tracemalloc peak; reading a hostile file whole would be gigabytes
TIME_BOUND = 5.0  # seconds: a refusal is a few stat calls; the rest is room for a busy machine


def bounded(fn, *args, **kwargs):
    """fn's result, or the InvalidInput it raised, checked to come within the time and memory
    bounds (tracemalloc counts every Python allocation, file contents read included)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except InvalidInput as err:
        result = err
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seconds < TIME_BOUND and peak < MEMORY_BOUND, (seconds, peak)
    return result


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that costs no disk: `head`, then a hole."""
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def sparse_safetensors(path: Path, data_bytes: int) -> Path:
    """A safetensors file with a consistent header over `data_bytes` bytes of (sparse) data."""
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}
    )
    head = len(header).to_bytes(8, "little") + header.encode()
    return sparse(path, len(head) + data_bytes, head)


@pytest.fixture
def local_version(tmp_path, monkeypatch):
    """toy 1.0.0 in a local store, pulled once: (store, the pulled cache entry, its files)."""
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    store = open_store((tmp_path / "store").as_uri())
    publish_version("toy", make_adapter_dir(tmp_path / "adapter"), store)
    pulled = pull("toy@1.0.0", store)
    return store, pulled.path, {p.name: p.read_bytes() for p in pulled.path.iterdir()}


# A hostile folder: what is done to it, and what the refusal must say (before any hashing).
HOSTILE = {
    "5000-files": f"5004 files; an adapter folder holds at most {MAX_FILES}",
    "oversized-weights": "adapter_model.safetensors is larger than",
    "oversized-manifest": "registry.json is larger than",
}


def poison(folder: Path, what: str) -> None:
    if what == "5000-files":
        for i in range(5000):
            (folder / f"junk-{i:04d}.json").write_bytes(b"{}")
    elif what == "oversized-weights":
        sparse_safetensors(folder / "adapter_model.safetensors", MAX_FILE_BYTES)
    else:  # read whole by verify: it must be refused by its size, not loaded
        sparse(folder / "registry.json", 1 << 30, b'{"files": {')


@pytest.mark.parametrize("what", HOSTILE)
def test_verify_refuses_a_hostile_folder_before_hashing(local_version, what):
    _, entry, _ = local_version
    poison(entry, what)
    err = bounded(verify_folder, entry)
    assert isinstance(err, InvalidInput) and str(entry) in str(err)
    assert HOSTILE[what] in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("what", HOSTILE)
def test_a_poisoned_cache_entry_is_dropped_and_pulled_again(local_version, what):
    """pull verifies its cache entry before use: a hostile one is dropped in bounded time and
    the version is downloaded again, verified."""
    store, entry, files = local_version
    poison(entry, what)
    pulled = bounded(pull, "toy@1.0.0", store)
    assert pulled.path == entry
    assert {p.name: p.read_bytes() for p in entry.iterdir()} == files


def test_oversized_weights_with_a_consistent_header_are_refused(tmp_path):
    path = sparse_safetensors(tmp_path / "adapter_model.safetensors", MAX_FILE_BYTES)
    err = bounded(check_safetensors, path)
    assert isinstance(err, InvalidInput) and "larger than" in str(err)


def test_publish_refuses_oversized_weights_before_reading_them(tmp_path):
    adapter = make_adapter_dir(tmp_path / "adapter")
    sparse_safetensors(adapter / "adapter_model.safetensors", MAX_FILE_BYTES)
    store = open_store((tmp_path / "store").as_uri())
    err = bounded(publish_version, "toy", adapter, store)
    assert isinstance(err, InvalidInput) and "larger than" in str(err)
    assert store.list_adapters() == []


def test_publish_refuses_a_crowded_folder_before_reading_it(local_version, tmp_path):
    store, _, _ = local_version
    adapter = make_adapter_dir(tmp_path / "crowded", version="1.1.0", seed=1)
    for i in range(5000):
        (adapter / f"checkpoint-{i:04d}.json").write_bytes(b"{}")
    err = bounded(publish_version, "toy", adapter, store)
    assert isinstance(err, InvalidInput)
    assert f"files; an adapter folder holds at most {MAX_FILES}" in str(err)
    assert [v.version for v in store.versions("toy")] == ["1.0.0"]


def test_pull_takes_only_the_version_files_from_a_crowded_store_entry(local_version, tmp_path):
    """Thousands of junk files inside a store's version never travel: the store serves only
    the allowed names, and the pulled folder verifies."""
    store, _, files = local_version
    (commit_dir,) = [p for p in (store.root / "toy" / "commits").iterdir() if p.is_dir()]
    for i in range(5000):
        (commit_dir / f"junk-{i:04d}.bin").write_bytes(b"\x80pickle")
    pulled = bounded(pull, "toy@1.0.0", store, no_cache=True)
    assert sorted(p.name for p in pulled.path.iterdir()) == sorted(files)
