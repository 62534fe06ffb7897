"""registry.json through registry.artifact: one typed reader and writer, exact round trips,
lenient on what a store serves, precise on what a user hands in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.artifact import Provenance, fingerprint_of, read_provenance, write_provenance
from registry.errors import InvalidInput

RECORD = {
    "name": "toy",
    "version": "1.0.0",
    "fingerprint": "sha256:" + "a" * 64,
    "base_model": {"ref": "builtin:tiny-llama", "model_id": "m", "revision": "r", "sha256": "s"},
    "overrides": {},
    "training": {"steps": 3},
    "from_a_newer_tool": [1, 2],
}


def test_a_rewrite_keeps_every_key_in_its_place(tmp_path: Path):
    write_provenance(tmp_path, Provenance(RECORD))
    text = (tmp_path / "registry.json").read_text()
    assert text == json.dumps(RECORD, indent=2) + "\n"  # the training output's format
    again = read_provenance(tmp_path).updated(version="1.0.1", training={"steps": 4})
    assert list(again.data) == list(RECORD)  # updated keys stay where they were
    assert again.data["from_a_newer_tool"] == [1, 2]
    assert (again.version, again.training, again.base_ref) == (
        "1.0.1",
        {"steps": 4},
        "builtin:tiny-llama",
    )


def test_a_manifest_is_sorted_so_equal_content_is_equal_bytes():
    a = Provenance(RECORD).updated(files={"x": "1"}).manifest_bytes()
    b = Provenance(dict(reversed(list(RECORD.items())))).updated(files={"x": "1"}).manifest_bytes()
    assert a == b and json.loads(a)["files"] == {"x": "1"}


@pytest.mark.parametrize("raw", [b"", b"[1]", b"\xff\xfe", b'{"files": {"a": 1}}', None])
def test_what_a_store_serves_is_read_leniently(raw):
    manifest = Provenance.loads(raw)
    assert manifest.fingerprint is None and manifest.files is None and manifest.gate_passed is None


def test_fields_are_typed_or_none():
    manifest = Provenance.loads(json.dumps({"fingerprint": 3, "eval": {"gate": {"passed": True}},
                                            "base_model": "builtin:x", "published_at": "t"}))  # fmt: skip
    assert manifest.fingerprint is None  # not a string
    assert manifest.gate_passed is True and manifest.published_at == "t"
    assert manifest.base_ref == "builtin:x" and manifest.base_model == {}  # an old folder's form


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b'["a list"]'])
def test_a_bad_registry_json_names_its_file(tmp_path: Path, content: bytes):
    (tmp_path / "registry.json").write_bytes(content)
    with pytest.raises(InvalidInput, match=r"registry\.json"):
        read_provenance(tmp_path)
    assert fingerprint_of(tmp_path) is None


def test_absent_is_an_error_unless_allowed(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_provenance(tmp_path)
    assert read_provenance(tmp_path, missing_ok=True).name is None
    assert fingerprint_of(None) is None
