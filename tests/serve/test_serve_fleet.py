"""AdapterFleet.attach / detach, what the server's switches are made of: an adapter loaded
later answers exactly as in a fleet built with it, unloading one leaves the others as they were,
and an adapter of another base is refused before anything is loaded."""

from __future__ import annotations

import pytest
from servekit import answers_of, make_store
from storekit import make_adapter_dir

from registry.consume import AdapterFleet
from registry.errors import InvalidInput
from registry.store.pull import PulledAdapter, pull


def test_attach_and_detach_keep_every_answer(tmp_path, tiny_model):
    store = make_store(
        tmp_path, tiny_model, [("alpha", "1.0.0"), ("beta", "1.0.0")], {"alpha": "1.0.0"}
    )
    alpha, beta = pull("alpha@1.0.0", store), pull("beta@1.0.0", store)
    alone = AdapterFleet([beta])
    expected_beta = answers_of(alone)
    fleet = AdapterFleet([alpha], keys=["a"])
    expected_alpha = answers_of(fleet)
    assert expected_alpha != expected_beta
    fleet.attach(beta, "b")
    assert fleet.active == "a" and answers_of(fleet) == expected_alpha  # attaching moved nothing
    fleet.use("b")
    assert answers_of(fleet) == expected_beta
    fleet.detach("b")  # the active one: another takes over
    assert fleet.active == "a" and answers_of(fleet) == expected_alpha
    with pytest.raises(InvalidInput, match="last adapter"):
        fleet.detach("a")
    with pytest.raises(InvalidInput, match="taken"):
        fleet.attach(alpha, "a")
    other = make_adapter_dir(tmp_path / "other")  # provenance names another base's sha256
    with pytest.raises(InvalidInput, match="another base model"):
        fleet.attach(PulledAdapter("toy", "1.0.0", "c" * 40, other), "c")
    assert sorted(fleet.adapters) == ["a"]
