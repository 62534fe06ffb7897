"""`registry export --format vllm|tgi`: hand the registry's versions to a real serving engine.

The adapters come from a lockfile (exactly its versions, checked against its commits and
hashes), from the references given, or from the store's current set; each is pulled and
sha256-verified as `registry pull` does and copied to OUT/NAME@VERSION/. The engine is then
pointed at those folders, never at a moving Hub branch: neither engine pins an adapter's
revision (vLLM's LoRA paths take no revision; TGI's loader reads `main`), so a folder of
verified bytes is what makes "ticket-json@1.0.0" mean one commit.

- vLLM: one `--lora-modules` JSON value per line, {"name", "path", "base_model_name"}.
- TGI:  an env file: `LORA_ADAPTERS=NAME@VERSION=PATH,...` (TGI's `id=path` form), with a
        comment per adapter naming its store repo and commit SHA.

Every adapter is named by its version, `name@version`: a new version is a new name, never a
reload in place under an old one (vLLM can keep stale prefix-cache entries for a name reloaded
in place: vllm-project/vllm#42125). Warnings name what an engine's defaults will refuse: rank
above vLLM's default --max-lora-rank 16, DoRA (vLLM loads no DoRA), several base models.
OUT/export.json records every entry (repo, commit, file hashes) for audit.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from registry.artifact import CONFIG, read_provenance
from registry.core.fs import atomic_file
from registry.errors import InvalidInput
from registry.store import Store
from registry.store.pull import PulledAdapter, pull, read_lock

VLLM_MAX_LORA_RANK = 16  # vLLM's default --max-lora-rank
FORMATS = ("vllm", "tgi")


@dataclass
class Entry:
    name: str
    version: str
    commit: str
    repo: str  # where the store keeps it: the Hub repo id, or the local store's folder
    path: str  # the verified copy the engine reads
    base_model: str  # the base's Hub id (the engine's served model name)
    base_revision: str
    rank: int
    dora: bool
    files: dict[str, str] = field(default_factory=dict)

    @property
    def served_name(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Export:
    format: str
    entries: list[Entry]
    text: str  # what goes to stdout: the engine's configuration
    hints: list[str]  # how to start the engine with it (stderr)
    warnings: list[str]


def select(store: Store, *, refs: list[str], lock: Path | None) -> list[PulledAdapter]:
    """The versions to export, pulled and verified."""
    if lock is not None:
        if refs:
            raise InvalidInput("--lock exports exactly the lockfile's versions: drop NAME@VERSION")
        return [pull(name, store, lock=lock) for name in sorted(read_lock(lock))]
    if not refs:
        refs = [n for n in store.list_adapters() if store.current(n) is not None]
        if not refs:
            raise InvalidInput(f"{store.url}: no adapter has a current version; nothing to export")
    return [pull(ref, store) for ref in refs]


def _rank(folder: Path) -> tuple[int, bool]:
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        raise InvalidInput(f"{folder / CONFIG}: unreadable adapter config") from None
    ranks = [config.get("r") or 0, *(config.get("rank_pattern") or {}).values()]
    return max(int(r) for r in ranks), bool(config.get("use_dora"))


def _repo(store: Store, name: str) -> str:
    repo_id = getattr(store, "repo_id", None)  # HubStore: ORG/NAME
    return repo_id(name) if callable(repo_id) else f"{store.url}/{name}"


def materialize(store: Store, pulled: list[PulledAdapter], out: Path) -> list[Entry]:
    """Copy each verified version to OUT/NAME@VERSION/ and describe it."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for p in pulled:
        target = out / f"{p.name}@{p.version}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(p.path, target)
        base = read_provenance(target).base_model
        rank, dora = _rank(target)
        entries.append(
            Entry(
                p.name,
                p.version,
                p.commit,
                _repo(store, p.name),
                str(target),
                str(base.get("model_id") or base.get("ref")),
                str(base.get("revision") or ""),
                rank,
                dora,
                dict(p.files),
            )
        )
    with atomic_file(out / "export.json") as tmp:
        tmp.write_text(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    return entries


def check(entries: list[Entry], fmt: str) -> list[str]:
    warnings = []
    bases = sorted({e.base_model for e in entries})
    if len(bases) > 1:
        warnings.append(
            f"{len(bases)} base models ({', '.join(bases)}): one engine serves one base; "
            "export each base's adapters separately"
        )
    if fmt == "vllm":
        for e in entries:
            if e.rank > VLLM_MAX_LORA_RANK:
                warnings.append(
                    f"{e.served_name} has LoRA rank {e.rank} > vLLM's default max_lora_rank "
                    f"{VLLM_MAX_LORA_RANK}: start vLLM with --max-lora-rank {_vllm_rank(e.rank)}"
                )
            if e.dora:
                warnings.append(
                    f"{e.served_name} is a DoRA adapter, which vLLM does not load: serve it with "
                    "`registry serve` or export it with --merged"
                )
    return warnings


def _vllm_rank(rank: int) -> int:
    # vLLM accepts a fixed set of ranks (8, 16, 32, 64, ...): the next power of two
    return max(VLLM_MAX_LORA_RANK, 1 << (rank - 1).bit_length())


def vllm(entries: list[Entry]) -> tuple[str, list[str]]:
    lines = [
        json.dumps({"name": e.served_name, "path": e.path, "base_model_name": e.base_model})
        for e in entries
    ]
    base = entries[0]
    rank = max(e.rank for e in entries)
    revision = f" --revision {base.base_revision}" if len(base.base_revision) == 40 else ""
    flags = f" --max-lora-rank {_vllm_rank(rank)}" if rank > VLLM_MAX_LORA_RANK else ""
    hints = [
        "# each line is one --lora-modules value; start vLLM with, e.g.:",
        "#   mapfile -t MODS < <(registry export --format vllm ...)",
        f"#   vllm serve {base.base_model}{revision} --enable-lora --max-loras {len(entries)}"
        f'{flags} --lora-modules "${{MODS[@]}}"',
        "# then request model=NAME@VERSION; a new version is a new name (no reload in place)",
    ]
    return "\n".join(lines) + "\n", hints


def tgi(entries: list[Entry]) -> tuple[str, list[str]]:
    for e in entries:  # TGI splits LORA_ADAPTERS on "," then "="
        if any(c in e.path for c in ",=\n"):
            raise InvalidInput(
                f"{e.path}: TGI cannot read a path with ',' or '='; pick another --out"
            )
    comments = [f"# {e.served_name}: {e.repo} @ {e.commit} (rank {e.rank})" for e in entries]
    value = ",".join(f"{e.served_name}={e.path}" for e in entries)
    base = entries[0]
    revision = f" --revision {base.base_revision}" if len(base.base_revision) == 40 else ""
    hints = [
        "# an env file for text-generation-inference; e.g.:",
        f"#   docker run --env-file lora.env ... --model-id {base.base_model}{revision}",
        "# then send parameters.adapter_id=NAME@VERSION (the folders must be mounted at the "
        "same paths)",
    ]
    return "\n".join([*comments, f"LORA_ADAPTERS={value}"]) + "\n", hints


def export_for_engine(
    fmt: str, store: Store, *, refs: list[str], lock: Path | None, out: Path
) -> Export:
    if fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    entries = materialize(store, select(store, refs=refs, lock=lock), out)
    text, hints = (vllm if fmt == "vllm" else tgi)(entries)
    return Export(fmt, entries, text, hints, check(entries, fmt))
