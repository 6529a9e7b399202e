"""The house rules of the import graph, read from the source (no imports executed).

- ``rag`` (the library) never imports ``ui``, ``kazrag`` or ``evals``; ``evals`` never imports
  ``ui`` or ``kazrag``; ``ui`` never imports ``kazrag`` or ``evals``.
- No circle among ``rag``'s modules, counting every import: at module level, under
  ``TYPE_CHECKING`` and inside functions. One lazy import is allowed to close a loop (see
  ``LAZY_ALLOWED``); a lazy import that makes two modules import each other never is.
- No generator imports the pipeline; only ``rag/stores/faiss.py`` imports ``faiss`` and only
  ``rag/stores/milvus.py`` imports ``pymilvus``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "ui", "evals", "kazrag")
# e5_folder (the model-folder builder, reached lazily when the model first loads) asks
# rag.settings for the cache folder: settings is the one reader of KAZRAG_* variables, and
# settings needs the embedding module's default model name. The import runs inside a function
# on first model load, never at import time.
LAZY_ALLOWED = {("rag.e5_folder", "rag.settings")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> dict[str, bool]:
    """Modules ``path`` imports, each with whether every import of it is inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, bool] = {}

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [child.module]
                # ``from rag import library`` imports the module rag.library
                names += [f"{child.module}.{a.name}" for a in child.names]
            for name in names:
                found[name] = found.get(name, True) and inner
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> dict[str, dict[str, bool]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {
        name: {dep: lazy for dep, lazy in _imports(path).items() if dep in modules}
        for name, path in modules.items()
    }


def _top(name: str) -> str:
    return name.split(".")[0]


def test_dependencies_point_down() -> None:
    forbidden = {
        "rag": {"ui", "kazrag", "evals"},
        "evals": {"ui", "kazrag"},
        "ui": {"kazrag", "evals"},
        "kazrag": set(),
    }
    wrong = [
        (mod, dep)
        for mod, deps in _graph().items()
        for dep in deps
        if _top(dep) in forbidden[_top(mod)]
    ]
    assert wrong == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := walk(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def _rag_graph() -> dict[str, dict[str, bool]]:
    return {
        mod: {d: lazy for d, lazy in deps.items() if _top(d) == "rag" and d != mod}
        for mod, deps in _graph().items()
        if _top(mod) == "rag"
    }


def test_no_import_circle_in_the_library() -> None:
    graph = {
        mod: {d for d, lazy in deps.items() if not (lazy and (mod, d) in LAZY_ALLOWED)}
        for mod, deps in _rag_graph().items()
    }
    # a package's __init__ re-exporting its submodules is no circle
    for mod in graph:
        graph[mod] = {d for d in graph[mod] if not mod.startswith(d + ".")}
    assert _cycle(graph) is None


def test_no_two_modules_import_each_other() -> None:
    graph = _rag_graph()
    mutual = sorted(
        (a, b) for a, deps in graph.items() for b in deps if a < b and a in graph.get(b, {})
    )
    assert mutual == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_generator_imports_the_pipeline() -> None:
    graph = _graph()
    generators = [m for m in graph if m.startswith("rag.generators") or m == "rag.llm"]
    assert "rag.generators.extractive" in generators
    assert [m for m in generators if "rag.pipeline" in graph[m]] == []


def test_only_the_faiss_store_imports_faiss() -> None:
    users = sorted(
        str(p.relative_to(ROOT))
        for d in (*PACKAGES, "tests")
        for p in (ROOT / d).rglob("*.py")
        if "faiss" in _imports(p)
    )
    assert users == ["rag/stores/faiss.py"]


def test_only_the_milvus_store_imports_pymilvus() -> None:
    users = sorted(
        str(p.relative_to(ROOT))
        for d in (*PACKAGES, "tests")
        for p in (ROOT / d).rglob("*.py")
        if "pymilvus" in _imports(p)
    )
    assert users == ["rag/stores/milvus.py"]
