"""The adapter folder: its file names, its registry.json (typed), and the checks on its files.

An adapter folder is a plain PEFT adapter (WEIGHTS + CONFIG, what
`PeftModel.from_pretrained(base, folder)` loads) plus REGISTRY_JSON. Training writes
registry.json as provenance (name, version, fingerprint, base model, datasets, spec, git
commit, packages, overrides, training metrics); publishing adds the manifest part (eval
summary, published_at and the sha256 of every other file of the version). `Provenance` is the
one reader and writer of that file: every module reads it through here.

An adapter folder that comes from a store is untrusted until every file's sha256 matches the
manifest, no unexpected file is present (a pickle `adapter_model.bin` would run code on
`torch.load`), and the safetensors header is sane. Every check runs in bounded time and
memory: the folder is listed with a cap on its entries, sizes are checked before any file is read
or hashed, the header is read with a size cap and offsets are checked against the file size.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.core.fs import atomic_file, sha256_file
from registry.errors import InvalidInput

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
REGISTRY_JSON = "registry.json"  # provenance; once published also the manifest
CARD = "README.md"  # the model card, written by publish
TRAINING_LOG = "training_log.jsonl"
LOSS_PLOT = "loss.png"
REPORT_JSON = "report.json"
REPORT_FILES = (REPORT_JSON, "report.md", "junit.xml", "metrics.png")  # written by evaluate
PEFT_FILES = (WEIGHTS, CONFIG)
# The files a published version holds. Anything else (a pickle adapter_model.bin, *.pt, ...)
# is refused by publish and by pull.
VERSION_FILES = frozenset({WEIGHTS, CONFIG, CARD, REGISTRY_JSON})


# -- registry.json -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """registry.json, typed. `data` is the JSON object as read (unknown keys are kept, so a
    rewrite by this version of the tool loses nothing a newer one wrote); the properties are
    its fields, None (or empty) where absent or of the wrong type: readers of untrusted
    manifests get no exception from a malformed field."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def _get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        value = self.data.get(key)
        return value if isinstance(value, kind) else None

    @property
    def name(self) -> str | None:
        return self._get("name", str)

    @property
    def version(self) -> str | None:
        return self._get("version", str)

    @property
    def fingerprint(self) -> str | None:
        return self._get("fingerprint", str)

    @property
    def base_model(self) -> dict[str, Any]:
        """{"ref", "model_id", "revision", "sha256"} of the base trained on ({} if absent)."""
        return self._get("base_model", dict) or {}

    @property
    def base_ref(self) -> str | None:
        """The base model reference trained on (old folders stored the bare string)."""
        return self.base_model.get("ref") or self._get("base_model", str)

    @property
    def spec(self) -> dict[str, Any]:
        return self._get("spec", dict) or {}

    @property
    def overrides(self) -> dict[str, Any]:
        """Smoke-run overrides (max_steps, seed, base_model): such outputs are not publishable."""
        return self._get("overrides", dict) or {}

    @property
    def training(self) -> dict[str, Any]:
        return self._get("training", dict) or {}

    @property
    def files(self) -> dict[str, str] | None:
        """Manifest: file name -> sha256 of every other file of the version (None: not one)."""
        files = self._get("files", dict)
        if files is None or not all(isinstance(v, str) for v in files.values()):
            return None
        return dict(files)

    @property
    def gate_passed(self) -> bool | None:
        """Manifest: did the published version's gate pass (None: not recorded)."""
        gate = (self._get("eval", dict) or {}).get("gate") or self._get("gate", dict) or {}
        passed = gate.get("passed") if isinstance(gate, dict) else None
        return passed if isinstance(passed, bool) else None

    @property
    def published_at(self) -> str | None:
        return self._get("published_at", str) or self._get("created_at", str)

    def updated(self, **changes: Any) -> Provenance:
        """A copy with `changes` set (existing keys keep their place in the file)."""
        return Provenance({**self.data, **changes})

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    def dumps(self) -> str:
        """A training output's registry.json: keys in the order written, indented."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    def manifest_bytes(self) -> bytes:
        """A published version's registry.json: sorted keys, so equal content = equal bytes."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def loads(cls, raw: bytes | str | None) -> Provenance:
        """Parse leniently (for manifests read from a store): anything but a JSON object is
        an empty Provenance, whose fields are all None."""
        try:
            data = json.loads(raw) if raw is not None else None
        except (ValueError, TypeError):
            return cls()
        return cls(data) if isinstance(data, dict) else cls()


def read_provenance(folder: Path, *, missing_ok: bool = False) -> Provenance:
    """The registry.json of `folder`. Absent: FileNotFoundError, or an empty Provenance with
    `missing_ok`. Not a JSON object: InvalidInput naming the file."""
    path = Path(folder) / REGISTRY_JSON
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return Provenance()
        raise
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError; UnicodeDecodeError is a ValueError too
        raise InvalidInput(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInput("not a JSON object", file=str(path))
    return Provenance(data)


def write_provenance(folder: Path, provenance: Provenance) -> None:
    with atomic_file(Path(folder) / REGISTRY_JSON) as tmp:
        tmp.write_text(provenance.dumps(), encoding="utf-8")


def fingerprint_of(folder: Path | None) -> str | None:
    """The fingerprint an adapter folder's registry.json records (None when absent/unreadable)."""
    if folder is None:
        return None
    try:
        return read_provenance(folder, missing_ok=True).fingerprint
    except (OSError, InvalidInput):
        return None


def is_complete(folder: Path) -> bool:
    """Does `folder` hold a finished adapter (weights and registry.json)?"""
    return (folder / REGISTRY_JSON).exists() and (folder / WEIGHTS).exists()


# -- checks on the files -------------------------------------------------------------------------

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
        if name not in VERSION_FILES:
            raise InvalidInput(
                f"{folder}: unexpected file {name!r} refused (only safetensors adapters and "
                f"their JSON/Markdown metadata are accepted)"
            )
    if REGISTRY_JSON not in present:
        raise InvalidInput(f"{folder}: {REGISTRY_JSON} is missing; cannot verify")
    listed = Provenance.loads((folder / REGISTRY_JSON).read_bytes()).files
    if listed is None:
        raise InvalidInput(f"{folder}: {REGISTRY_JSON} has no valid 'files' table")
    if set(listed) != set(present) - {REGISTRY_JSON}:
        raise InvalidInput(
            f"{folder}: files {sorted(set(present) - {REGISTRY_JSON})} do not match the manifest "
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
    if WEIGHTS not in present:
        raise InvalidInput(f"{folder}: {WEIGHTS} is missing")
    check_safetensors(folder / WEIGHTS)
    return actual
