"""weights_sha256 reads a base's weights once: later calls answer from the hash cache keyed by
file identity, and any rewrite of a file (same size, even the same mtime) hashes it again."""

from __future__ import annotations

import hashlib
import os

import pytest

from registry.core.fs import sha256_file
from registry.spec import base_model
from registry.spec.base_model import weights_sha256


@pytest.fixture
def counted(monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []

    def counting(path, *args, **kwargs):
        calls.append(os.path.basename(path))
        return sha256_file(path, *args, **kwargs)

    monkeypatch.setattr(base_model, "sha256_file", counting)
    return calls


def test_the_weights_are_hashed_once_and_again_after_a_rewrite(counted, tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    a, b = folder / "model-1.safetensors", folder / "model-2.safetensors"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    first = weights_sha256(folder)
    expected = hashlib.sha256(
        f"{a.name}:{sha256_file(a)}\n{b.name}:{sha256_file(b)}\n".encode()
    ).hexdigest()
    assert first == expected and sorted(counted) == [a.name, b.name]
    counted.clear()
    assert weights_sha256(folder) == first and counted == []
    stat = b.stat()
    b.write_bytes(b"c" * 1000)  # same size, mtime put back: the ctime still tells
    os.utime(b, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights_sha256(folder) != first and counted == [b.name]


def test_a_sparse_gigabyte_base_is_hashed_once(counted, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    weights = folder / "model.safetensors"
    with weights.open("wb") as f:  # sparse: 1 GiB on disk costs nothing, reading it does
        f.truncate(1024**3)
    assert weights_sha256(folder) == weights_sha256(folder)
    assert counted == [weights.name]
