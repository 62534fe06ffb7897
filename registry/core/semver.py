"""Semantic versions and the ranges `pull` accepts: exact, ^1.2, ~1.2.3, latest.

Small on purpose: precedence per semver 2.0.0 (pre-releases sort before their release, build
metadata is ignored), and npm-style caret/tilde ranges, which users already know.
"""

from __future__ import annotations

import re
from functools import total_ordering

from registry.errors import InvalidInput

_VERSION = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_PARTIAL = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?$")


@total_ordering
class Version:
    def __init__(self, major: int, minor: int, patch: int, pre: tuple = ()) -> None:
        self.major, self.minor, self.patch, self.pre = major, minor, patch, pre

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (*self.release, 1 if not self.pre else 0, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return ".".join(map(str, self.release)) + (f"-{'.'.join(self.pre)}" if self.pre else "")


def parse_version(text: str) -> Version:
    match = _VERSION.match(text.strip())
    if not match:
        raise InvalidInput(f"{text!r} is not a semantic version (e.g. 1.2.0)")
    major, minor, patch, pre = match.groups()
    return Version(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


def matches(version: str, spec: str) -> bool:
    """Does `version` satisfy `spec` (1.2.0 | ^1.2 | ~1.2.3 | latest)?"""
    v = parse_version(version)
    if spec == "latest":
        return not v.pre
    if spec[:1] in "^~":
        match = _PARTIAL.match(spec[1:])
        if not match:
            raise InvalidInput(f"bad version range {spec!r}: use ^1.2, ~1.2.3 or 1.2.0")
        parts = [int(p) if p is not None else None for p in match.groups()]
        low = Version(*(p or 0 for p in parts))
        if v.pre or v < low:  # ranges never pick a pre-release
            return False
        if spec[0] == "~":  # same major.minor (or major when only the major is given)
            return (
                v.release[: 2 if parts[1] is not None else 1]
                == low.release[: 2 if parts[1] is not None else 1]
            )
        # caret: same first non-zero component
        if low.major:
            return v.major == low.major
        if low.minor or parts[1] is not None and parts[2] is None:
            return v.major == 0 and v.minor == low.minor
        return v.release == low.release
    return v == parse_version(spec)


def best_match(versions: list[str], spec: str) -> str | None:
    """The highest version satisfying `spec`, or None."""
    candidates = [v for v in versions if matches(v, spec)]
    return max(candidates, key=parse_version) if candidates else None
