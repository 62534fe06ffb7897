"""Serving test material: real PEFT LoRA versions for the tiny model in a local store, the
library's own answers to compare with, and `registry serve` run for real on 127.0.0.1 (as a
CLI subprocess, or in a thread when a test needs the server object)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from registry.core.proc import stop_process

# (name, version) -> seed: each version is a distinct random LoRA, so the answers tell the
# versions apart (on the tiny random model each greedily repeats one byte: '$', 'e', ...).
SEEDS = {("alpha", "1.0.0"): 3, ("alpha", "1.1.0"): 1, ("beta", "1.0.0"): 14, ("beta", "1.1.0"): 8,
         ("delta", "1.0.0"): 7}  # fmt: skip
PROMPTS = ["dog", "Tell me about the sea."]


def lora_version(
    folder: Path, tiny_model, *, name: str, version: str, seed: int, r: int = 4, dora: bool = False
):
    """A real PEFT LoRA (or DoRA) for the tiny model with non-zero B, plus provenance and a
    passing report, ready for publish_version."""
    from peft import LoraConfig, get_peft_model

    from registry.spec.base_model import load_base_model

    torch.manual_seed(seed)
    model = get_peft_model(
        load_base_model(tiny_model),
        LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], use_dora=dora),
    )
    for pname, param in model.named_parameters():
        if "lora_B" in pname:
            torch.nn.init.normal_(param, std=0.5)
        elif "lora_magnitude_vector" in pname:  # DoRA: a new direction alone moves too little
            param.data.mul_(torch.empty_like(param).uniform_(2.0, 4.0))
    model.save_pretrained(folder)
    fingerprint = f"sha256:{seed:032d}{r:032d}"
    provenance = {
        "name": name,
        "version": version,
        "fingerprint": fingerprint,
        "base_model": tiny_model.provenance(),
        "spec": {"method": "dora" if dora else "lora"},
        "overrides": {},
        "training": {},
    }
    (folder / "registry.json").write_text(json.dumps(provenance))
    report = {"fingerprint": fingerprint, "n_items": 1, "metrics": {}, "gate": {"passed": True}}
    (folder / "report.json").write_text(
        json.dumps({**report, "gate": {"passed": True, "rules": []}})
    )
    return folder


def publish(
    store, tmp: Path, tiny_model, name: str, version: str, *, r: int = 4, dora: bool = False
) -> None:
    from registry.store.publish import publish_version

    folder = tmp / f"build-{name}-{version}"
    seed = SEEDS[(name, version)]
    lora_version(folder, tiny_model, name=name, version=version, seed=seed, r=r, dora=dora)
    publish_version(name, folder, store)


def make_store(
    tmp: Path,
    tiny_model,
    versions: list[tuple[str, str]],
    current: dict[str, str],
    dora: frozenset[str] = frozenset(),
):
    """A file:// store holding `versions`; the names in `dora` are DoRA adapters."""
    from registry.store import open_store

    store = open_store((tmp / "store").as_uri())
    for name, version in versions:
        publish(store, tmp, tiny_model, name, version, dora=name in dora)
    for name, version in current.items():
        store.set_current(name, version)
    return store


def reference(store, refs: list[str]) -> dict[str, dict[str, str]]:
    """The library's answers: ref -> {"chat:PROMPT" | "text:PROMPT": AdapterFleet.generate}."""
    from registry.consume import AdapterFleet
    from registry.store.pull import pull

    pulled = [pull(ref, store) for ref in refs]
    keys = [f"k{i}" for i in range(len(refs))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server runs (Cli); restored for the session's other tests
    try:
        fleet = AdapterFleet(pulled, keys=keys)
        answers: dict[str, dict[str, str]] = {}
        for ref, key in zip(refs, keys, strict=True):
            fleet.use(key)
            answers[ref] = answers_of(fleet)
        with fleet.model.disable_adapter():
            answers["base"] = answers_of(fleet)
    finally:
        torch.set_num_threads(threads)
    return answers


def answers_of(fleet, max_tokens: int = 8) -> dict[str, str]:
    out = {}
    for prompt in PROMPTS:
        out[f"chat:{prompt}"] = fleet.generate([{"role": "user", "content": prompt}], max_tokens)
        out[f"text:{prompt}"] = fleet.generate(prompt, max_tokens)
    return out


def client(url: str):
    import openai

    # no retries: a failed request must show as failed, not be retried away
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)


def get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float, what: str, step: float = 0.05):
    """Poll `predicate` until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Cli:
    """`registry serve ...` in a subprocess; `url` is its /v1 base once it listens."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            # one torch thread: on a shared 2-core machine, OpenMP threads that outnumber
            # the free cores make a tiny forward pass 10x slower (it is no test of speed)
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        line = wait_for(self._listening, 180, "registry serve to listen", step=0.1)
        self.url = line.split("listening on ", 1)[1].strip()
        self.root = self.url.removesuffix("/v1")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def _listening(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"registry serve exited {self.proc.returncode}:\n{self.stderr()}")
        return next((ln for ln in self.lines if "listening on " in ln), None)

    def stderr(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        stop_process(self.proc)


@contextmanager
def held(server) -> Iterator[None]:
    """The server's generation thread blocked in a control task while the block runs: requests
    queue up, and when it is let go the batches form from what waits. Which requests share a
    batch is then decided by the batching rules alone, not by CPU speed or thread timing."""
    gate = threading.Event()
    done = server.engine.batcher.call(gate.wait)
    try:
        yield
    finally:
        gate.set()
        done.result(30)


@contextmanager
def in_thread(options) -> Iterator[tuple[str, object]]:
    """Build a server from ServeOptions and run it under uvicorn in a thread on 127.0.0.1."""
    import uvicorn

    from registry.serve.app import create_app
    from registry.serve.server import bind, build

    server = build(options)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    userver = uvicorn.Server(uvicorn.Config(create_app(server), log_level="warning"))
    thread = threading.Thread(target=userver.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: userver.started, 60, "uvicorn to start")
        yield f"http://127.0.0.1:{port}/v1", server
    finally:
        userver.should_exit = True
        thread.join(30)
        sock.close()
