"""The package's shape, checked from its source (ast, nothing imported): no import cycles,
stages import only downward, modules stay small, each shared helper has one home.

Imports inside functions count (a lazy import is still a dependency); imports under
`if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "registry"
MAX_LINES = 400
# Modules allowed over MAX_LINES, each with a cap and the reason (keep this list short).
LONG_MODULES: dict[str, tuple[int, str]] = {}

# Which stages each stage may import (its own modules always; `registry` itself for
# __version__). The folder tree is the architecture: nothing below imports anything above.
MAY_IMPORT = {
    "errors": set(),
    "core": {"errors"},
    "spec": {"core", "errors"},
    "artifact": {"core", "errors"},
    "train": {"spec", "artifact", "core", "errors"},
    "evaluate": {"spec", "artifact", "core", "errors"},
    "store": {"spec", "artifact", "core", "errors"},
    "gitops": {"train", "evaluate", "store", "spec", "artifact", "core", "errors"},
    "consume": {"store", "spec", "artifact", "core", "errors"},
    "serve": {"consume", "store", "spec", "artifact", "core", "errors"},
    "demo": {"spec", "artifact", "core", "errors"},
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node, except what sits under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> dict[str, list[str]]:
    """{imported registry module: [names imported from it]}."""
    found: dict[str, list[str]] = {}
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "registry":
                    found.setdefault(_resolve(alias.name), [])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "registry":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                target = full if full in MODULES else _resolve(node.module)
                found.setdefault(target, []).append(alias.name)
    return found


GRAPH = {m: {t for t in _imports(p) if t and t != m} for m, p in MODULES.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "registry"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_whole_package():
    assert {"registry.cli", "registry.train.loop", "registry.core.fs"} <= set(GRAPH)
    assert "registry.train.distributed" in GRAPH["registry.train.loop"]  # edges are found


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_stages_import_only_downward():
    climbs = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _stage(module) in MAY_IMPORT
        and _stage(target) not in MAY_IMPORT[_stage(module)] | {_stage(module), "registry"}
    )
    assert climbs == []


def test_no_private_name_is_imported_across_modules():
    private = sorted(
        f"{module} imports {target}.{name}"
        for module, path in MODULES.items()
        for target, names in _imports(path).items()
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    )
    assert private == []


def test_modules_stay_small():
    too_long = {}
    for path in MODULES.values():
        rel = str(path.relative_to(PACKAGE.parent))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        cap = LONG_MODULES.get(rel, (MAX_LINES, ""))[0]
        if lines > cap:
            too_long[rel] = lines
    assert too_long == {}, f"over {MAX_LINES} lines (or their LONG_MODULES cap): split them"


def test_long_module_allowances_are_still_needed():
    stale = [
        rel
        for rel in LONG_MODULES
        if not (PACKAGE.parent / rel).exists()
        or len((PACKAGE.parent / rel).read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    ]
    assert stale == [], "drop these from LONG_MODULES"


# -- one home per shared helper ------------------------------------------------------------------

# The call, and the one module allowed to make it: everything else uses that module's helper.
HOMES = {
    "os.replace": "registry/core/fs.py",  # atomic_file / atomic_dir
    "os.rename": "registry/core/fs.py",
    "os.link": "registry/core/fs.py",
    "fcntl.flock": "registry/core/fs.py",  # file_lock
    "git subprocess": "registry/core/git.py",  # run_git / try_git
}
# Known leftovers, each to move onto its home by the module's owner; remove the entry then.
KNOWN: dict[tuple[str, str], str] = {}


def _calls(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in HOMES:
            found.add(name)
        elif name.startswith("subprocess.") and node.args:
            first = node.args[0]
            items = first.elts if isinstance(first, ast.List | ast.Tuple) else []
            if items and isinstance(items[0], ast.Constant) and items[0].value == "git":
                found.add("git subprocess")
        elif name.endswith("_run") or name.endswith("_git"):
            # a local runner called with "git" first is a git runner too
            first = node.args[0] if node.args else None
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                if node.args[1].value == "git":
                    found.add("git subprocess")
            elif isinstance(first, ast.Constant) and first.value == "git":
                found.add("git subprocess")
    return found


def test_each_shared_helper_has_one_home():
    strays = {}
    for path in MODULES.values():
        rel = str(path.relative_to(PACKAGE.parent))
        for call in _calls(path):
            if HOMES[call] != rel and (rel, call) not in KNOWN:
                strays[rel] = strays.get(rel, []) + [call]
    assert strays == {}, "use registry.core.fs / registry.core.git instead"


def test_known_leftovers_are_still_there():
    fixed = [
        (rel, call)
        for rel, call in sorted(KNOWN)
        if not (PACKAGE.parent / rel).exists() or call not in _calls(PACKAGE.parent / rel)
    ]
    assert fixed == [], "these are fixed: drop them from KNOWN"


def test_registry_json_is_named_in_one_place():
    """registry.json is read and written through registry.artifact (Provenance): its file
    name, as a value, appears nowhere else (messages may mention it)."""
    named = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value == "registry.json"
    )
    assert named == ["registry/artifact.py"]
