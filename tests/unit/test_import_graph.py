"""The import graph of gpuwatchd: no cycle, no arrow up the layers, no function-level import.

Every module under gpuwatchd/ is parsed with the standard library's ``ast`` (nothing is
imported); each ``import gpuwatchd...``/``from gpuwatchd... import ...`` (also relative ones)
is an edge, whether at the top of the module, under ``if TYPE_CHECKING:`` or inside a
function. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg`` (a name its ``__init__`` defines). The packages above an imported module run first
too, but that is no edge: a package already being initialised is simply reused, so only
names taken from a package's ``__init__`` can close a cycle.

Rules (docs: the house's layering, /work/wt/COMMON.md "Layering"):
(a) no import cycle, TYPE_CHECKING edges included (none is needed: a protocol in the lower
    module breaks one, e.g. gpuwatchd.sim.port.NodePort);
(b) arrows point down only: a module imports from its own layer or below (:data:`LAYERS`);
    within the domain layer, control reads collectors' readings only via gpuwatchd.model;
    the simulator is imported by the daemon's command line only (``--demo``);
(c) no function-level import of a gpuwatchd module (a heavy optional third-party library may
    be imported lazily: that is not a gpuwatchd module and not checked here).

:data:`KNOWN_VIOLATIONS` lists what other branches of the same restructuring remove; the
lead empties it after merging them (a listed violation that is gone fails too, so the set
never keeps a stale entry).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gpuwatchd"

# Lowest first. A module belongs to the first entry whose name is it or a package above it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("gpuwatchd", "gpuwatchd.errors", "gpuwatchd.clock", "gpuwatchd.model",
              "gpuwatchd.hardware", "gpuwatchd.worker")),
    ("config", ("gpuwatchd.config",)),
    ("links", ("gpuwatchd.links",)),
    ("domain", ("gpuwatchd.licence", "gpuwatchd.collectors", "gpuwatchd.control",
                "gpuwatchd.health")),
    ("surfaces", ("gpuwatchd.exporter", "gpuwatchd.status")),
    ("top", ("gpuwatchd.daemon", "gpuwatchd.ctl", "gpuwatchd.sim", "gpuwatchd.__main__")),
)
# (importer package, imported package, why not): edges forbidden although the layers allow them
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("gpuwatchd.control", "gpuwatchd.collectors",
     "control reads collectors' readings only via gpuwatchd.model"),
)
SIM = "gpuwatchd.sim"
SIM_IMPORTERS = frozenset({"gpuwatchd.daemon.cli"})  # --demo

Violation = tuple[str, str, str]  # (rule, importer, imported); rule: cycle | layer | function
KNOWN_VIOLATIONS: dict[Violation, str] = {
}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    where: str  # top | type_checking | function
    line: int


def module_name(path: Path, root: Path) -> str:
    """``gpuwatchd/links/ipmi.py`` -> ``gpuwatchd.links.ipmi``; a package's ``__init__`` is
    the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_sources(root: Path = PACKAGE) -> dict[str, tuple[str, bool]]:
    """Module name -> (source, is a package) for every module under ``root``."""
    return {module_name(p, root): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
            for p in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, where: str = "top") -> Iterator[tuple[ast.Import | ast.ImportFrom,
                                                                   str]]:
    """Every import statement with where it runs: top (at import), type_checking, function."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, where
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(node, "function")
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and where == "top":
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]),
                                    "type_checking")
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), where)
        else:
            yield from _imports(node, where)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: Mapping[str, object]) -> Iterator[str]:
    """The gpuwatchd modules one statement names (``from pkg import mod`` names ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
        return
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in modules else base


def build_graph(sources: Mapping[str, tuple[str, bool]]) -> list[Edge]:
    """Every edge between gpuwatchd modules."""
    edges: list[Edge] = []
    for name, (text, is_package) in sources.items():
        tree = ast.parse(text, filename=name)
        for node, where in _imports(tree):
            for target in _targets(node, name, is_package, sources):
                if _within(target, "gpuwatchd") and target != name:
                    edges.append(Edge(name, target, where, node.lineno))
    return edges


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the most specific entry naming ``module``."""
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for index, (_, names) in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[0]):
                best = (len(n), index)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def violations(edges: list[Edge]) -> set[Violation]:
    """Every broken rule, as (rule, importer, imported); a cycle names its first two."""
    found: set[Violation] = set()
    for component in cycles(edges):
        found.add(("cycle", component[0], " <-> ".join(component[1:])))
    for e in edges:
        if e.where == "function":
            found.add(("function", e.importer, e.imported))
        if layer_of(e.imported) > layer_of(e.importer):
            found.add(("layer", e.importer, e.imported))
        for src, dst, _ in FORBIDDEN:
            if _within(e.importer, src) and _within(e.imported, dst):
                found.add(("layer", e.importer, e.imported))
        if (_within(e.imported, SIM) and not _within(e.importer, SIM)
                and e.importer not in SIM_IMPORTERS):
            found.add(("layer", e.importer, e.imported))
    return found


# --- the checker itself, on a made-up package --------------------------------------------


def _fake(**modules: str) -> dict[str, tuple[str, bool]]:
    return {name.replace("__", "."): (text, False) for name, text in modules.items()}


def test_the_checker_finds_a_cycle_an_up_arrow_and_a_function_level_import() -> None:
    sources = _fake(
        gpuwatchd__model="from gpuwatchd.links import ipmi\n",  # base -> links: up
        gpuwatchd__links__ipmi="import gpuwatchd.model\n",  # ... and back: a cycle
        gpuwatchd__errors="def f():\n    from gpuwatchd import clock\n",
        gpuwatchd__clock="",
        gpuwatchd__links="",
    )
    sources["gpuwatchd.links"] = ("", True)
    sources["gpuwatchd"] = ("", True)
    found = violations(build_graph(sources))
    assert ("layer", "gpuwatchd.model", "gpuwatchd.links.ipmi") in found
    assert ("function", "gpuwatchd.errors", "gpuwatchd.clock") in found
    assert any(rule == "cycle" and "gpuwatchd.model" in (a, b) for rule, a, b in found)


def test_type_checking_and_relative_imports_are_edges_too() -> None:
    sources = _fake(
        gpuwatchd__config__load=("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from ..control import loop\n"),
        gpuwatchd__control__loop="from . import zones\n",
        gpuwatchd__control__zones="",
    )
    sources.update({"gpuwatchd": ("", True), "gpuwatchd.config": ("", True),
                    "gpuwatchd.control": ("", True)})
    edges = build_graph(sources)
    assert Edge("gpuwatchd.config.load", "gpuwatchd.control.loop", "type_checking", 3) in edges
    assert ("layer", "gpuwatchd.config.load", "gpuwatchd.control.loop") in violations(edges)
    assert Edge("gpuwatchd.control.loop", "gpuwatchd.control.zones", "top", 1) in edges


def test_control_may_not_import_a_collector_and_only_the_cli_imports_the_simulator() -> None:
    sources = _fake(gpuwatchd__control__loop="from gpuwatchd.collectors import gpu\n",
                    gpuwatchd__collectors__gpu="",
                    gpuwatchd__status__document="import gpuwatchd.sim.node\n",
                    gpuwatchd__sim__node="")
    found = violations(build_graph(sources))
    assert ("layer", "gpuwatchd.control.loop", "gpuwatchd.collectors.gpu") in found
    assert ("layer", "gpuwatchd.status.document", "gpuwatchd.sim.node") in found


# --- the real package --------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return build_graph(read_sources())


def test_every_module_is_in_a_layer(edges: list[Edge]) -> None:
    for name in read_sources():
        layer_of(name)  # raises for a module no LAYERS entry names


def test_the_graph_is_read(edges: list[Edge]) -> None:
    """A sanity floor: the parser sees the imports the daemon is built from."""
    pairs = {(e.importer, e.imported) for e in edges}
    assert ("gpuwatchd.daemon.service", "gpuwatchd.collectors.registry") in pairs
    assert ("gpuwatchd.collectors.registry", "gpuwatchd.collectors.gpu") in pairs


def test_no_cycle_no_up_arrow_no_function_level_import(edges: list[Edge]) -> None:
    new = violations(edges) - set(KNOWN_VIOLATIONS)
    lines = {(e.importer, e.imported): e.line for e in edges}
    assert not new, "import rules broken:\n" + "\n".join(
        f"  {rule}: {a} -> {b} (line {lines.get((a, b), '?')})" for rule, a, b in sorted(new))


def test_known_violations_are_still_there(edges: list[Edge]) -> None:
    """Remove an entry from KNOWN_VIOLATIONS once its branch has fixed it."""
    gone = set(KNOWN_VIOLATIONS) - violations(edges)
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(gone)}"
