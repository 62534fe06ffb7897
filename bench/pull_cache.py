"""`registry pull`: cold (empty cache, download + verify) vs cached (verify only), both stores.

One toy version is trained, evaluated and published (registry.store.publish.publish_version) to a
file:// store and to the Hub test server (tests/hub_server.py over HTTP on 127.0.0.1, driven by
the real huggingface_hub client). Then, per store, the median of --repeats in-process pulls of
`toy@1.0.0`:
  cold    the adapter cache (REGISTRY_CACHE/adapters) emptied first: resolve, download,
          verify every sha256, move into the cache;
  cached  the cache entry present: resolve, re-verify every sha256 (pull always does), no
          download. On the Hub the request log proves it: no adapter file is fetched (resolving a
          version reads the versions' registry.json manifests, cached or not).
Both pay the resolve (version listing) against the store. The adapter's size sets the download
cost: --model smollm2 gives a realistic one (r=8 on q/k/v/o, ~3.5 MB), tiny a few KB.

    python bench/pull_cache.py [--model tiny|smollm2] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchkit import BASE_MODELS, isolated_cache, parse_args, ratio, toy_spec, write_toy_data

TESTS = Path(__file__).resolve().parents[1] / "tests"


def publishable_adapter(root: Path, base: str, steps: int) -> Path:
    """Train and evaluate the toy adapter (the gate must pass for publish to accept it)."""
    from registry.evaluate.run import evaluate
    from registry.spec.schema import load_spec
    from registry.train import train

    spec_file = root / "adapters" / "toy" / "adapter.yaml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(toy_spec(base, steps))
    write_toy_data(root)
    spec = load_spec(spec_file)
    start = time.perf_counter()
    adapter = train(spec, root / "out" / "toy", progress=False).adapter_dir
    trained = time.perf_counter()
    if not evaluate(spec, adapter, progress=False).gate.passed:
        sys.exit("the toy adapter did not pass its gate; raise --steps")
    print(f"set-up: trained in {trained - start:.1f} s, evaluated in "
          f"{time.perf_counter() - trained:.1f} s (not timed below)")  # fmt: skip
    return adapter


def timed_pull(store) -> float:
    from registry.store.pull import pull

    start = time.perf_counter()
    pulled = pull("toy@1.0.0", store)
    seconds = time.perf_counter() - start
    if pulled.version != "1.0.0" or not pulled.files:
        sys.exit(f"pulled {pulled}")
    return seconds


def cold_pulls(store, cache: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        shutil.rmtree(cache / "adapters", ignore_errors=True)
        times.append(timed_pull(store))
    return times  # the last one leaves the cache filled


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(BASE_MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=12, help="training steps of the toy adapter")
    parser.add_argument("--repeats", type=int, default=5)
    args = parse_args(parser, {"model": "tiny", "steps": 6, "repeats": 3})

    import pytest

    sys.path.insert(0, str(TESTS))
    from hub_server import running_hub

    from registry.store import open_store
    from registry.store.publish import publish_version

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as name:
        tmp = Path(name)
        cache = isolated_cache(tmp)
        os.environ["REGISTRY_CACHE"] = str(cache)  # read on every call by registry.spec.base_model
        adapter = publishable_adapter(tmp / "src", BASE_MODELS[args.model], args.steps)
        size = sum(p.stat().st_size for p in adapter.iterdir() if p.suffix == ".safetensors")
        local = open_store((tmp / "store").as_uri())
        publish_version("toy", adapter, local)
        cold = cold_pulls(local, cache, args.repeats)
        results["file://"] = (cold, [timed_pull(local) for _ in range(args.repeats)])
        with pytest.MonkeyPatch.context() as mp, running_hub(mp) as hub:
            hub_store = open_store("hf://bench")
            publish_version("toy", adapter, hub_store)
            cold = cold_pulls(hub_store, cache, args.repeats)
            before = len(hub.log)
            warm = [timed_pull(hub_store) for _ in range(args.repeats)]
            fetched = [
                r
                for r in hub.log[before:]
                if "/resolve/" in r.path and not r.path.endswith("/registry.json")
            ]  # manifests: resolve reads them
            if fetched:
                sys.exit(f"a cached pull downloaded files: {[r.path for r in fetched]}")
            results["Hub (test server)"] = (cold, warm)

    model = BASE_MODELS[args.model].removeprefix("builtin:")
    print(f"\nadapter_model.safetensors: {size / 1e6:.2f} MB ({model}); median of {args.repeats}")
    print("| store | cold pull ms | cached pull ms | cold / cached |")
    print("|---|---:|---:|---:|")
    for store_name, (cold, warm) in results.items():
        c, w = statistics.median(cold) * 1e3, statistics.median(warm) * 1e3
        print(f"| {store_name} | {c:.1f} | {w:.1f} | {c / w:.1f}x |")
    for store_name, (cold, warm) in results.items():
        c, w = statistics.median(cold), statistics.median(warm)
        ratio(f"pull cold vs cached, {store_name}", f"{c / w:.1f}x", "> 1x",
              f"{c * 1e3:.0f} ms vs {w * 1e3:.0f} ms (sha256 re-verified), in-process, "
              f"{size / 1e6:.2f} MB adapter ({model}), median of {args.repeats}")  # fmt: skip


if __name__ == "__main__":
    main()
