"""The Hub backend under faults: the real huggingface_hub client against tests/hub_server.py,
with 500s, dropped connections, lost replies, 429s and slow replies injected at each request."""

from __future__ import annotations

import re
import time

import pytest
from hub_server import FakeHub, running_hub
from huggingface_hub import constants
from storekit import PUBLISH_SEQUENCE, SHA, STEPS, make_files, normalized

from registry.errors import StoreError
from registry.store import open_store

ORG, NAME, REPO = "test-org", "demo", "test-org/demo"


@pytest.fixture
def hub(monkeypatch):
    with running_hub(monkeypatch) as hub:
        yield hub


@pytest.fixture
def store(hub):
    return open_store(f"hf://{ORG}")


def inject_at(hub: FakeHub, step: str, kind: str, times: int | None) -> None:
    """Fault the request of `step` (and, with times=None, every later request like it)."""
    i = STEPS.index(step)
    _, method, path = PUBLISH_SEQUENCE[i]
    pattern = "^" + re.escape(path).replace(re.escape(SHA), "[0-9a-f]{40}") + "$"
    earlier = sum(1 for _, m, p in PUBLISH_SEQUENCE[:i] if (m, p) == (method, path))
    hub.inject(method, pattern, kind, times=times, skip=earlier)


def check_all_or_nothing(hub: FakeHub, store, files: dict, tmp_path) -> None:
    """Never a tag without all its files, never a visible version without a tag, main intact."""
    repo = hub.repos.get(REPO)
    if repo is None:
        assert store.versions(NAME) == []
        return
    assert set(repo.commits[repo.branches["main"]].files) == {".gitattributes"}
    for oid in repo.tags.values():
        tagged = {k: v for k, v in repo.commits[oid].files.items() if k != ".gitattributes"}
        assert tagged == files
    infos = store.versions(NAME)
    assert [(i.version, i.commit) for i in infos] == [
        (tag[1:], oid) for tag, oid in repo.tags.items()
    ]
    if infos:
        out = tmp_path / f"check-{time.monotonic_ns()}"
        store.download(NAME, "1.0.0", out)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_publish_request_sequence(hub, store):
    store.publish(NAME, "1.0.0", make_files("1.0.0"))
    assert normalized(hub) == [(m, p) for _, m, p in PUBLISH_SEQUENCE]


@pytest.mark.parametrize("kind", ["500", "reset", "lost"])
@pytest.mark.parametrize("step", STEPS)
def test_a_fault_outlasting_the_retries_leaves_all_or_nothing_and_a_rerun_completes(
    hub, store, tmp_path, step, kind
):
    files = make_files("1.0.0")
    inject_at(hub, step, kind, times=None)
    try:
        store.publish(NAME, "1.0.0", files)
    except StoreError as err:
        assert "\n" not in str(err) and "failed" in str(err)
    hub.clear_faults()
    check_all_or_nothing(hub, store, files, tmp_path)
    assert store.publish(NAME, "1.0.0", files).status in ("published", "exists")
    check_all_or_nothing(hub, store, files, tmp_path)
    assert len(store.versions(NAME)) == 1
    assert set(hub.repos[REPO].branches) == {"main"}  # the staging branch is cleaned up


@pytest.mark.parametrize("kind", ["500", "reset", "lost"])
@pytest.mark.parametrize("step", STEPS)
def test_a_transient_fault_is_retried_transparently(hub, store, tmp_path, step, kind):
    files = make_files("1.0.0")
    inject_at(hub, step, kind, times=1)
    result = store.publish(NAME, "1.0.0", files)
    # Only a lost reply to the tag request hides who made the tag: the rerun sees it exists.
    assert result.status == ("exists" if (step, kind) == ("tag", "lost") else "published")
    check_all_or_nothing(hub, store, files, tmp_path)
    assert len(store.versions(NAME)) == 1


def test_429_with_retry_after_is_honoured(hub, store):
    hub.inject("GET", r"/refs$", "429", times=1, retry_after=1)
    hub.inject("POST", r"/preupload/", "429", times=2)  # retried inside huggingface_hub
    assert store.publish(NAME, "1.0.0", make_files("1.0.0")).status == "published"
    refs = [r for r in hub.log if r.path.endswith("/refs")]
    assert refs[0].status == 429 and refs[1].t - refs[0].t >= 0.95


def test_slow_replies_within_the_timeout_work(hub, store, tmp_path):
    hub.inject("POST", r"/commit/", "slow", times=1, delay=0.4)
    hub.inject("GET", r"/resolve/", "slow", times=1, delay=0.4)
    files = make_files("1.0.0")
    store.publish(NAME, "1.0.0", files)
    store.download(NAME, "1.0.0", tmp_path / "out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == files
    assert all(r.status == 200 for r in hub.log if "/commit/" in r.path or "/resolve/" in r.path)


def test_a_reply_slower_than_the_timeout_is_retried(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_HUB_TIMEOUT", "0.2")
    store = open_store(f"hf://{ORG}")
    files = make_files("1.0.0")
    store.publish(NAME, "1.0.0", files)
    hub.clear_log()
    hub.inject("GET", r"/revision/", "slow", times=1, delay=0.6)
    hub.inject("HEAD", r"/resolve/", "slow", times=1, delay=0.6)
    store.download(NAME, "1.0.0", tmp_path / "out")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == files
    assert sum("/revision/" in p for _, p in hub.requests()) == 2


def test_spent_retries_raise_a_one_line_store_error_without_the_token(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETtokenVALUE")
    store = open_store(f"hf://{ORG}")
    hub.inject("GET", r"/refs$", "500", times=None)
    with pytest.raises(StoreError) as caught:
        store.versions(NAME)
    message = str(caught.value)
    assert "list refs failed after 3 attempts" in message and REPO in message
    assert "\n" not in message and "SECRET" not in message
    assert sum(p.endswith("/refs") for _, p in hub.requests()) == 3
    assert caught.value.exit_code == 1


def test_not_found_is_an_answer_not_retried(hub, store):
    assert store.versions("missing") == []
    assert hub.requests() == [("GET", f"/api/models/{ORG}/missing/refs")]


def test_offline_mode_is_a_clear_error(hub, store, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(StoreError, match="HF_HUB_OFFLINE"):
        store.versions(NAME)
    assert hub.requests() == []


@pytest.mark.parametrize("kind", ["500", "reset", "lost"])
def test_set_current_under_faults_leaves_main_old_or_new_and_a_rerun_completes(hub, store, kind):
    files = make_files("1.0.0")
    store.publish(NAME, "1.0.0", files)
    hub.inject("POST", r"/commit/main$", kind, times=None)
    try:
        # A lost reply is recovered: the retry finds main already holds the files.
        assert store.set_current(NAME, "1.0.0") is True and kind == "lost"
    except StoreError:
        assert kind != "lost"
    hub.clear_faults()
    main = hub.repos[REPO].commits[hub.repos[REPO].branches["main"]].files
    on_main = {k: v for k, v in main.items() if k != ".gitattributes"}
    assert on_main == (files if kind == "lost" else {})  # whole or untouched
    assert store.set_current(NAME, "1.0.0") is (kind != "lost")
    assert store.current(NAME) == "1.0.0"
