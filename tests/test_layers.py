"""Imports point down: no cycle in the package, readers never import a writer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audit_logging"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node but those of a module-level ``__getattr__`` (PEP 562 lazy re-exports, kept
    for names that moved: they are not what the module depends on)."""
    nodes: list[ast.AST] = []
    for top in tree.body:
        if isinstance(top, ast.FunctionDef) and top.name == "__getattr__":
            continue
        nodes.extend(ast.walk(top))
    return nodes


def _imports() -> dict[str, set[str]]:
    """Every module of ours each module imports, anywhere in it (functions too)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in _nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("audit_logging"):
                    found.add(node.module)
                    found.update(
                        f"{node.module}.{alias.name}"
                        for alias in node.names
                        if (
                            PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")
                        ).exists()
                        or (
                            PACKAGE.parent
                            / (f"{node.module}.{alias.name}".replace(".", "/") + ".py")
                        ).exists()
                    )
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("audit_logging"))
        graph[name] = found - {name}
    return graph


def test_readers_never_import_a_writer() -> None:
    graph = _imports()
    for name, imported in graph.items():
        if name.startswith(("audit_logging.read", "audit_logging.chain", "audit_logging.formats")):
            assert not {m for m in imported if m.startswith("audit_logging.writers")}, name
    assert graph["audit_logging.formats"] == set()
    assert graph["audit_logging.chain"] <= {"audit_logging.formats", "audit_logging.schema"}
    assert graph["audit_logging.manifest"] <= {
        "audit_logging._files",
        "audit_logging.chain",
        "audit_logging.schema",
    }


def test_no_import_cycle() -> None:
    graph = _imports()
    # The package's __init__ re-exports lazily: it is not a dependency of anyone.
    edges = {
        name: {m for m in imported if m in graph and m != "audit_logging"}
        for name, imported in graph.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
