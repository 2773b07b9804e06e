"""The package's import graph: no cycle among module-level imports, every import pointing down the declared
layers, no method file importing another method's file, and no import of the package's own modules inside a
function (where cycles hide) except the CLI deferring each command's module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "earlyreadout"
DEFERRED_OK = ("earlyreadout.cli",)  # the CLI loads a command's module only when it runs, so --help stays fast
LAZY_PACKAGE = "earlyreadout"  # the package's public names (earlyreadout.api) load on first use, for the same reason

# the floors of the house, from the ground up: a module imports (at module level) only from its own floor or
# those below; each floor is a set of module or package names (a package holds its submodules)
LAYERS: list[set[str]] = [
    {"earlyreadout", "earlyreadout.errors"},  # the package's version, exceptions
    {"earlyreadout.io", "earlyreadout.progress", "earlyreadout.params", "earlyreadout.registry",
     "earlyreadout.distributed"},  # ground floor: files, progress bars, declarations, devices and precision
    {"earlyreadout.data"},  # datasets and loaders
    {"earlyreadout.models", "earlyreadout.metrics"},  # networks, layer lookup, taps, batch inference; metrics
    {"earlyreadout.readout"},  # readout heads, scores and instance weights, the sieve, probes
    {"earlyreadout.lastlayer"},  # last-layer retraining algorithms
    {"earlyreadout.methods"},  # training methods
    {"earlyreadout.config"},  # the run configuration, validated against the registries
    {"earlyreadout.train"},  # the recipe: engine, run directories, retraining
    {"earlyreadout.explain"},  # reading finished runs: diagnosis, Grad-CAM
    {"earlyreadout.report"},
    {"earlyreadout.experiments"},  # the experiment model: jobs, their log, studies and their plans
    {"earlyreadout.compare", "earlyreadout.search"},  # drivers
    {"earlyreadout.api"},  # the public API: data, a trained model, its diagnosis and fix in a few calls
    {"earlyreadout.cli", "earlyreadout.__main__"},  # commands
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(node: ast.AST) -> list[str]:
    """Names of earlyreadout modules that an import statement brings in."""
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("earlyreadout"):
        return [f"{node.module}.{a.name}" for a in node.names]  # a module, or a name inside one
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


def resolve(target: str, known: set[str]) -> str | None:
    """The module an import names: `target` itself, or the module or package that holds it."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as [a, b, ..., a] (imports name modules or packages), or None."""
    known = set(edges)

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(filter(None, (resolve(e, known) for e in edges[m]))):
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


def layer_of(module: str, layers: list[set[str]]) -> int | None:
    """The floor declaring `module`: the one with the longest name that is it or a package holding it."""
    found = [(len(name), i) for i, names in enumerate(layers) for name in names
             if module == name or module.startswith(name + ".")]
    return max(found)[1] if found else None


def upward_imports(edges: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Every import from a lower floor into a higher one, as 'importer -> imported'."""
    known = set(edges)
    return sorted({f"{m} -> {t}" for m, targets in edges.items() for e in targets
                   if (t := resolve(e, known)) and layer_of(t, layers) > layer_of(m, layers)})


def method_files(edges: dict[str, set[str]]) -> set[str]:
    """The modules of `methods/` that register a training method."""
    return {m for m in edges if m.startswith("earlyreadout.methods.") and "@register(" in source(m).read_text()}


def source(module: str) -> Path:
    """The file of `module`: its .py, or its package's __init__.py."""
    path = PACKAGE.parent / module.replace(".", "/")
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def test_the_cycle_finder_finds_a_hand_made_cycle():
    assert find_cycle({"p.a": {"p.b.x"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}) is None


def test_no_import_cycle():
    edges, _ = graph()
    assert len(edges) > 50
    assert find_cycle(edges) is None


def test_own_modules_are_imported_at_module_level():
    _, nested = graph()
    where = [n.split(":")[0] for n in nested]
    assert [n for n, w in zip(nested, where) if not (w.startswith(DEFERRED_OK) or w == LAZY_PACKAGE)] == []


def test_the_top_level_stays_small_and_files_stay_short():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 13, top
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) >= 350}
    assert long == {}


def test_no_function_is_longer_than_sixty_lines():
    long = [f"{p.relative_to(PACKAGE)}:{n.name} ({n.end_lineno - n.lineno + 1})" for p in PACKAGE.rglob("*.py")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []


def test_the_layer_check_finds_a_hand_made_upward_import():
    layers = [{"p.low"}, {"p.mid"}, {"p.top"}]
    edges = {"p.low": {"p.top.x.f"}, "p.mid": {"p.low.g"}, "p.top": {"p.mid"}, "p.top.x": set()}
    assert upward_imports(edges, layers) == ["p.low -> p.top.x"]
    assert layer_of("p.top.x", layers) == 2 and layer_of("p.other", layers) is None


def test_every_module_sits_on_a_declared_floor():
    edges, _ = graph()
    floors = [names - {PACKAGE.name} for names in LAYERS]  # the package itself declares only its own module
    assert [m for m in edges if m != PACKAGE.name and layer_of(m, floors) is None] == [], "add them to LAYERS"


def test_every_import_points_down_the_floors():
    edges, _ = graph()
    assert upward_imports(edges, LAYERS) == []


def test_no_method_file_imports_another_method_file():
    edges, _ = graph()
    methods = method_files(edges)
    assert len(methods) > 5
    known = set(edges)
    crossing = sorted({f"{m} -> {t}" for m in methods for e in edges[m]
                       if (t := resolve(e, known)) in methods and t != m})
    assert crossing == []
