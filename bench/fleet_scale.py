"""Hub requests and seconds of the store reads of a no-op `registry sync` as a fleet grows, and
the time to hash a multi-GB base model's weights cold vs warm.

The fleet is seeded straight into the project's Hub test server (tests/hub_server.py: N adapters
x V versions, each version one tagged commit, main = the last); the reads then go through the
real huggingface_hub client, as `registry sync` makes them when every declared version is
published and current: per adapter versions(), manifest() (the conflict check) and current();
then list_adapters(). "cold" is a fresh registry cache, "warm" a second run (a new HubStore,
the same cache, as the next sync process).

RATIO lines: warm requests of the largest fleet (target <= 50 for 1,000 x 10: NOT met, the
per-adapter refs reads remain; see the issue 16 report), warm growth per 10x adapters, warm
`versions NAME` requests with V versions (target <= 3), the warm hash of the base (target <= 1 s).

    python bench/fleet_scale.py                       # 10, 100 adapters x 10 versions, 4 GiB base
    python bench/fleet_scale.py --sizes 10,100,1000 --base-gib 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from benchkit import parse_args, ratio  # noqa: E402


def seed(hub, org: str, adapters: int, versions: int) -> list[str]:
    from storekit import make_files

    from registry.core.fs import sha256_bytes

    names = [f"a{i:04d}" for i in range(adapters)]
    for name in names:
        hub.create_repo(f"{org}/{name}", private=True)
        repo = hub.repos[f"{org}/{name}"]
        head = repo.branches["main"]
        for v in range(versions):
            version = f"1.{v}.0"
            files = make_files(version, fingerprint=f"{name}-{v}")
            manifest = json.loads(files["registry.json"])
            manifest["files"] = {
                p: sha256_bytes(d) for p, d in files.items() if p != "registry.json"
            }
            files["registry.json"] = json.dumps(manifest).encode()
            repo.tags[f"v{version}"] = hub.new_commit(repo, files, head, f"{name} {version}")
        repo.branches["main"] = repo.tags[f"v1.{versions - 1}.0"]
    return names


def noop_reads(org: str, names: list[str], version: str) -> None:
    from registry.store import open_store

    store = open_store(f"hf://{org}")
    for name in names:
        store.versions(name)
        store.manifest(name, version)
        store.current(name)
    store.list_adapters()


def measure(hub, fn) -> tuple[int, float]:
    hub.clear_log()
    start = time.perf_counter()
    fn()
    return len(hub.requests()), time.perf_counter() - start


def fleet(sizes: list[int], versions: int, work: Path) -> dict[int, tuple]:
    from hub_server import running_hub
    from pytest import MonkeyPatch

    out = {}
    for n in sizes:
        mp = MonkeyPatch()
        mp.setenv("REGISTRY_CACHE", str(work / f"cache-{n}"))
        with running_hub(mp) as hub:
            names = seed(hub, "bench-org", n, versions)
            last = f"1.{versions - 1}.0"
            cold = measure(hub, lambda n=names, v=last: noop_reads("bench-org", n, v))
            warm = measure(hub, lambda n=names, v=last: noop_reads("bench-org", n, v))
            from registry.store import open_store

            vers = measure(hub, lambda n=names: open_store("hf://bench-org").versions(n[0]))
        mp.undo()
        out[n] = (cold, warm, vers)
        print(
            f"{n:>5} x {versions}: cold {cold[0]:>6} req {cold[1]:7.2f} s | warm {warm[0]:>6} req "
            f"{warm[1]:7.2f} s | versions(NAME) warm {vers[0]} req",
            flush=True,
        )
    return out


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
    args = parse_args(parser, {"sizes": "10,30", "versions": 3, "base_gib": 0.25})
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        out = fleet(sizes, args.versions, work)
        cold_h, warm_h = base_hash(args.base_gib, work)
    print(
        f"weights_sha256 of a {args.base_gib:g} GiB base: cold {cold_h:.2f} s, warm {warm_h:.4f} s"
    )
    big, small = sizes[-1], sizes[0]
    (_, _), (warm_req, warm_s), (vers_req, _) = out[big]
    ratio(
        "fleet_noop_sync_requests",
        f"{warm_req} req, {warm_s:.1f} s",
        "<= 50 req, <= 5 s at 1000 x 10",
        f"warm no-op sync reads, {big} x {args.versions} (cold {out[big][0][0]} req)",
    )
    ratio(
        "fleet_growth",
        f"{warm_req / max(out[small][1][0], 1):.1f}x",
        "flat",
        f"warm requests {small} -> {big} adapters x {args.versions} versions",
    )
    ratio(
        "fleet_versions_requests",
        str(vers_req),
        "<= 3",
        f"warm `versions` with {args.versions} versions",
    )
    ratio(
        "base_hash_warm",
        f"{warm_h:.3f} s",
        "<= 1 s",
        f"{args.base_gib:g} GiB base (cold {cold_h:.1f} s)",
    )


if __name__ == "__main__":
    main()
