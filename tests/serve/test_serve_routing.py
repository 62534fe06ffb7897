"""The routing table: what `model` names resolve to, leases, and when a version may go."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.serve.routing import Routing, Slot, UnknownModel
from registry.store.pull import PulledAdapter


def slot(name: str, version: str) -> Slot:
    pulled = PulledAdapter(name, version, f"c-{name}-{version}", Path("/nowhere"))
    return Slot(name, version, pulled.commit, f"{name}--{version}", pulled)


@pytest.fixture
def table() -> Routing:
    routing = Routing(["org/base", "builtin:base"])
    routing.add(slot("alpha", "1.1.0"), current=True)
    routing.add(slot("alpha", "1.0.0"), pinned=True)
    return routing


def test_names_resolve_to_versions_and_the_base(table):
    assert table.resolve("alpha").model == "alpha@1.1.0"
    assert table.resolve("alpha@1.0.0").model == "alpha@1.0.0"
    for base in ("org/base", "builtin:base"):
        target = table.resolve(base)
        assert target.slot is None and target.model == "org/base"


def test_unknown_names_and_versions_say_what_is_served(table):
    with pytest.raises(UnknownModel, match="served: alpha, org/base"):
        table.resolve("gamma")
    with pytest.raises(UnknownModel, match=r"held: alpha@1.0.0, alpha@1.1.0.*--adapters alpha@2"):
        table.resolve("alpha@2.0.0")


def test_in_flight_requests_keep_their_version_and_it_goes_when_they_end(table):
    inflight = table.resolve("alpha")  # admitted on 1.1.0
    assert table.add(slot("alpha", "1.2.0"), current=True) == []  # 1.1.0 leased: it stays
    assert table.resolve("alpha").model == "alpha@1.2.0"  # later requests: the new version
    assert inflight.slot.version == "1.1.0"
    freed = table.release(inflight)
    assert [s.ref for s in freed] == ["alpha@1.1.0"]
    assert table.release(inflight) == []  # idempotent
    assert not table.holds("alpha@1.1.0")
    with pytest.raises(UnknownModel):
        table.resolve("alpha@1.1.0")


def test_pinned_versions_stay_whatever_the_current_pointer_does(table):
    freed = table.set_current("alpha", "1.0.0")  # a rollback onto the pinned version: no load
    assert [s.ref for s in freed] == ["alpha@1.1.0"]
    assert table.add(slot("alpha", "1.2.0"), current=True) == []  # loaded and routed at once
    assert table.holds("alpha@1.0.0")
    assert {m["id"]: m["version"] for m in table.models()} == {
        "alpha": "1.2.0",
        "alpha@1.0.0": "1.0.0",
        "alpha@1.2.0": "1.2.0",
    }


def test_retired_names_stop_answering_pinned_versions_do_not(table):
    freed = table.retire("alpha")
    assert [s.ref for s in freed] == ["alpha@1.1.0"]
    with pytest.raises(UnknownModel, match="retired"):
        table.resolve("alpha")
    assert table.resolve("alpha@1.0.0").model == "alpha@1.0.0"
    assert table.describe()["alpha"]["retired"] is True


def test_a_version_neither_routed_nor_pinned_is_not_kept(table):
    # a load is routed in the same step as it is added (add(current=True)): a release in
    # between cannot collect it; added without a route it goes at once
    assert [s.ref for s in table.add(slot("alpha", "1.2.0"))] == ["alpha@1.2.0"]


def test_switching_to_a_version_not_loaded_is_refused(table):
    with pytest.raises(ValueError, match="not held"):
        table.set_current("alpha", "9.0.0")
    assert table.current_version("alpha") == "1.1.0"
