"""Checks on adapter files before anything loads them: safetensors only, hashes verified.

An adapter folder that comes from a store is untrusted until every file's sha256 matches the
manifest (`registry.json`), no unexpected file is present (a pickle `adapter_model.bin` would run
code on `torch.load`), and the safetensors header is sane. Every check runs in bounded time and
memory: the folder is listed with a cap on its entries, sizes are checked before any file is read
or hashed, the header is read with a size cap and offsets are checked against the file size.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from pathlib import Path

from registry.errors import InvalidInput
from registry.spec.base_model import sha256_file
from registry.store.base import ALLOWED_FILES, MANIFEST

MAX_HEADER_BYTES = 16 << 20  # a LoRA header is a few KB; 16 MB is generous and bounded
MAX_FILE_BYTES = 4 << 30  # adapters are MBs; refuse anything over 4 GB before hashing it
# Everything else (registry.json, adapter_config.json, README.md, logs) is read whole into memory:
# a smaller cap keeps a hostile 3 GB registry.json from being loaded to find it is not JSON.
MAX_METADATA_BYTES = 64 << 20
# A version holds 4 files and a training output about 10; a folder with thousands is hostile (or
# not an adapter), and listing, sorting and stat-ing all of it must not be the first thing we do.
MAX_FILES = 64
_COUNT_CAP = 100_000  # counting stops here: the message stays exact for any sane folder, and
# a folder with millions of entries is refused after a bounded scan
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
}


def size_limit(name: str) -> int:
    """The most bytes a file of this name may hold: weights are big, metadata is read whole."""
    return MAX_FILE_BYTES if name.endswith(".safetensors") else MAX_METADATA_BYTES


def check_folder_limits(folder: Path) -> None:
    """Refuse a folder with more than MAX_FILES entries, or a regular file in it over its
    size_limit, before anything in it is read or hashed (entries are counted, not stored)."""
    with os.scandir(folder) as entries:
        count = sum(1 for _ in itertools.islice(entries, _COUNT_CAP))
    if count > MAX_FILES:
        many = f"{count}" if count < _COUNT_CAP else f"at least {_COUNT_CAP}"
        raise InvalidInput(
            f"{folder}: {many} files; an adapter folder holds at most {MAX_FILES}; refused"
        )
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                limit = size_limit(entry.name)
                if entry.stat(follow_symlinks=False).st_size > limit:
                    raise InvalidInput(
                        f"{folder}: {entry.name} is larger than {limit} bytes; refused"
                    )


def check_safetensors(path: Path) -> dict:
    """Parse and bound-check a safetensors header without loading tensors; return it.

    The size cap comes first: publish reads the weights whole after this check, so a file with
    a consistent header over terabytes of (sparse) data must stop here."""
    size = path.stat().st_size
    where = str(path)
    if size > MAX_FILE_BYTES:
        raise InvalidInput(f"{where}: larger than {MAX_FILE_BYTES} bytes; refused")
    if size < 8:
        raise InvalidInput(f"{where}: not a safetensors file (too short)")
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > MAX_HEADER_BYTES or header_len > size - 8:
            raise InvalidInput(f"{where}: safetensors header length {header_len} is out of range")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{where}: malformed safetensors header") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{where}: malformed safetensors header")
    data_size = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            n_bytes = _DTYPE_BYTES[info["dtype"]]
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{where}: tensor {name!r} has a malformed entry") from None
        if not (0 <= start <= end <= data_size) or end - start != count * n_bytes:
            raise InvalidInput(f"{where}: tensor {name!r} has out-of-range offsets")
    return header


def verify_folder(folder: Path, expected: dict[str, str] | None = None) -> dict[str, str]:
    """Verify an adapter folder against its manifest; return {file: sha256} of the content.

    `expected` (e.g. from a lockfile) must match too when given.
    """
    check_folder_limits(folder)
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    for name in present:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"{folder}: {name} is not a regular file; refused")
        if name not in ALLOWED_FILES:
            raise InvalidInput(
                f"{folder}: unexpected file {name!r} refused (only safetensors adapters and "
                f"their JSON/Markdown metadata are accepted)"
            )
    if MANIFEST not in present:
        raise InvalidInput(f"{folder}: {MANIFEST} is missing; cannot verify")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        listed = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{folder}: {MANIFEST} has no valid 'files' table") from None
    if set(listed) != set(present) - {MANIFEST}:
        raise InvalidInput(
            f"{folder}: files {sorted(set(present) - {MANIFEST})} do not match the manifest "
            f"{sorted(listed)}"
        )
    actual = {name: sha256_file(folder / name) for name in present}
    for name, digest in listed.items():
        if actual[name] != digest:
            raise InvalidInput(f"{folder}: sha256 mismatch for {name}; the download is corrupt")
    if expected:
        for name, digest in expected.items():
            if actual.get(name) != digest:
                raise InvalidInput(f"{folder}: {name} does not match the lockfile's sha256")
    if "adapter_model.safetensors" not in present:
        raise InvalidInput(f"{folder}: adapter_model.safetensors is missing")
    check_safetensors(folder / "adapter_model.safetensors")
    return actual
