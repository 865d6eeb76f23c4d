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

Imports live at the top of a module. One inside a function says why on its line, with one of ``REASONS``: an
optional dependency (``# optional: lm_eval``), one slow to import that few calls need (``# heavy: matplotlib``),
one that would close a circle (``# cycle: ...``) or one a platform lacks (``# platform: ...``). The command line's
front end (``lm2/cli.py``, every ``commands.py``) is exempt: its handlers import their libraries when a command
runs, so that ``lm2 --help`` stays quick.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lm2"
REASONS = ("optional:", "heavy:", "cycle:", "platform:")


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


def test_the_graph_sees_lazy_and_package_imports(tmp_path, monkeypatch):
    graph = module_graph()
    assert "lm2.modeling_lm2" in graph["lm2"]  # from lm2.modeling_lm2 import ... in lm2/__init__.py
    assert "lm2.modeling_lm2" in graph["lm2.model_facts"]  # from lm2.modeling_lm2 import LM2ForCausalLM
    assert "lm2.rmt" in graph["lm2.train.loop"]  # from lm2 import LM2Config, LM2ForCausalLM, rmt
    assert "lm2.viz" in graph["lm2.eval.perplexity"]  # from lm2.viz import save_figure
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

    package = tmp_path / "lm2"  # a lazy import counts: lm2.a imports lm2.b inside a function
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from lm2.sub import b  # cycle: test\n    return b\n")
    (package / "sub" / "b.py").write_text("from .. import a\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    graph = module_graph()
    assert graph["lm2.a"] == {"lm2.sub.b"} and graph["lm2.sub.b"] == {"lm2.a"}
    assert circles(graph) == [["lm2.a", "lm2.sub.b"]]
    assert function_level_imports(package / "a.py") == [(2, "from lm2.sub import b  # cycle: test")]


def test_no_module_imports_itself_through_others():
    graph = module_graph()
    found = circles(graph)
    assert not found, "import circles between lm2's modules: " + " | ".join(describe(graph, c) for c in found)


def test_no_area_imports_itself_through_others():
    graph = area_graph(module_graph())
    found = circles(graph)
    assert not found, "import circles between lm2's areas: " + " | ".join(describe(graph, c) for c in found)


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every import statement inside a function (methods and nested functions included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                text = " ".join(line.strip() for line in lines[child.lineno - 1:child.end_lineno])
                found.append((child.lineno, text))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse("\n".join(lines), str(path)), False)
    return found


def front_end(relative: str) -> bool:
    return relative == "cli.py" or relative.endswith("commands.py")


CHECKED = sorted(relative for relative in (p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
                 if not front_end(relative))


@pytest.mark.parametrize("relative", CHECKED)
def test_imports_inside_functions_say_why(relative):
    unexplained = [f"lm2/{relative}:{line}: {text}" for line, text in function_level_imports(PACKAGE / relative)
                   if not any(reason in text.partition("#")[2] for reason in REASONS)]
    assert not unexplained, ("an import inside a function: move it to the top of the module, or say why it stays "
                             f"({', '.join(REASONS)}) in a comment on its line:\n" + "\n".join(unexplained))


def test_every_library_module_is_checked_and_the_front_end_is_not():
    assert {"modeling_lm2.py", "viz/memory.py", "train/config.py"} <= set(CHECKED)
    assert "train/commands.py" not in CHECKED and "cli.py" not in CHECKED
