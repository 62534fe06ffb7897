"""A fleet on the Hub test server: the reads a no-op `registry sync` makes cost requests that do
not grow with versions (each version's registry.json is read once, then kept by commit), a changed
adapter is still seen, a corrupted cache entry is never used, and `--full` re-reads everything.

In a session (what `registry sync` opens) one listing of the org replaces the per-adapter reads of
every unchanged adapter: a warm no-op costs that one request; a moved pointer, a version published
without moving main, a forged refs entry and writes of the run itself are all still seen."""

from __future__ import annotations

import json

import pytest
from hub_server import running_hub
from storekit import make_files

from registry.core.cache import cache_dir
from registry.errors import StoreError
from registry.store import open_store
from registry.store.base import fleet_session, prefetch

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


def session_reads(store, names: list[str], version: str) -> dict:
    """What `registry sync` reads of the store for a no-op, in its session: prefetch, then per
    adapter the declared version's manifest (published? conflict?) and the current version,
    then the adapters to retire."""
    seen = {}
    with fleet_session(store):
        prefetch(store, [(n, version) for n in names])
        for name in names:
            held = store.manifest(name, version)
            seen[name] = (held.fingerprint if held else None, store.current(name))
        seen["*"] = store.list_adapters()
    return seen


def test_a_warm_noop_sync_costs_one_listing(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, ADAPTERS, VERSIONS)
    last = f"1.{VERSIONS - 1}.0"
    hub.clear_log()
    first = session_reads(open_store(f"hf://{ORG}"), names, last)
    cold = hub.requests()
    hub.clear_log()
    again = session_reads(open_store(f"hf://{ORG}"), names, last)
    assert again == first and first["a007"] == ("a007-2", last) and first["*"] == names
    assert hub.requests() == [("GET", "/api/models")], hub.requests()
    # cold: the listing, then per adapter its refs, the version's registry.json (HEAD + GET)
    # and main's file list; main's registry.json is the same blob, not downloaded again
    assert len(cold) == 1 + 4 * ADAPTERS, cold


def test_a_version_published_without_moving_main_is_still_found(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 3, 2)
    session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    listing_before = dict(hub.repos["test-org/a001"].branches)
    other = open_store(f"hf://{ORG}")  # another publisher: a tag, main untouched
    other.publish("a001", "1.2.0", make_files("1.2.0", fingerprint="late"))
    assert hub.repos["test-org/a001"].branches == listing_before  # the listing cannot see it
    hub.clear_log()
    reader = open_store(f"hf://{ORG}")
    with fleet_session(reader):
        assert reader.manifest("a001", "1.2.0").fingerprint == "late"
        assert reader.manifest("a001", "1.1.0").fingerprint == "a001-1"
        assert reader.manifest("a002", "1.1.0").fingerprint == "a002-1"
        assert reader.manifest("a002", "9.0.0") is None
        assert reader.current("a001") == "1.1.0"
    refs = [p for _, p in hub.requests() if p.endswith("/refs")]
    # a tag the remembered refs lack is looked up; one that they hold is trusted (tags never move)
    assert refs == ["/api/models/test-org/a001/refs", "/api/models/test-org/a002/refs"], refs


def test_a_moved_pointer_and_a_retirement_by_another_process_are_seen(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 3, 2)
    session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    other = open_store(f"hf://{ORG}")
    other.set_current("a000", "1.0.0")
    other.retire("a002")
    seen = session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    assert seen["a000"] == ("a000-1", "1.0.0")
    assert seen["a001"] == ("a001-1", "1.1.0")
    assert seen["a002"] == ("a002-1", None)


def test_writes_of_the_run_are_seen_by_the_run(hub):
    store = open_store(f"hf://{ORG}")
    publish_fleet(store, 2, 1)
    writer = open_store(f"hf://{ORG}")
    with fleet_session(writer):
        assert writer.current("a000") == "1.0.0"
        writer.publish("a000", "1.1.0", make_files("1.1.0", fingerprint="new"))
        assert writer.manifest("a000", "1.1.0").fingerprint == "new"
        assert writer.set_current("a000", "1.1.0") is True
        assert writer.current("a000") == "1.1.0"
        assert writer.retire("a001") is True
        assert writer.is_retired("a001") and writer.current("a001") is None
        assert writer.retire("a001") is False


