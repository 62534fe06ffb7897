from __future__ import annotations

import pytest

from registry.core.semver import best_match, matches, parse_version
from registry.errors import InvalidInput


def test_precedence_follows_semver():
    order = [
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-beta",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
    ]
    assert sorted(order, key=parse_version) == order
    assert parse_version("1.0.0+build.5") == parse_version("1.0.0")


@pytest.mark.parametrize(
    "spec, version, expected",
    [
        ("^1.2", "1.9.3", True),
        ("^1.2", "2.0.0", False),
        ("^1.2", "1.1.9", False),
        ("^0.3", "0.3.7", True),
        ("^0.3", "0.4.0", False),
        ("^0.0.3", "0.0.4", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("~1.2.3", "1.2.2", False),
        ("^1.2", "1.3.0-rc.1", False),
        ("1.2.0", "1.2.0", True),
        ("latest", "2.0.0-rc.1", False),
    ],
)
def test_ranges(spec, version, expected):
    assert matches(version, spec) is expected


def test_best_match_picks_highest():
    versions = ["1.0.0", "1.2.0", "1.10.0", "2.0.0", "2.1.0-rc.1"]
    assert best_match(versions, "^1.0") == "1.10.0"
    assert best_match(versions, "latest") == "2.0.0"
    assert best_match(versions, "^3") is None


@pytest.mark.parametrize("bad", ["1.2", "v1.2.0", "01.2.3", "^x", "~"])
def test_bad_versions_are_invalid_input(bad):
    with pytest.raises(InvalidInput):
        matches("1.0.0", bad) if bad[:1] in "^~" else parse_version(bad)
