"""`registry demo`: the three user stories end to end, in a fresh sandbox, with narration.

A temporary registry repo (real git + real DVC with a local remote) and a `file://` store are
created under the work dir; every step runs the real `registry` CLI as a subprocess, exactly as
the GitHub workflows do:

    PR adds a spec -> plan -> validate -> train -> eval (base vs prompt baseline vs adapter)
    -> gate -> report -> merge -> sync publishes 1.0.0 -> pull by version and generate
    -> PR changes the adapter to 1.1.0 -> merge -> sync publishes 1.1.0
    -> git revert of that merge -> sync rolls back to 1.0.0 (no training) -> pull shows 1.0.0
    -> `registry serve`, which served 1.1.0, answers with 1.0.0 again (no restart)
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from registry.artifact import read_provenance
from registry.core.proc import stop_process
from registry.errors import GateFailed, RegistryError

DEMO_ADAPTER = "ticket-json"


@dataclass
class Sandbox:
    """A throwaway registry: git repo + DVC local remote + file:// store."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.workdir / "repo"

    @property
    def store_url(self) -> str:
        return (self.workdir / "store").resolve().as_uri()

    def run(
        self, *cmd: str, check: bool = True, quiet: bool = False
    ) -> subprocess.CompletedProcess:
        """Run a command in the repo, echoing it like a terminal session."""
        shown = " ".join(cmd).replace(sys.executable + " -m ", "")
        print(_style(f"$ {shown}", "cyan"), flush=True)
        proc = subprocess.run(
            cmd,
            cwd=self.repo,
            env={**os.environ, **self.env},
            text=True,
            stdout=subprocess.PIPE if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
        )
        if check and proc.returncode != 0:
            if quiet and proc.stdout:
                print(proc.stdout)
            raise RegistryError(f"demo step failed (exit {proc.returncode}): {shown}")
        return proc

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("git", *args, quiet=True)

    def dvc(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, quiet=True)

    def registry(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "registry", *args, check=check)

    def timed(self, label: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        proc = self.registry(*args, check=check)
        self.timings[label] = time.perf_counter() - start
        return proc


def _style(text: str, color: str) -> str:
    codes = {"cyan": "36", "bold": "1", "green": "32", "red": "31", "yellow": "33"}
    return f"\x1b[{codes[color]}m{text}\x1b[0m" if sys.stdout.isatty() else text


def narrate(step: str, text: str) -> None:
    print("\n" + _style(f"== {step} ==", "bold"))
    print(text, flush=True)


def _source_root() -> Path:
    """The checkout holding the example spec and its data recipe (the demo copies them)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "adapters" / DEMO_ADAPTER / "adapter.yaml").exists():
        raise RegistryError(
            "registry demo runs from a checkout of the project (it copies adapters/ticket-json)"
        )
    return root


def _write_demo_spec(sb: Sandbox, version: str, eval_limit: int) -> None:
    """The repo's example spec as it is (its training budget is calibrated for 2 CPU cores),
    with a smaller eval sample: an ordinary spec value, so the demo's versions are regular,
    publishable versions and nothing is an override."""
    source = _source_root() / "adapters" / DEMO_ADAPTER / "adapter.yaml"
    spec = yaml.safe_load(source.read_text())
    spec["version"] = version
    spec["eval"]["limit"] = eval_limit
    target = sb.repo / "adapters" / DEMO_ADAPTER / "adapter.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(spec, sort_keys=False, width=100))


def _setup(sb: Sandbox) -> None:
    sb.repo.mkdir(parents=True)
    (sb.workdir / "dvc-remote").mkdir()
    sb.git("init", "-q", "-b", "main")
    sb.git("config", "user.email", "demo@example.com")
    sb.git("config", "user.name", "Registry Demo")
    sb.dvc("init", "-q")
    sb.dvc("remote", "add", "-d", "local", str((sb.workdir / "dvc-remote").resolve()))
    (sb.repo / "README.md").write_text("# Adapter registry (demo)\n")
    (sb.repo / ".gitignore").write_text("/runs/\n")
    sb.git("add", "-A")
    sb.git("commit", "-q", "-m", "Initialise the adapter registry")


def _add_data(sb: Sandbox) -> None:
    source = _source_root() / "datasets" / DEMO_ADAPTER
    if not source.exists():
        raise RegistryError(f"{source} is missing: run `make data` first")
    shutil.copytree(source, sb.repo / "datasets" / DEMO_ADAPTER)
    sb.dvc("add", "-q", "datasets")
    sb.dvc("push", "-q")


def _merge(sb: Sandbox, branch: str, title: str) -> str:
    sb.git("checkout", "-q", "main")
    sb.git("merge", "-q", "--no-ff", branch, "-m", title)
    return sb.git("rev-parse", "HEAD").stdout.strip()


def _pr_train_eval(sb: Sandbox, label: str, out: str) -> None:
    sb.registry("plan", "--base", "main")
    sb.registry("validate", DEMO_ADAPTER, "--no-tokens")
    sb.timed(f"train {label}", "train", DEMO_ADAPTER, "--out", out)
    proc = sb.timed(
        f"eval {label}", "eval", DEMO_ADAPTER, "--adapter", out, "--against-current", check=False
    )
    if proc.returncode not in (0, 3):
        raise RegistryError(f"eval failed with exit {proc.returncode}")
    report = (sb.repo / out / "report.md").read_text()
    # The verdict, the metrics, the gate and the regression suites (with what broke); the
    # worst task examples and provenance stay in the file.
    print("\n" + report.split("### Worst examples")[0].rstrip())
    if proc.returncode == 3:
        raise GateFailed(f"the {label} adapter did not pass its gate; see {out}/report.md")


def _generate(sb: Sandbox, adapter_dir: Path) -> None:
    """What a consumer does: plain PEFT on the base model, no registry code in the loop."""
    import torch
    from peft import PeftModel

    from registry.spec.base_model import load_base_model, load_tokenizer, resolve_base_model
    from registry.spec.data import load_examples, render_prompt
    from registry.spec.schema import load_spec

    spec = load_spec(sb.repo / "adapters" / DEMO_ADAPTER / "adapter.yaml")
    examples = load_examples(spec.eval_path, spec.data.format, spec.data.system_prompt)[:3]
    base = resolve_base_model(spec.base_model)
    tokenizer = load_tokenizer(base)
    model = PeftModel.from_pretrained(load_base_model(base), adapter_dir)
    for example in examples:  # the first three eval tickets, right or wrong
        inputs = tokenizer(
            render_prompt(tokenizer, example), return_tensors="pt", add_special_tokens=False
        )
        with torch.no_grad():
            out = model.generate(
                **inputs, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        mark = "exact match" if text.strip() == example.answer else "differs"
        print(f"\nticket:    {example.prompt_text[:150]}")
        print(f"adapter:   {text.strip()}")
        print(f"reference: {example.answer}   ({mark})")


class _Served:
    """`registry serve` next to the registry, following the demo's store (HTTP on 127.0.0.1)."""

    def __init__(self, sb: Sandbox, name: str = DEMO_ADAPTER, poll: float = 1.0) -> None:
        args = ["serve", "--port", "0", "--poll-interval", str(poll), "--adapters", name]
        print(_style(f"$ registry {' '.join(args)} &", "cyan"), flush=True)
        self.name, self.lines = name, []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "registry", *args],
            cwd=sb.repo,
            env={**os.environ, **sb.env},
            stdout=subprocess.PIPE,
            text=True,
        )
        atexit.register(self.stop)  # whatever happens next, no server is left behind
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        line = self._wait(lambda: next((x for x in self.lines if "listening on" in x), None), 300)
        self.url = line.split("listening on ", 1)[1].strip().removesuffix("/v1")

    def _wait(self, check, seconds: float):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryError(f"registry serve exited with {self.proc.returncode}")
            found = check()
            if found:
                return found
            time.sleep(0.2)
        raise RegistryError(f"registry serve: nothing after {seconds:.0f} s")

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def ask(self, messages: list[dict[str, str]]) -> str:
        """One chat completion, as any OpenAI client sends it; prints who answered."""
        body = {"model": self.name, "messages": messages, "max_tokens": 64}
        answer = self._call("/v1/chat/completions", body)
        print(f"served by {answer['model']}: {answer['choices'][0]['message']['content']}")
        return answer["model"]

    def serving(self, version: str, seconds: float = 60) -> None:
        current = lambda: self._call("/health")["adapters"][self.name]["current"]  # noqa: E731
        self._wait(lambda: current() == version, seconds)

    def stop(self) -> None:
        stop_process(self.proc)