def test_a_forged_or_corrupted_refs_entry_is_not_used(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 2, 2)
    session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    entries = sorted(cache_dir("refs").glob("*.json"))
    assert len(entries) == 2
    forged = json.loads(entries[0].read_text())
    forged["body"]["tags"] = {"v1.1.0": "0" * 40}  # without fixing its checksum
    entries[0].write_text(json.dumps(forged))
    entries[1].write_text("{not json")
    hub.clear_log()
    seen = session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    assert seen["a000"] == ("a000-1", "1.1.0") and seen["a001"] == ("a001-1", "1.1.0")
    assert len([p for _, p in hub.requests() if p.endswith("/refs")]) == 2


def test_full_reads_every_repo_once_in_a_session(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 5, 3)
    session_reads(open_store(f"hf://{ORG}"), names, "1.2.0")  # warm the caches
    full = open_store(f"hf://{ORG}")
    full.trust_cache = False  # what `registry sync --full` sets
    hub.clear_log()
    seen = session_reads(full, names, "1.2.0")
    assert seen["a004"] == ("a004-2", "1.2.0")
    requests = hub.requests()
    refs = [p for _, p in requests if p.endswith("/refs")]
    manifests = [p for m, p in requests if m == "GET" and p.endswith("registry.json")]
    assert sorted(refs) == [f"/api/models/test-org/{n}/refs" for n in names]  # once each
    # the version's, once each; main's is the same blob (named by the tree just read)
    assert len(manifests) == len(names)
    assert len(requests) == 1 + 4 * len(names), requests  # as many as a cold run


def test_the_listing_is_paged(hub):
    hub.page_size = 7
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 20, 1)
    session_reads(open_store(f"hf://{ORG}"), names, "1.0.0")
    hub.clear_log()
    seen = session_reads(open_store(f"hf://{ORG}"), names, "1.0.0")
    assert seen["*"] == names
    assert hub.requests() == [("GET", "/api/models")] * 3


def test_429s_with_retry_after_hold_every_thread_and_fail_nothing(hub, monkeypatch):
    monkeypatch.setenv("REGISTRY_HUB_THREADS", "4")
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 6, 2)
    # more refusals than retries (REGISTRY_HUB_RETRIES=2 here): waiting as asked spends none
    hub.inject("GET", r"/refs$", "429", times=4, retry_after=1)
    reader = open_store(f"hf://{ORG}")
    seen = session_reads(reader, names, "1.1.0")
    assert all(seen[n] == (f"{n}-1", "1.1.0") for n in names)
    refused = [r for r in hub.log if r.status == 429]
    assert len(refused) == 4
    later = [r for r in hub.log if r.path.endswith("/refs") and r.t > refused[0].t]
    assert all(r.t - refused[0].t >= 0.95 for r in later if r.status == 200)


def test_a_rate_limit_past_the_budget_still_fails_cleanly(hub, monkeypatch):
    monkeypatch.setenv("REGISTRY_HUB_RATE_WAIT", "1")
    store = open_store(f"hf://{ORG}")
    publish_fleet(store, 1, 1)
    hub.inject("GET", r"/refs$", "429", times=None, retry_after=1)
    reader = open_store(f"hf://{ORG}")
    try:
        reader.versions("a000")
    except StoreError as err:
        assert "after 3 attempts" in str(err) and "\n" not in str(err)
    else:
        raise AssertionError("a rate limit that never ends must fail the call")


def test_without_a_listing_the_reads_are_made_one_by_one(hub):
    store = open_store(f"hf://{ORG}")
    names = publish_fleet(store, 3, 2)
    session_reads(open_store(f"hf://{ORG}"), names, "1.1.0")
    hub.inject("GET", r"^/api/models$", "500", times=None)  # every retry of the listing spent
    hub.clear_log()
    reader = open_store(f"hf://{ORG}")
    with fleet_session(reader):
        seen = [(reader.manifest(n, "1.1.0").fingerprint, reader.current(n)) for n in names]
        hub.clear_faults()
        assert reader.list_adapters() == names  # listed on its own, as before sessions
    assert seen == [(f"{n}-1", "1.1.0") for n in names]
    refs = [p for _, p in hub.requests() if p.endswith("/refs")]
    assert len(refs) == 2 * len(names)  # manifest() and current() each read them
