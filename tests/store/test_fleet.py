"""A fleet on the Hub test server: the reads a no-op `registry sync` makes cost requests that do
not grow with versions (each version's registry.json is read once, then kept by commit), a changed
adapter is still seen, a corrupted cache entry is never used, and `--full` re-reads everything."""

from __future__ import annotations

import json

import pytest
from hub_server import running_hub
from storekit import make_files

from registry.core.cache import cache_dir
from registry.store import open_store

ORG = "test-org"
ADAPTERS, VERSIONS = 20, 3


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    with running_hub(monkeypatch) as hub:
        yield hub


def publish_fleet(store, adapters: int, versions: int) -> list[str]:
    names = [f"a{i:03d}" for i in range(adapters)]
    for name in names:
        for v in range(versions):
            version = f"1.{v}.0"
            store.publish(name, version, make_files(version, fingerprint=f"{name}-{v}"))
        store.set_current(name, f"1.{versions - 1}.0")
    return names


def noop_sync_reads(store, names: list[str], version: str) -> dict:
    """The store reads `registry sync` makes when every declared version is published and
    current: per adapter its versions, the held manifest (conflict check) and the current
    pointer; then the list of adapters (retirement)."""
    seen = {}
    for name in names:
        infos = store.versions(name)
        held = store.manifest(name, version)
        seen[name] = ([i.fingerprint for i in infos], held.fingerprint, store.current(name))
    store.list_adapters()
    return seen


def test_a_noop_sync_reads_each_version_once_then_costs_only_refs(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, ADAPTERS, VERSIONS)
    last = f"1.{VERSIONS - 1}.0"
    hub.clear_log()
    first = noop_sync_reads(store, names, last)
    cold = len(hub.requests())
    hub.clear_log()
    again = noop_sync_reads(open_store(f"hf://{ORG}"), names, last)  # a new process, same cache
    warm = len(hub.requests())
    assert again == first
    assert first["a000"] == (["a000-0", "a000-1", "a000-2"], "a000-2", last)
    # warm: no registry.json is downloaded again; what is left does not grow with versions
    assert not [p for _, p in hub.requests() if p.endswith("registry.json")], hub.requests()
    print(f"20 x 3 no-op sync reads: cold {cold} requests, warm {warm}")
    assert warm <= 3 * ADAPTERS + 1, (cold, warm)
    assert warm < cold / 2, (cold, warm)


def test_a_new_version_and_a_moved_pointer_are_still_seen(hub):
    store = open_store(f"hf://{ORG}")
    publish_fleet(store, 2, 2)
    assert store.current("a001") == "1.1.0"
    store.publish("a001", "1.2.0", make_files("1.2.0", fingerprint="new"))
    assert [v.fingerprint for v in store.versions("a001")][-1] == "new"
    store.set_current("a001", "1.0.0")  # a rollback moves main to another commit
    assert store.current("a001") == "1.0.0"


def test_a_corrupted_cache_entry_is_dropped_and_read_again(hub):
    store = open_store(f"hf://{ORG}")
    publish_fleet(store, 1, 1)
    assert store.manifest("a000", "1.0.0").fingerprint == "a000-0"
    entries = list(cache_dir("manifests").rglob("*.json"))
    assert entries
    for entry in entries:  # forge the fingerprint without fixing the entry's blob id
        data = json.loads(entry.read_text())
        data["text"] = data["text"].replace("a000-0", "forged")
        entry.write_text(json.dumps(data))
    hub.clear_log()
    assert store.manifest("a000", "1.0.0").fingerprint == "a000-0"
    assert [p for _, p in hub.requests() if p.endswith("registry.json")]


def test_trust_cache_false_re_reads_every_manifest(hub):
    store = open_store(f"hf://{ORG}")
    publish_fleet(store, 2, 3)
    store.versions("a000")
    hub.clear_log()
    store.trust_cache = False  # what `registry sync --full` sets
    store.versions("a000")
    fetched = [p for m, p in hub.requests() if m == "GET" and p.endswith("registry.json")]
    assert len(fetched) == 3, hub.requests()
