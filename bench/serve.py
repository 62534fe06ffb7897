"""`registry serve` throughput: one adapter vs four interleaved on one base, same run.

Four LoRA versions (random, non-zero B, r=8 on q/k/v/o: what a trained one costs to run) are
published to a file:// store and served by the real `registry serve` CLI on 127.0.0.1. A fixed
number of chat requests (--requests, --max-tokens each, greedy) is sent by --clients concurrent
`openai` clients, in two scenarios measured alternately (--repeats rounds each):
  one    every request names the same adapter: concurrent requests share batches;
  four   request i names adapter i % 4: one base; concurrent requests of the four adapters
         share batches too (PEFT's mixed-batch inference, one adapter per row), at the cost
         of each LoRA layer gathering its rows per adapter.
Per scenario: requests/s, p50 and p99 latency, the mean batch size and the share of batches
holding more than one adapter (both from /health). The ratio is the switching overhead:
requests/s of one adapter / requests/s of four (1.0 = free). Both scenarios run on the same
server, alternately, with the same prompts, clients and token counts.

    python bench/serve.py [--model smollm2|tiny] [--requests 48] [--clients 8] [--quick]

~4 min for the defaults on 2 quiet CPU cores (SmolLM2), ~15 s with --quick.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchkit import BASE_MODELS, isolated_cache, parse_args, ratio

from registry.core.proc import stop_process

PROMPTS = [
    "My order #4417 has not arrived and I am upset.",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "How do I reset my password?",
]


def publish_versions(store_url: str, base_ref: str, tmp: Path, n: int) -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model, resolve_base_model
    from registry.store import open_store
    from registry.store.publish import publish_version

    resolved = resolve_base_model(base_ref)
    store = open_store(store_url)
    names = []
    for i in range(n):
        name, folder = f"bench-{i}", tmp / f"build-{i}"
        torch.manual_seed(i)
        model = get_peft_model(
            load_base_model(resolved),
            LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
        )
        for pname, param in model.named_parameters():
            if "lora_B" in pname:
                torch.nn.init.normal_(param, std=0.02)
        model.save_pretrained(folder)
        fingerprint = f"sha256:{i:064d}"
        provenance = {"name": name, "version": "1.0.0", "fingerprint": fingerprint,
                      "base_model": resolved.provenance(), "spec": {"method": "lora"},
                      "overrides": {}, "training": {}}  # fmt: skip
        (folder / "registry.json").write_text(json.dumps(provenance))
        report = {"fingerprint": fingerprint, "n_items": 1, "metrics": {},
                  "gate": {"passed": True, "rules": []}}  # fmt: skip
        (folder / "report.json").write_text(json.dumps(report))
        publish_version(name, folder, store)
        store.set_current(name, "1.0.0")
        names.append(name)
    return names


class Server:
    def __init__(self, store_url: str, env: dict[str, str], log: Path, batch: int) -> None:
        cmd = [sys.executable, "-m", "registry", "serve", "--store", store_url, "--host",
               "127.0.0.1", "--port", "0", "--poll-interval", "60", "--max-batch-size",
               str(batch)]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env
        )
        deadline = time.monotonic() + 600
        for line in self.proc.stdout:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].strip()
                break
            if time.monotonic() > deadline:
                break
        else:
            sys.exit(f"registry serve did not start:\n{log.read_text()[-3000:]}")
        self.root = self.url.removesuffix("/v1")

    def batching(self) -> dict:
        with urllib.request.urlopen(self.root + "/health", timeout=30) as r:
            return json.loads(r.read())["batching"]

    def stop(self) -> None:
        stop_process(self.proc)


def load(url: str, models: list[str], requests: int, clients: int, max_tokens: int) -> dict:
    """Send `requests` chat requests from `clients` threads; model of request i: models[i % n]."""
    import openai

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                client.chat.completions.create(
                    model=models[i % len(models)],
                    messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    max_tokens=max_tokens,
                )
            except Exception as exc:  # counted, and the bench fails below
                errors.append(repr(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    # daemon: a SIGTERM (run_all's timeout) ends the bench without waiting for the clients
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BASE_MODELS), default="smollm2")
    parser.add_argument("--requests", type=int, default=48, help="per scenario and round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (one, four)")
    args = parse_args(parser, {"model": "tiny", "requests": 24, "repeats": 1})

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache = isolated_cache(tmp)
        os.environ["REGISTRY_CACHE"] = str(cache)
        store_url = (tmp / "store").as_uri()
        start = time.perf_counter()
        names = publish_versions(store_url, BASE_MODELS[args.model], tmp, 4)
        print(f"set-up: 4 versions published in {time.perf_counter() - start:.0f} s", flush=True)
        server = Server(store_url, {**os.environ}, tmp / "serve.log", batch=args.clients)
        try:
            scenarios = {"one": names[:1], "four": names}
            # warm-up, discarded: each adapter's first forward, and one full round of each
            # scenario (the first batches of a new shape are slower than the rest)
            for model in names:
                load(server.url, [model], 2, 1, args.max_tokens)
            for models in scenarios.values():
                load(server.url, models, 2 * args.clients, args.clients, args.max_tokens)
            runs: dict[str, list[dict]] = {k: [] for k in scenarios}
            for _ in range(args.repeats):
                for label, models in scenarios.items():
                    before = server.batching()
                    run = load(server.url, models, args.requests, args.clients, args.max_tokens)
                    after = server.batching()
                    done = after["requests"] - before["requests"]
                    batches = max(1, after["batches"] - before["batches"])
                    run["batch"] = done / batches
                    run["mixed"] = (after["mixed"] - before["mixed"]) / batches
                    runs[label].append(run)
                    print(f"{label}: {run['rps']:.2f} requests/s, p50 {run['p50']:.2f} s, "
                          f"batch {run['batch']:.1f}, mixed {run['mixed']:.0%}", flush=True)  # fmt: skip
        finally:
            server.stop()

    summary = {
        label: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for label, rs in runs.items()
    }
    print(f"\n{args.requests} requests x {args.repeats} rounds per scenario, {args.clients} "
          f"clients, {args.max_tokens} new tokens each, greedy, base {BASE_MODELS[args.model]}")  # fmt: skip
    print("| adapters | requests/s | p50 latency | p99 latency | mean batch | mixed batches |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, s in summary.items():
        print(f"| {label} | {s['rps']:.2f} | {s['p50'] * 1000:.0f} ms | {s['p99'] * 1000:.0f} ms "
              f"| {s['batch']:.1f} | {s['mixed']:.0%} |")  # fmt: skip
    overhead = summary["one"]["rps"] / summary["four"]["rps"]
    ratio(
        "serve switching overhead",
        f"{overhead:.2f}x",
        "<= 2x",
        f"requests/s, 1 adapter ({summary['one']['rps']:.2f}/s) / 4 interleaved on one base "
        f"({summary['four']['rps']:.2f}/s, mixed-adapter batches), {args.clients} clients",
    )
    ratio(
        "serve p99 latency, 4 adapters / 1",
        f"{summary['four']['p99'] / summary['one']['p99']:.2f}x",
        "<= 2x",
        f"p99 {summary['four']['p99'] * 1000:.0f} ms vs {summary['one']['p99'] * 1000:.0f} ms",
    )


if __name__ == "__main__":
    main()
