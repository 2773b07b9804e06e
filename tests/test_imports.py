"""The package's import graph: no cycle among module-level imports, and no import of the package's own
modules inside a function (where cycles hide) except the CLI deferring each command's module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "earlyreadout"
DEFERRED_OK = ("earlyreadout.cli",)  # the CLI loads a command's module only when it runs, so --help stays fast


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(node: ast.AST) -> list[str]:
    """Names of earlyreadout modules that an import statement brings in."""
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("earlyreadout"):
        return [node.module]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("earlyreadout")]
    return []


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """(module -> modules it imports at module level, imports found inside functions)."""
    edges: dict[str, set[str]] = {}
    nested: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        tree = ast.parse(path.read_text())
        edges[name] = set()
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            edges[name].update(m for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
                               for m in own_imports(sub))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nested += [f"{name}: {m}" for sub in ast.walk(node) for m in own_imports(sub)]
    return edges, nested


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as [a, b, ..., a] (imports name modules or packages), or None."""
    known = set(edges)

    def resolve(target: str) -> str | None:  # "earlyreadout.data.loader", or the package that holds it
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(filter(None, map(resolve, edges[m]))):
            if t == m:
                continue
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_hand_made_cycle():
    assert find_cycle({"p.a": {"p.b.x"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}) is None


def test_no_import_cycle():
    edges, _ = graph()
    assert len(edges) > 50
    assert find_cycle(edges) is None


def test_own_modules_are_imported_at_module_level():
    _, nested = graph()
    assert [n for n in nested if not n.split(":")[0].startswith(DEFERRED_OK)] == []


def test_the_top_level_stays_small_and_files_stay_short():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) >= 350}
    assert long == {}