def _ticket(sb: Sandbox) -> list[dict[str, str]]:
    from registry.spec.data import load_examples
    from registry.spec.schema import load_spec

    spec = load_spec(sb.repo / "adapters" / DEMO_ADAPTER / "adapter.yaml")
    example = load_examples(spec.eval_path, spec.data.format, spec.data.system_prompt)[0]
    return list(example.messages)


def run_demo(workdir: Path | None = None, *, eval_limit: int = 32) -> dict:
    """Play the story; return a summary. Raises RegistryError when a step fails."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="registry-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise RegistryError(f"--workdir {workdir} is not empty")
    sb = Sandbox(
        workdir, env={"REGISTRY_STORE": "", "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1"}
    )
    sb.env["REGISTRY_STORE"] = sb.store_url
    start = time.perf_counter()

    narrate("0. Set up", f"A fresh registry repo (git + DVC, local remote) in {workdir}")
    _setup(sb)

    narrate("1. PR #1 adds ticket-json 1.0.0", "A spec and its DVC-tracked data on a branch.")
    sb.git("checkout", "-q", "-b", "add-ticket-json")
    _write_demo_spec(sb, "1.0.0", eval_limit=eval_limit)
    _add_data(sb)
    sb.git("add", "-A")
    sb.git("commit", "-q", "-m", "Add ticket-json 1.0.0")
    narrate("2. CI on PR #1", "plan -> validate -> train -> eval + gate (the required check)")
    _pr_train_eval(sb, "1.0.0", "runs/pr1")

    narrate(
        "3. Merge PR #1, sync publishes 1.0.0",
        "Same fingerprint: the PR's weights and its evaluation are reused, nothing is redone.",
    )
    _merge(sb, "add-ticket-json", "Merge PR #1: add ticket-json")
    sb.timed("sync publish 1.0.0", "sync")

    narrate("4. A consumer pulls ticket-json@1.0.0", "Resolved to a commit, sha256-verified.")
    consumer = workdir / "consumer" / "ticket-json-1.0.0"
    sb.registry("pull", f"{DEMO_ADAPTER}@1.0.0", "--out", str(consumer))
    _generate(sb, consumer)

    narrate(
        "5. PR #2 changes the adapter to 1.1.0",
        "Twice the LoRA rank (r 32, alpha 64): the weights change, so CI retrains. Its eval\n"
        "also runs 1.0.0, the version served now, as a fourth contender; the base model's\n"
        "validation loss and outputs and the prompt baseline's are remembered from PR #1.",
    )
    sb.git("checkout", "-q", "-b", "tune-ticket-json")
    spec_path = sb.repo / "adapters" / DEMO_ADAPTER / "adapter.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["version"] = "1.1.0"
    spec["lora"]["r"] *= 2
    spec["lora"]["alpha"] *= 2
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False, width=100))
    sb.git("commit", "-q", "-am", "ticket-json 1.1.0: LoRA rank 32")
    _pr_train_eval(sb, "1.1.0", "runs/pr2")
    merge_2 = _merge(sb, "tune-ticket-json", "Merge PR #2: ticket-json 1.1.0")
    sb.timed("sync publish 1.1.0", "sync")
    sb.registry("versions", DEMO_ADAPTER)

    narrate(
        "6. Serve it",
        "An OpenAI-compatible server next to the registry follows the store's current version.",
    )
    served = _Served(sb)
    served.ask(_ticket(sb))

    narrate("7. Roll back by reverting PR #2", "main declares 1.0.0 again; sync trains nothing.")
    sb.git("revert", "--no-edit", "-m", "1", merge_2)
    sb.timed("sync rollback", "sync")
    sb.registry("versions", DEMO_ADAPTER)
    pulled = sb.registry("pull", DEMO_ADAPTER, "--out", str(workdir / "consumer" / "current"))
    assert pulled.returncode == 0
    current = read_provenance(workdir / "consumer" / "current")

    narrate("8. The served answer changes back", "Within one poll: no restart, no deploy.")
    served.serving(current.version)
    served_by = served.ask(_ticket(sb))
    served.stop()
    if served_by != f"{DEMO_ADAPTER}@{current.version}":
        raise RegistryError(f"the server still answers with {served_by} after the rollback")

    total = time.perf_counter() - start
    summary = {
        "workdir": str(workdir),
        "current": current.version,
        "seconds": total,
        "timings": sb.timings,
    }
    narrate("Summary", _summary_table(sb, current.version, total))
    return summary


def _summary_table(sb: Sandbox, current: str, total: float) -> str:
    rows = ["| step | seconds |", "|---|---:|"]
    rows += [f"| {label} | {secs:.1f} |" for label, secs in sb.timings.items()]
    rows.append(f"| **total** | **{total:.0f}** |")
    rollback = sb.timings.get("sync rollback", 0.0)
    # The training's own wall time (the step above may have been a cache hit).
    train = float(read_provenance(sb.repo / "runs" / "pr1").training.get("wall_s", 0.0))
    return "\n".join(rows) + (
        f"\n\nCurrent version after the revert: {current} (rollback took {rollback:.1f} s; "
        f"training 1.0.0 took {train:.0f} s)\n"
        f"Reports: {sb.repo}/runs/pr1/report.md, {sb.repo}/runs/pr2/report.md\n"
        f"Store:   {sb.store_url}"
    )
