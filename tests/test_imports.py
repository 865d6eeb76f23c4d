"""No import circles inside lm2, neither between modules nor between areas.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of an lm2 module, the
ones inside functions included (a lazy import still ties two modules together; it only hides the circle until
the function runs). Two levels are checked:

* modules: ``lm2.eval.mmlu`` -> ``lm2.eval.lm_eval_adapter`` -> ``lm2.eval.mmlu`` is a circle;
* areas: each subpackage (``lm2.data``, ``lm2.eval``, ``lm2.train``, ``lm2.viz``) counts as one node and each
  top-level module (``lm2.generate``, ``lm2.pretrained``, ...) as its own, so that ``lm2.viz`` importing
  ``lm2.eval`` while ``lm2.eval`` imports ``lm2.viz`` is a circle even when no single module closes it.

Not counted: the parent packages Python runs first (``import lm2.eval.common`` runs ``lm2/__init__.py``), and
``lm2.cli``'s ``importlib.import_module`` of the command modules (the front end, above everything by design).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lm2"


def lm2_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of lm2 by dotted name: (file, whether it is a package's __init__)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def module_graph() -> dict[str, set[str]]:
    """Module -> the lm2 modules it imports (anywhere in the file)."""
    modules = lm2_modules()

    def known(name: str) -> str | None:  # the module a dotted name lives in (lm2.eval.common.load_model -> ...)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == "lm2")
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from . import x, from ..data import y
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "lm2":
                    continue
                for alias in node.names:  # from lm2.eval import mmlu imports the module lm2.eval.mmlu
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in modules else known(source))
        targets.discard(None)
        targets.discard(name)
        graph[name] = targets
    return graph


def area(module: str) -> str:
    """lm2.eval.common -> lm2.eval; lm2.generate -> lm2.generate; lm2 -> lm2."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def area_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    areas: dict[str, set[str]] = {area(m): set() for m in graph}
    for source, targets in graph.items():
        areas[area(source)].update(area(t) for t in targets if area(t) != area(source))
    return areas


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(component)))}" for m in component)


def test_the_graph_sees_lazy_and_package_imports():
    graph = module_graph()
    assert "lm2.modeling_lm2" in graph["lm2"]  # from lm2.modeling_lm2 import ... in lm2/__init__.py
    assert "lm2.modeling_lm2" in graph["lm2.model_facts"]  # inside model_kind()
    assert "lm2.rmt" in graph["lm2.train.loop"]  # from lm2 import rmt, inside a function
    assert "lm2.viz" in graph["lm2.eval.perplexity"]  # from lm2.viz import save_figure
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others():
    graph = module_graph()
    found = circles(graph)
    assert not found, "import circles between lm2's modules: " + " | ".join(describe(graph, c) for c in found)


def test_no_area_imports_itself_through_others():
    graph = area_graph(module_graph())
    found = circles(graph)
    assert not found, "import circles between lm2's areas: " + " | ".join(describe(graph, c) for c in found)
