"""Hub requests and seconds of the store reads of a no-op `registry sync`, of `versions` and of
`pull` as a fleet grows, the same no-op on the local store, and the time to hash a multi-GB base
model's weights cold vs warm.

The fleet is seeded straight into the project's Hub test server (tests/hub_server.py: N adapters
x V versions, each version one tagged commit, main = the last; plus one adapter with 100
versions for `versions NAME`); the reads then go through the real huggingface_hub client, as
`registry sync` makes them when every declared version is published and current
(registry.gitops.sync): in one session (one paged listing of the org), a prefetch, then per
adapter manifest() (published? conflict check) and current(), then list_adapters(). "cold" is a
fresh registry cache, "warm" a second run (a new HubStore, the same cache, as the next sync
process), "full" a run with trust_cache False (`registry sync --full`). `pull` is one exact
version of one adapter, from a fresh adapter cache ("cold") and again ("cached").

RATIO lines: warm requests and seconds of the largest fleet (target <= 50 and <= 5 s for
1,000 x 10), warm growth from the smallest to the largest fleet, `--full` vs cold requests,
warm `versions NAME` requests with 100 versions (target <= 3), pull requests of the largest
fleet, the local store's no-op seconds, the warm hash of the base (target <= 1 s).

    python bench/fleet_scale.py                       # 10, 100 adapters x 10 versions, 4 GiB base
    python bench/fleet_scale.py --sizes 10,100,1000 --base-gib 16
    python bench/fleet_scale.py --sizes 1000 --no-cold   # warm only (seeds the cache directly)
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from benchkit import parse_args, ratio  # noqa: E402

ORG = "bench-org"


def weights(seed: int) -> bytes:
    """A tiny valid safetensors file (pull checks the header), different per version."""
    header = json.dumps({"w": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<i", seed)


def version_files(name: str, version: str, fingerprint: str) -> dict[str, bytes]:
    from storekit import make_files

    from registry.core.fs import sha256_bytes

    files = make_files(version, fingerprint=fingerprint, weights=weights(hash(fingerprint) % 999))
    manifest = json.loads(files["registry.json"])
    manifest["name"] = name
    manifest["files"] = {p: sha256_bytes(d) for p, d in files.items() if p != "registry.json"}
    files["registry.json"] = json.dumps(manifest).encode()
    return files


def seed(hub, adapters: int, versions: int) -> list[str]:
    names = [f"a{i:04d}" for i in range(adapters)]
    for name, count in [*((n, versions) for n in names), ("many", 100)]:
        hub.create_repo(f"{ORG}/{name}", private=True)
        repo = hub.repos[f"{ORG}/{name}"]
        head = repo.branches["main"]
        for v in range(count):
            version = f"1.{v}.0"
            files = version_files(name, version, f"{name}-{v}")
            repo.tags[f"v{version}"] = hub.new_commit(repo, files, head, f"{name} {version}")
        last = repo.commits[repo.tags[f"v1.{count - 1}.0"]]
        repo.branches["main"] = hub.new_commit(repo, last.files, head, f"current: {name}")
    return names


def noop_sync(store, names: list[str], version: str) -> None:
    from registry.store.base import fleet_session, prefetch

    with fleet_session(store):
        prefetch(store, [(n, version) for n in names])
        for name in names:
            assert store.manifest(name, version) is not None
            assert store.current(name) == version
        store.list_adapters()


def measure(hub, fn) -> tuple[int, float]:
    hub.clear_log()
    start = time.perf_counter()
    fn()
    ours = [r for r in hub.requests() if r[1] != "/api/agent-harnesses"]
    return len(ours), time.perf_counter() - start


def hub_fleet(n: int, versions: int, work: Path, cold: bool) -> dict[str, tuple[int, float]]:
    from hub_server import running_hub
    from pytest import MonkeyPatch

    from registry.store import open_store
    from registry.store.pull import pull
    from registry.store.pull import versions as list_versions

    mp = MonkeyPatch()
    mp.setenv("REGISTRY_CACHE", str(work / f"cache-{n}"))
    mp.setenv("REGISTRY_HUB_RETRIES", "5")
    out: dict[str, tuple[int, float]] = {}
    last = f"1.{versions - 1}.0"
    try:
        with running_hub(mp) as hub:
            names = seed(hub, n, versions)
            store = lambda: open_store(f"hf://{ORG}")  # noqa: E731  (a new process each time)
            if cold:
                out["cold"] = measure(hub, lambda: noop_sync(store(), names, last))
            else:  # warm the caches without timing it (as an earlier sync would have)
                noop_sync(store(), names, last)
            out["warm"] = measure(hub, lambda: noop_sync(store(), names, last))
            full = store()
            full.trust_cache = False
            if cold:
                out["full"] = measure(hub, lambda: noop_sync(full, names, last))
            list_versions("many", store())
            out["versions"] = measure(hub, lambda: list_versions("many", store()))
            ref = f"{names[-1]}@1.{versions // 2}.0"
            out["pull"] = measure(hub, lambda: pull(ref, store()))
            out["pull-cached"] = measure(hub, lambda: pull(ref, store()))
    finally:
        mp.undo()
    return out


def sync_fleet(n: int, versions: int, work: Path) -> dict[str, tuple[int, float]]:
    """`registry.gitops.sync.sync` itself, in-process, on a git + DVC repo of `n` specs (each
    declaring 1.{V-1}.0, data tracked by datasets.dvc) with a history of 20 later commits, against
    the seeded Hub test server: specs loaded, git/DVC read, conflict checks, every adapter
    "current". Cold (fresh registry cache) and warm (the next run)."""
    import subprocess

    from hub_server import running_hub
    from plan_scale import ENV, spec, track_datasets
    from pytest import MonkeyPatch

    from registry.core.fs import sha256_file
    from registry.gitops.sync import sync
    from registry.store import open_store

    root = work / f"repo-{n}"
    last = f"1.{versions - 1}.0"
    names = [f"adapter-{i:04d}" for i in range(n)]
    for name in names:
        (root / "adapters" / name).mkdir(parents=True)
        (root / "adapters" / name / "adapter.yaml").write_text(spec(name, last))
        for split in ("train", "eval"):
            data = root / "datasets" / name / f"{split}.jsonl"
            data.parent.mkdir(parents=True, exist_ok=True)
            data.write_text(json.dumps({"prompt": f"{name} {split}", "completion": "x"}) + "\n")
    track_datasets(root)
    (root / ".gitignore").write_text("/datasets/\n/.dvc/cache/\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=ENV, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "import")
    for c in range(20):  # later history: description edits (sync looks back 20 commits)
        name = names[c % n]
        text = spec(name, last).replace("bench adapter", f"bench adapter (edit {c})")
        (root / "adapters" / name / "adapter.yaml").write_text(text)
        git("commit", "-q", "-am", f"edit {name}")
    mp = MonkeyPatch()
    mp.setenv("REGISTRY_CACHE", str(work / f"sync-cache-{n}"))
    out = {}
    try:
        with running_hub(mp) as hub:
            for name in names:
                hub.create_repo(f"{ORG}/{name}", private=True)
                repo = hub.repos[f"{ORG}/{name}"]
                head = repo.branches["main"]
                sha = {
                    r: sha256_file(root / "datasets" / name / f"{r}.jsonl")
                    for r in ("train", "eval")
                }
                for v in range(versions):
                    files = version_files(name, f"1.{v}.0", f"{name}-{v}")
                    manifest = {**json.loads(files["registry.json"]), "datasets": sha}
                    files["registry.json"] = json.dumps(manifest).encode()
                    repo.tags[f"v1.{v}.0"] = hub.new_commit(repo, files, head, f"{name} 1.{v}.0")
                tagged = repo.commits[repo.tags[f"v{last}"]].files
                repo.branches["main"] = hub.new_commit(repo, tagged, head, "current")
            for label in ("cold", "warm"):
                result: list = []

                def run(result=result) -> None:
                    result += sync(open_store(f"hf://{ORG}"), root=root, progress=False)

                out[label] = measure(hub, run)
                done = {a.action for a in result}
                assert done == {"current"} and len(result) == n, (done, result[:2])
    finally:
        mp.undo()
    return out


def local_fleet(n: int, versions: int, work: Path) -> tuple[float, float]:
    """Seconds of the same no-op on a local store (file reads, no requests): first and again."""
    from registry.store.local import LocalStore, commit_id

    root = work / f"local-{n}"
    for i in range(n):
        name = f"a{i:04d}"
        (root / name / "tags").mkdir(parents=True)
        for v in range(versions):
            files = version_files(name, f"1.{v}.0", f"{name}-{v}")
            commit = root / name / "commits" / commit_id(files)
            commit.mkdir(parents=True)
            for fname, data in files.items():
                (commit / fname).write_bytes(data)
            (root / name / "tags" / f"v1.{v}.0").write_text(f"{commit.name}\n")
        (root / name / "CURRENT").write_text(f"1.{versions - 1}.0\n")
    names = [f"a{i:04d}" for i in range(n)]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        noop_sync(LocalStore(root), names, f"1.{versions - 1}.0")
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def base_hash(gib: float, work: Path) -> tuple[float, float]:
    from registry.spec.base_model import weights_sha256

    os.environ["REGISTRY_CACHE"] = str(work / "cache-hash")
    folder = work / "base"
    folder.mkdir()
    with (folder / "model.safetensors").open("wb") as f:
        f.truncate(int(gib * 1024**3))  # sparse: no disk used, but every byte is read to hash
    start = time.perf_counter()
    weights_sha256(folder)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    weights_sha256(folder)
    return cold, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="adapter counts, comma-separated")
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--base-gib", type=float, default=4.0)
    parser.add_argument(
        "--no-cold", action="store_true", help="skip the cold and --full runs (warm only)"
    )
    args = parse_args(parser, {"sizes": "10,30", "versions": 3, "base_gib": 0.25})
    sizes = [int(s) for s in args.sizes.split(",")]
    v = args.versions
    out = {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        for n in sizes:
            r = hub_fleet(n, v, work, cold=not args.no_cold)
            r.update({f"sync-{k}": m for k, m in sync_fleet(n, v, work).items()})
            local = local_fleet(n, v, work)
            out[n] = (r, local)

            def cell(key: str, r=r) -> str:
                return f"{r[key][0]:>6} req {r[key][1]:6.2f} s" if key in r else "     -"

            print(
                f"{n:>5} x {v}: no-op sync cold {cell('cold')} | warm {cell('warm')} | "
                f"--full {cell('full')} | versions(100) {cell('versions')} | "
                f"pull {cell('pull')}, cached {cell('pull-cached')} | "
                f"sync() cold {cell('sync-cold')}, warm {cell('sync-warm')} | "
                f"local no-op {local[0]:.2f} s, again {local[1]:.2f} s",
                flush=True,
            )
        cold_h, warm_h = base_hash(args.base_gib, work)
    print(
        f"weights_sha256 of a {args.base_gib:g} GiB base: cold {cold_h:.2f} s, warm {warm_h:.4f} s"
    )
    report(out, sizes, v, args.base_gib, cold_h, warm_h)


def report(out: dict, sizes: list[int], v: int, gib: float, cold_h: float, warm_h: float) -> None:
    big, small = sizes[-1], sizes[0]
    hub, local = out[big]
    warm_req, warm_s = hub["warm"]
    cold = f"cold {hub['cold'][0]} req, {hub['cold'][1]:.1f} s" if "cold" in hub else "no cold run"
    ratio(
        "fleet no-op sync, warm",
        f"{warm_req} req, {warm_s:.2f} s",
        "<= 50 req, <= 5 s at 1000 x 10",
        f"store reads of a no-op sync, {big} x {v}, Hub test server ({cold})",
    )
    sync_req, sync_s = hub["sync-warm"]
    ratio(
        "fleet registry sync() no-op, warm",
        f"{sync_req} req, {sync_s:.2f} s",
        "<= 50 req, <= 5 s at 1000 x 10",
        f"sync() in-process on a git + DVC repo of {big} specs, Hub test server "
        f"(cold {hub['sync-cold'][0]} req, {hub['sync-cold'][1]:.1f} s)",
    )
    if big != small:
        ratio("fleet no-op growth, warm", f"{out[small][0]['warm'][0]} -> {warm_req} req",
              "flat (1 per 1,000 repos: the listing's pages)",
              f"warm requests, {small} -> {big} adapters x {v} versions (+1 with 100)")  # fmt: skip
    if "full" in hub:
        ratio("fleet sync --full vs cold", f"{hub['full'][0]} / {hub['cold'][0]} req", "equal",
              f"--full trusts no cache: every read of a cold run, {big} x {v}")  # fmt: skip
    ratio("fleet versions NAME, warm", f"{hub['versions'][0]} req", "<= 3",
          "`versions` (list + current) of an adapter with 100 versions")  # fmt: skip
    ratio("fleet pull, cold / cached", f"{hub['pull'][0]} / {hub['pull-cached'][0]} req", "flat",
          f"pull NAME@VERSION ({v} versions; adapter cache cold, then cached), fleet of {big}")  # fmt: skip
    ratio("fleet no-op sync, local store", f"{local[1]:.2f} s", "<= 5 s",
          f"{big} x {v}, file reads (first {local[0]:.2f} s)")  # fmt: skip
    ratio("base hash warm", f"{warm_h:.3f} s", "<= 1 s", f"{gib:g} GiB base (cold {cold_h:.1f} s)")


if __name__ == "__main__":
    main()
