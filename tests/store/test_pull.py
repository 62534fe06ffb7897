"""Pulling: version resolution, verified bytes, cache, lockfile, hostile files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from storekit import make_adapter_dir

from registry.artifact import check_safetensors
from registry.errors import InvalidInput
from registry.store import open_store
from registry.store.publish import publish_version
from registry.store.pull import parse_ref, pull, versions


@pytest.fixture
def store(tmp_path: Path):
    store = open_store((tmp_path / "store").as_uri())
    for i, version in enumerate(["1.0.0", "1.2.0", "1.10.0", "2.0.0"]):
        adapter = make_adapter_dir(
            tmp_path / f"a{i}", version=version, fingerprint=f"sha256:{i:064d}", seed=i
        )
        publish_version("toy", adapter, store)
    store.set_current("toy", "1.2.0")
    return store


@pytest.mark.parametrize(
    "ref, version",
    [
        ("toy@1.0.0", "1.0.0"),
        ("toy@^1.2", "1.10.0"),
        ("toy@~1.2.0", "1.2.0"),
        ("toy@latest", "2.0.0"),
        ("toy", "1.2.0"),
    ],
)
def test_resolution(store, ref, version):
    pulled = pull(ref, store)
    assert pulled.version == version
    manifest = json.loads((pulled.path / "registry.json").read_text())
    assert manifest["version"] == version and manifest["files"] == {
        k: v for k, v in pulled.files.items() if k != "registry.json"
    }


def test_versions_flags_current(store):
    infos = versions("toy", store)
    assert [i.version for i in infos] == ["1.0.0", "1.2.0", "1.10.0", "2.0.0"]
    assert [i.current for i in infos] == [False, True, False, False]


@pytest.mark.parametrize("ref", ["Toy", "toy@", "toy@1.2", "toy@v1", "toy@@1", "../etc"])
def test_bad_refs_are_invalid_input(ref):
    with pytest.raises(InvalidInput):
        parse_ref(ref)


def test_unknown_adapter_or_version(store):
    with pytest.raises(InvalidInput, match="no published versions"):
        pull("nope@1.0.0", store)
    with pytest.raises(InvalidInput, match="no published version matches"):
        pull("toy@^3", store)


def test_flipped_byte_in_the_store_is_refused(store, tmp_path: Path):
    info = next(i for i in store.versions("toy") if i.version == "1.0.0")
    weights = next(Path(store.root).rglob("adapter_model.safetensors"))
    # corrupt every stored copy of 1.0.0's weights
    for path in Path(store.root).rglob("adapter_model.safetensors"):
        if info.commit in str(path) or "1.0.0" in str(path):
            data = bytearray(path.read_bytes())
            data[-1] ^= 1
            path.write_bytes(bytes(data))
            weights = path
    assert weights.exists()
    with pytest.raises(InvalidInput, match="sha256 mismatch"):
        pull("toy@1.0.0", store, no_cache=True)


def test_corrupted_cache_entry_is_downloaded_again(store):
    first = pull("toy@1.0.0", store)
    weights = first.path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    again = pull("toy@1.0.0", store)
    assert again.files == first.files


def test_lockfile_pins_exact_bytes(store, tmp_path: Path):
    lock = tmp_path / "adapters.lock"
    first = pull("toy@^1.0", store, lock=lock)
    assert first.version == "1.10.0"
    publish_version(
        "toy",
        make_adapter_dir(
            tmp_path / "new", version="1.11.0", fingerprint="sha256:" + "7" * 64, seed=7
        ),
        store,
    )
    again = pull("toy@^1.0", store, lock=lock)  # the lock wins over the newer match
    assert (again.version, again.commit) == (first.version, first.commit)
    data = json.loads(lock.read_text())
    data["adapters"]["toy"]["files"]["adapter_model.safetensors"] = "0" * 64
    lock.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match="lockfile"):
        pull("toy", store, lock=lock, no_cache=True)


def test_out_copies_verified_files(store, tmp_path: Path):
    out = tmp_path / "consumer"
    pulled = pull("toy@1.0.0", store, out=out)
    assert pulled.path == out and (out / "adapter_model.safetensors").exists()


def test_pickle_bin_in_a_version_is_refused(store, tmp_path: Path):
    from registry.artifact import verify_folder

    folder = pull("toy@1.0.0", store, out=tmp_path / "x").path
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(InvalidInput, match="unexpected file 'adapter_model.bin'"):
        verify_folder(folder)


@pytest.mark.parametrize(
    "payload, message",
    [
        ((2**62).to_bytes(8, "little") + b"{}", "out of range"),
        ((5).to_bytes(8, "little") + b"{oops", "malformed"),
        (
            (60).to_bytes(8, "little")
            + b'{"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}'[:60],
            "malformed",
        ),
    ],
)
def test_hostile_safetensors_headers_are_refused(tmp_path: Path, payload, message):
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(InvalidInput, match=message):
        check_safetensors(path)


def test_out_of_range_offsets_are_refused(tmp_path: Path):
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}
    ).encode()
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(InvalidInput, match="out-of-range offsets"):
        check_safetensors(path)
