"""Checks on adapter files before anything loads them: safetensors only, hashes verified.

An adapter folder that comes from a store is untrusted until every file's sha256 matches the
manifest (`registry.json`), no unexpected file is present (a pickle `adapter_model.bin` would run
code on `torch.load`), and the safetensors header is sane. Every check runs in bounded time and
memory: the header is read with a size cap and offsets are checked against the file size.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from registry.errors import InvalidInput
from registry.models import sha256_file
from registry.store.base import ALLOWED_FILES, MANIFEST

MAX_HEADER_BYTES = 16 << 20  # a LoRA header is a few KB; 16 MB is generous and bounded
MAX_FILE_BYTES = 4 << 30  # adapters are MBs; refuse anything over 4 GB before hashing it
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


def check_safetensors(path: Path) -> dict:
    """Parse and bound-check a safetensors header without loading tensors; return it."""
    size = path.stat().st_size
    where = str(path)
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
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{folder}: {name} is larger than {MAX_FILE_BYTES} bytes; refused")
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
